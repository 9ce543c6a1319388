"""Training runs: the study's SGD recipe on cached frozen features (or end to end), one run directory each."""

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy

from heroes import paths
from heroes.config import TrainConfig, to_dict
from heroes.data import augment
from heroes.errors import UserError
from heroes.models import build, surgery
from heroes.training import fit, runs, spec, strategy, train_evaluation
from heroes.training.cached import features, suffix_fit
from heroes.training.runs import RunResult


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


def _end_to_end(model, config, sets, class_weight, progress, callbacks=()) -> dict:
    """Fit the whole model on images (views made on the fly): slow, the reference the cache must match."""
    train = sets["train"]
    sha = numpy.asarray(train.sha256)

    def fetch(indices, views):
        return augment.view_batch(train.images[indices], sha[indices], views)

    batches = fit.EpochBatches(fetch, train.labels, config.batch_size, config.seed, config.views)
    validation = (fit.float_images(sets["val"]), sets["val"].labels)
    start = time.perf_counter()
    # a full forward pass over the scored training images per epoch: the price of a measured gap end to end
    train_eval = train_evaluation.for_run(lambda indices: fit.float_images(train, indices), train.labels, config,
                                          fit.PREDICT_BATCH)
    history, best_epoch = fit.fit(model, batches, validation, config, class_weight, progress,
                               extra_callbacks=(*train_eval, *callbacks))
    return {"history": history, "best_epoch": best_epoch, "train_time_s": time.perf_counter() - start}


def build_run_model(config: TrainConfig, num_classes: int):
    """(model, weights choice): the model ``train_run`` trains for ``config`` (a final config), built in a fresh
    session under ``config.strategy``'s scope. Everything that must see the same prefix (feature shards, the shared
    random initialisation, benchmarks) builds it here."""
    fit.fresh_session(config)
    with strategy.strategy_for(config).scope():
        return build.create_model(config.backbone, num_classes, config.image_size,
                                  weights=config.weights_choice or config.weights, policy=config.policy,
                                  dropout=config.dropout)


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
    if store is None:
        return None
    return {"dir": paths.portable(store.directory), "computed": store.computed, "reused": store.reused}


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
    """Train ``config.backbone`` under ``config.policy`` on ``sets`` (train/val/test ``ImageSet``s); write a run
    directory.

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
    config = spec.final_config(config)
    class_names = check_sets(sets, config.image_size)
    use_cache = config.use_cache if use_cache is None else bool(use_cache)
    config = dataclasses.replace(config, use_cache=use_cache)
    run_dir = Path(run_dir) if run_dir is not None else runs.default_run_dir(name, config)
    with fit.timed(steps, "build_model"):
        model, choice = build_run_model(config, len(class_names))
    with fit.timed(steps, "split"), model.distribute_strategy.scope():  # the suffix re-calls the model's layers
        prefix, suffix = _split_for_cache(model) if use_cache else (None, None)
    if progress:
        sizes = ", ".join(f"{len(sets[split])} {split}" for split in ("train", "val", "test"))
        print(f"{name}: {config.backbone}/{config.policy} seed {config.seed}, {sizes}; weights: {choice.source}")
    class_weight = fit.class_weight_map(sets["train"].labels, len(class_names), config.class_weights)
    cache = None
    # `tensorboard --logdir models/` shows every run's curves (train_eval_* included); no graph, no profiling
    board = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False, profile_batch=0)
    if prefix is None:
        outcome = _end_to_end(model, config, sets, class_weight, progress, callbacks=(board,))
    else:
        with fit.timed(steps, "open_store"):
            cache = features.open_store(prefix, config.backbone, choice.source, config.image_size,
                                        config.feature_dtype, cache_dir)
        outcome = suffix_fit.cached(model, prefix, suffix, config, sets, class_weight, cache, progress,
                                    callbacks=(board,))
    steps.update(outcome.get("steps", {"fit": outcome["train_time_s"]}))
    with fit.timed(steps, "test_predictions"):
        probabilities, test_store = suffix_fit.test_probabilities(model, prefix, suffix, cache, config, sets["test"],
                                                                  progress)
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
