"""Training runs: the study's SGD recipe on cached frozen features (or end to end), one run directory each."""

import dataclasses
import gc
import math
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy
import pandas

from heroes import machine, paths
from heroes.config import FinalConfig, TrainConfig, to_dict
from heroes.data import augment
from heroes.errors import UserError
from heroes.models import build, surgery
from heroes.training.cached import features, precision, span
from heroes.training import runs, strategy
from heroes.models.backbones import get_backbone
from heroes.training.callbacks import BestWeights, EpochTimer
from heroes.training.runs import RunResult
from heroes.training.train_evaluation import TrainSetEvaluation

CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("sgd", "adam")
PREDICT_BATCH = 32


class EpochBatches(keras.utils.PyDataset):
    """Training batches in a seeded order per epoch, each image as one of its ``views`` (view 0 = the original).

    ``fetch(indices, views)`` returns the inputs (images or cached features), so the cached and the end-to-end
    paths share exactly this order and these views; that is what makes them train the same model.
    """

    def __init__(self, fetch, labels, batch_size, seed, views=1, **kwargs):
        super().__init__(**kwargs)
        self.fetch, self.labels, self.batch_size = fetch, numpy.asarray(labels), batch_size
        self.seed, self.views, self.epoch = seed, views, 0

    def order(self) -> tuple:
        """(example order, view per example) of the current epoch."""
        count = len(self.labels)
        order = numpy.random.default_rng([self.seed, self.epoch]).permutation(count)
        if self.views == 1:
            return order, numpy.zeros(count, dtype=numpy.int64)
        return order, numpy.random.default_rng([self.seed, self.epoch, 1]).integers(0, self.views, count)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index):
        order, views = self.order()
        take = order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.fetch(take, views[take]), self.labels[take]

    def on_epoch_end(self):
        self.epoch += 1


def final_config(config: TrainConfig) -> FinalConfig:
    """The config as it will run: checked, ``views`` 1 without augmentation, ``feature_dtype`` resolved; a config
    that is final already is returned as it is (it was resolved once, at its entry point)."""
    if isinstance(config, FinalConfig):
        return config
    if config.epochs < 1 or config.batch_size < 1:
        raise UserError(f"epochs and batch_size must be at least 1, got {config.epochs} and {config.batch_size}")
    if config.learning_rate <= 0 or not 0 <= config.momentum < 1:
        raise UserError(f"need learning_rate > 0 and momentum in [0, 1), got {config.learning_rate}, {config.momentum}")
    if config.class_weights not in CLASS_WEIGHTS:
        raise UserError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, not {config.class_weights!r}")
    if config.early_stopping < 0:
        raise UserError(f"early_stopping is a patience in epochs (0 = off), not {config.early_stopping}")
    if config.augment and config.views < 2:
        raise UserError(f"augment=True needs views >= 2 (view 0 is the original image), got views={config.views}")
    _check_optimizer(config)
    views = config.views if config.augment else 1
    dtype = features.resolve_feature_dtype(config.feature_dtype, get_backbone(config.backbone).bf16_features)
    return FinalConfig(**{**vars(config), "views": views, "feature_dtype": dtype})


def _check_optimizer(config: TrainConfig) -> None:
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {config.optimizer!r}")
    if config.weight_decay < 0:
        raise UserError(f"weight_decay must be >= 0, not {config.weight_decay}")
    if config.suffix_path not in span.PATHS:
        raise UserError(f"suffix_path must be one of {', '.join(span.PATHS)}, not {config.suffix_path!r}")
    if config.suffix_precision not in precision.PRECISIONS:
        raise UserError(f"suffix_precision must be one of {', '.join(precision.PRECISIONS)}, "
                        f"not {config.suffix_precision!r}")


def check_sets(sets: dict, image_size: int) -> tuple:
    """The class names shared by train/val/test; ``UserError`` on a missing split, class or size mismatch."""
    missing = [name for name in ("train", "val", "test") if name not in sets or len(sets[name]) == 0]
    if missing:
        raise UserError(f"training needs non-empty train, val and test sets; empty or missing: {', '.join(missing)}")
    class_names = tuple(sets["train"].class_names)
    for name in ("val", "test"):
        if tuple(sets[name].class_names) != class_names:
            raise UserError(f"{name} classes {list(sets[name].class_names)} differ from train's {list(class_names)}")
    for name in ("train", "val", "test"):
        labels = sets[name].labels
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise UserError(f"{name} labels run to {labels.max()}, but there are {len(class_names)} class names")
    absent = [class_names[index] for index in range(len(class_names)) if not (sets["train"].labels == index).any()]
    if absent:
        raise UserError(f"classes without a training image: {', '.join(absent)}; every class needs some")
    for name in ("train", "val", "test"):
        shape = tuple(sets[name].images.shape[1:])
        if shape != (image_size, image_size, 3):
            raise UserError(f"{name} images are {shape}, but the config asks for {image_size}x{image_size}x3")
    return class_names


def class_weight_map(labels, num_classes: int, mode: str):
    """``None``, or {class: n / (k * n_class)} for ``balanced`` (mean weight over examples is 1)."""
    if mode == "none":
        return None
    counts = numpy.bincount(labels, minlength=num_classes)
    return {index: len(labels) / (num_classes * count) for index, count in enumerate(counts) if count}


def _closure_values(function) -> list:
    values = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return values


def _is_all_reduce_gradient(entry) -> bool:
    """A gradient registered by ``tf.distribute``'s ``all_reduce`` (recognised by its closures)."""
    function = entry.get("type") if isinstance(entry, dict) else None
    inner = [value for outer in _closure_values(function) for value in _closure_values(outer)]
    return any("all_reduce" in getattr(value, "__qualname__", "") for value in inner)


def release_optimizer_graphs() -> int:
    """Drop what each traced Keras train step leaves in TensorFlow's global gradient registry; return the count.

    Keras' TensorFlow optimizer sums gradients with ``ReplicaContext.all_reduce``, a ``tf.custom_gradient``
    that registers a global gradient function per trace and never removes it. That function holds the traced
    train step, and through it the model's trainable variables and optimizer slots: without this, every run
    keeps ~190 MiB (VGG16 at 64 px) for the life of the process, ``clear_session`` or not. The entries are only
    read while that step is being traced, so dropping them after fitting is safe.
    """
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry  # private; checked, never relied on for results
    except (ImportError, AttributeError):
        return 0
    stale = [name for name, entry in list(registry.items())
             if name.startswith("CustomGradient-") and _is_all_reduce_gradient(entry)]
    for name in stale:
        registry.pop(name, None)
    return len(stale)


def fresh_session(config: TrainConfig) -> None:
    """Drop the previous run's graphs and seed everything, so runs neither leak memory nor depend on order."""
    keras.backend.clear_session()
    release_optimizer_graphs()
    gc.collect()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow

        tensorflow.config.experimental.enable_op_determinism()


def suffix_uses_xla(config: TrainConfig, suffix_precision: str = "float32", suffix=None) -> bool:
    """XLA for training the suffix on cached features in float32, where nothing else changes (one device, no op
    determinism), unless the suffix convolves on a CPU with AVX-512.

    Keras turns XLA off on CPU-only machines by default. Measured with ``score_train_set=False``, 6 epochs of VGG16's
    fc1/fc2/output on 1,200 cached rows: on a quiet 2-core AVX-512 CPU XLA takes the span path from ~3.0 to ~2.1 s
    per epoch and the direct path from ~14 to ~9 s (oneDNN computes fc2's input gradient d·Wᵀ at a third of its
    x·W speed; XLA does not); on a quiet 2-core AVX2 CPU it halves ResNet50's conv5 time per training image
    (108 -> 54 ms). A convolutional suffix on AVX-512 is faster with oneDNN: conv5 float32 ~35 vs ~90 ms per training
    image, mixed bf16 ~19 vs ~33 ms (XLA's CPU backend does not run bf16 through oneDNN).
    The end-to-end path keeps Keras' default: it is the reference a Keras user gets.
    """
    if config.strategy != "none" or config.deterministic or suffix_precision != "float32":
        return False
    convolves = suffix is None or any(len(weight.shape) > 2 for weight in suffix.weights)  # unknown: assume it does
    return not (convolves and "avx512f" in machine.cpu_flags())


def make_optimizer(config: TrainConfig):
    """SGD(lr, momentum, Nesterov) as the study, or Adam; ``weight_decay`` 0 means none."""
    weight_decay = config.weight_decay or None
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate, weight_decay=weight_decay)
    return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=weight_decay)


def compile_for_training(model, config, xla=False) -> None:
    with model.distribute_strategy.scope():  # the optimizer's variables live where the model's strategy puts them
        optimizer = make_optimizer(config)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=True if xla else "auto")


def _fit(model, batches, validation, config, class_weight, progress, xla=False, extra_callbacks=()) -> tuple:
    """``model.fit`` with the best-weights callback (and ``extra_callbacks``); returns (history frame, best epoch)."""
    best, timer = BestWeights("val_loss"), EpochTimer()
    # TrainSetEvaluation first: its train_eval_* numbers land in the logs the others (and TensorBoard) see
    callbacks = [*[c for c in extra_callbacks if isinstance(c, TrainSetEvaluation)], best, timer,
                 *[c for c in extra_callbacks if not isinstance(c, TrainSetEvaluation)]]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping))
    compile_for_training(model, config, xla)
    fitted = model.fit(
        batches, validation_data=validation, epochs=config.epochs, class_weight=class_weight,
        callbacks=callbacks, verbose=2 if progress else 0,
        # EpochBatches already orders each epoch from the seed; Keras' own shuffle would reorder its batches
        # with Python's global ``random``, breaking seed-determinism and cached/mirrored parity.
        shuffle=False,
    )
    release_optimizer_graphs()
    history = pandas.DataFrame(fitted.history)
    history.insert(0, "epoch", numpy.arange(1, len(history) + 1))
    history["seconds"] = timer.seconds[: len(history)]
    return history, best.best_epoch


def _images(image_set, indices=None) -> numpy.ndarray:
    images = image_set.images if indices is None else image_set.images[indices]
    return numpy.asarray(images, dtype="float32")


def _end_to_end(model, config, sets, class_weight, progress, callbacks=()) -> dict:
    """Fit the whole model on images (views made on the fly): slow, the reference the cache must match."""
    train = sets["train"]
    sha = numpy.asarray(train.sha256)

    def fetch(indices, views):
        return augment.view_batch(train.images[indices], sha[indices], views)

    batches = EpochBatches(fetch, train.labels, config.batch_size, config.seed, config.views)
    validation = (_images(sets["val"]), sets["val"].labels)
    start = time.perf_counter()
    # a full forward pass over the training images per epoch: the price of a measured gap end to end
    train_eval = (TrainSetEvaluation(lambda indices: _images(train, indices), train.labels, PREDICT_BATCH),) \
        if config.score_train_set else ()
    history, best_epoch = _fit(model, batches, validation, config, class_weight, progress,
                               extra_callbacks=(*train_eval, *callbacks))
    return {"history": history, "best_epoch": best_epoch, "train_time_s": time.perf_counter() - start}


@contextmanager
def _timed(steps: dict, name: str):
    """Add the wall seconds of the block to ``steps[name]``: each step of a run is measured, then cut where waste."""
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start


def _view_zero(cache, image_set) -> numpy.ndarray:
    return cache.load_many(image_set.sha256, numpy.zeros(len(image_set), int))


def _suffix_inputs(suffix, path, config, fetch, count, val_features) -> tuple:
    """(model to fit, fetch(indices, views), validation inputs, ``span.Span`` or None) of the chosen path."""
    if path == "direct":
        return suffix, fetch, val_features, None
    dense, _ = span.span_dense(suffix)
    views = config.views
    # X: image i as view v at row i * views + v, every cached training input once
    rows = fetch(numpy.repeat(numpy.arange(count), views), numpy.tile(numpy.arange(views), count))
    fitted = span.build_span(suffix, dense, rows)
    return fitted.model, lambda indices, chosen: fitted.batch(indices * views + chosen), \
        fitted.inputs_for(val_features), fitted


def fit_suffix(suffix, config, fetch, labels, validation, class_weight=None, progress=False, xla=None,
               callbacks=()) -> dict:
    """Fit the trainable ``suffix`` on cached inputs; its layers (shared with the full model) end up trained.

    ``fetch(indices, views)`` gives the float32 features of training images ``indices`` as ``views``; ``validation``
    is (features, labels). The first Dense layer takes the span path where that is exact (``heroes.training.cached.span``),
    a convolutional suffix trains in mixed bf16 where that is native (``heroes.training.cached.precision``); batches,
    order and seeds are the same whichever path runs. Returns the history, the best epoch, the path and precision
    used (and why), and the seconds of each step. ``xla`` None: ``suffix_uses_xla``'s choice.
    """
    steps, config = {}, final_config(config)  # views 1 without augmentation, whoever calls
    suffix_precision = precision.resolve_suffix_precision(config.suffix_precision, suffix)
    with precision.suffix_policy(suffix, suffix_precision):
        path, reason = span.choose_path(suffix, config, len(labels) * config.views)
        with _timed(steps, "suffix_inputs"):
            trained, fetch, val_inputs, fitted = _suffix_inputs(suffix, path, config, fetch, len(labels),
                                                                validation[0])
        batches = EpochBatches(fetch, labels, config.batch_size, config.seed, config.views)
        xla = suffix_uses_xla(config, suffix_precision, suffix) if xla is None else bool(xla)
        # the whole training set (view 0) scored with the end-of-epoch weights: measured overfitting gaps
        train_eval = (TrainSetEvaluation(lambda indices: fetch(indices, numpy.zeros(len(indices), int)), labels,
                                         PREDICT_BATCH),) if config.score_train_set else ()
        with _timed(steps, "fit"):
            history, best_epoch = _fit(trained, batches, (val_inputs, validation[1]), config, class_weight, progress,
                                       xla=xla, extra_callbacks=(*train_eval, *callbacks))
    if fitted is not None:
        with _timed(steps, "materialise"):
            fitted.materialise()
    return {"history": history, "best_epoch": best_epoch, "train_time_s": steps["fit"], "steps": steps,
            "suffix_path": path, "suffix_path_reason": reason, "suffix_precision": suffix_precision,
            "suffix_xla": xla}


def _cached(model, prefix, suffix, config, sets, class_weight, cache, progress, callbacks=()) -> dict:
    """Extract (or reuse) the frozen prefix's features, then fit only the suffix on them (``fit_suffix``)."""
    steps = {}
    with _timed(steps, "extract_features"):
        extract_run_features(prefix, cache, sets, config, progress)
    sha = numpy.asarray(sets["train"].sha256)
    with _timed(steps, "load_validation"):
        validation = (_view_zero(cache, sets["val"]), sets["val"].labels)
    outcome = fit_suffix(suffix, config, lambda indices, views: cache.load_many(sha[indices], views),
                         sets["train"].labels, validation, class_weight, progress, callbacks=callbacks)
    return outcome | {"steps": steps | outcome["steps"], "feature_time_s": steps["extract_features"]}


def float32_store(prefix, cache):
    """The float32 feature store beside the bf16 ``cache`` (same prefix, backbone, weights, size and folder)."""
    meta = cache.meta
    return features.open_store(prefix, meta["backbone"], meta["weights"], meta["image_size"], "float32",
                               cache.directory.parent)


def _test_probabilities(model, prefix, suffix, cache, config, test, progress=False) -> tuple:
    """(test-set probabilities of the final float32 model, the store its test features came from or None).

    bf16 features only steer training; reported numbers come from the float32 model that is saved, fed float32
    test features from the float32 store beside the bf16 one: computed once, then every later run with this prefix
    (the other seeds of a shared initialisation, a rerun) reads them instead of passing the images again.
    """
    if suffix is None:
        return numpy.asarray(model.predict(_images(test), batch_size=PREDICT_BATCH, verbose=0), dtype="float64"), None
    store = cache
    if config.feature_dtype != "float32":
        store = features.ensure_features(prefix, float32_store(prefix, cache), test, views=(0,), progress=progress)
    inputs = _view_zero(store, test)
    probabilities = numpy.asarray(suffix.predict(inputs, batch_size=PREDICT_BATCH, verbose=0), dtype="float64")
    return probabilities, (store if store is not cache else None)


def build_run_model(config: TrainConfig, num_classes: int):
    """(model, weights choice): the model ``train_run`` trains for ``config`` (a final config), built in a fresh
    session under ``config.strategy``'s scope. Everything that must see the same prefix (feature shards, the shared
    random initialisation, benchmarks) builds it here."""
    fresh_session(config)
    choice = config.weights_choice or build.choose_weights(config.backbone, config.weights, config.image_size)
    with strategy.strategy_for(config).scope():
        model = build.build_model(config.backbone, num_classes, config.image_size, weights=choice,
                                  policy=config.policy, dropout=config.dropout)
    return model, choice


def extract_run_features(prefix, store, sets: dict, config: TrainConfig, progress=True):
    """Fill ``store`` as a run needs it: train views ``range(config.views)``, val view 0, and test view 0 when the
    features are float32 (bf16 test features would never be read: the run scores the float32 model on images)."""
    extractor = prefix if config.feature_dtype == "float32" else features.bfloat16_prefix(prefix)
    wanted = ("train", "val", "test") if config.feature_dtype == "float32" else ("train", "val")
    for name, views in (("train", range(config.views)), ("val", (0,)), ("test", (0,))):
        if name in sets and name in wanted:
            features.ensure_features(extractor, store, sets[name], views=tuple(views), progress=progress)
    return store


def _split_for_cache(model):
    """(prefix, suffix), or (None, None) when the prefix holds no frozen weights worth caching (policy ``full``)."""
    prefix, suffix = surgery.split_at_first_trainable(model)
    if not prefix.weights:
        return None, None
    return prefix, suffix


def _determinism_enabled() -> bool:
    try:
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):  # private API; only recorded, never relied on
        return False


def _store_record(store) -> dict | None:
    return None if store is None else {"dir": paths.portable(store.directory), "computed": store.computed, "reused": store.reused}


def _suffix_choice(outcome: dict) -> dict:
    """How the trainable layers trained: ``suffix_path`` span | direct (and why), ``suffix_precision``."""
    return {"suffix_path": outcome.get("suffix_path", "direct"),
            "suffix_path_reason": outcome.get("suffix_path_reason", "end to end: the inputs are not cached"),
            "suffix_precision": outcome.get("suffix_precision", "float32")}


def _record(name, config, sets, class_names, manifest_hash, choice, model) -> dict:
    """What config.json holds: the final config plus everything needed to say what data and weights it saw."""
    train_counts = numpy.bincount(sets["train"].labels, minlength=len(class_names))
    return {
        "name": name, "config": to_dict(config), "class_names": list(class_names),
        "data": {split: len(sets[split]) for split in ("train", "val", "test")}
        | {"train_per_class": dict(zip(class_names, train_counts.tolist()))},
        "manifest_hash": manifest_hash, "weights": choice.source, "weights_note": choice.note,
        "model": build.describe_model(model), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def train_run(
    config: TrainConfig, sets: dict, name: str = "run", run_dir=None, manifest_hash: str = "",
    use_cache=None, cache_dir=None, progress: bool = True, save_model: bool = True, details: dict | None = None,
) -> RunResult:
    """Train ``config.backbone`` under ``config.policy`` on ``sets`` (train/val/test ``ImageSet``s), write a run directory.

    The run builds the model from the registry, fits with SGD(lr, momentum) and sparse cross-entropy, keeps the
    weights of the epoch with the lowest validation loss, scores the fixed-order test set and writes
    ``run_dir`` (default ``models/<name>-<backbone>-<policy>-s<seed>``; see ``heroes.training.runs``). With the cache
    (default) the frozen prefix runs once per image and view, ever; ``use_cache=False`` trains end to end. On cached
    features the first Dense layer trains on the span path where that is exact and a convolutional suffix in mixed
    bf16 where that is native (``fit_suffix``); metrics.json and config.json record ``suffix_path`` (and why) and
    ``suffix_precision``, metrics.json the seconds of every step (``step_seconds``).
    ``save_model=False`` skips the ``.keras`` file (VGG16 at 224 px is ~0.5 GB) when only the numbers matter;
    ``details`` are more fields for metrics.json (what the entry point knows), written with the rest, once.
    """
    wall_start, steps = time.perf_counter(), {}
    config = final_config(config)
    class_names = check_sets(sets, config.image_size)
    use_cache = config.use_cache if use_cache is None else bool(use_cache)
    config = dataclasses.replace(config, use_cache=use_cache)
    run_dir = Path(run_dir) if run_dir is not None else runs.default_run_dir(name, config)
    with _timed(steps, "build_model"):
        model, choice = build_run_model(config, len(class_names))
    with _timed(steps, "split"), model.distribute_strategy.scope():  # the suffix re-calls the model's layers
        prefix, suffix = _split_for_cache(model) if use_cache else (None, None)
    if progress:
        sizes = ", ".join(f"{len(sets[split])} {split}" for split in ("train", "val", "test"))
        print(f"{name}: {config.backbone}/{config.policy} seed {config.seed}, {sizes}; weights: {choice.source}")
    class_weight = class_weight_map(sets["train"].labels, len(class_names), config.class_weights)
    cache = None
    # `tensorboard --logdir models/` shows every run's curves (train_eval_* included); no graph, no profiling
    board = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False, profile_batch=0)
    if prefix is None:
        outcome = _end_to_end(model, config, sets, class_weight, progress, callbacks=(board,))
    else:
        with _timed(steps, "open_store"):
            cache = features.open_store(prefix, config.backbone, choice.source, config.image_size,
                                        config.feature_dtype, cache_dir)
        outcome = _cached(model, prefix, suffix, config, sets, class_weight, cache, progress, callbacks=(board,))
    steps.update(outcome.get("steps", {"fit": outcome["train_time_s"]}))
    with _timed(steps, "test_predictions"):
        probabilities, test_store = _test_probabilities(model, prefix, suffix, cache, config, sets["test"], progress)
    history, steps_rounded = outcome["history"], {step: round(seconds, 3) for step, seconds in steps.items()}
    details = {
        "name": name, "train_path": "end-to-end" if cache is None else "cached-features",
        "feature_dtype": config.feature_dtype if cache is not None else None,
        "feature_cache": _store_record(cache), "test_feature_cache": _store_record(test_store),
        "deterministic_ops": _determinism_enabled(),
        "suffix_xla": outcome.get("suffix_xla", False), **_suffix_choice(outcome),
        "feature_time_s": outcome.get("feature_time_s", 0.0), "train_time_s": outcome["train_time_s"],
        "manifest_hash": manifest_hash, "wall_time_s": time.perf_counter() - wall_start,
        "step_seconds": steps_rounded, **(details or {}),
    }
    metrics = runs.RunMetrics.of_run(config.backbone, config.policy, config.seed, choice, sets["test"],
                                     probabilities, history, outcome["best_epoch"], details)
    predictions = runs.predictions_frame(sets["test"], probabilities)
    record = _record(name, config, sets, class_names, manifest_hash, choice, model) | _suffix_choice(outcome)
    runs.write_run(run_dir, record, history, metrics, predictions, model if save_model else None, class_names)
    if progress:
        print(f"{name}: test accuracy {metrics.test_accuracy:.3f} on {metrics.test_n} images "
              f"(best epoch {metrics.best_epoch}); {details['wall_time_s']:.0f} s; written to {run_dir}")
    return RunResult(run_dir, config, history, metrics.to_json(), predictions, model, record)
