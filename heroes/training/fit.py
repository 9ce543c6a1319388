"""The fit loop every training path shares: seeded epoch batches, the optimizer, ``model.fit`` with the best-weights
callback, and a fresh session per run (no graph left behind)."""

import gc
import math
import time
from contextlib import contextmanager

import keras
import numpy
import pandas

from heroes.config import TrainConfig
from heroes.training.callbacks import BestWeights, EpochTimer
from heroes.training.train_evaluation import TrainSetEvaluation

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


def fit(model, batches, validation, config, class_weight, progress, xla=False, extra_callbacks=()) -> tuple:
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


@contextmanager
def timed(steps: dict, name: str):
    """Add the wall seconds of the block to ``steps[name]``: each step of a run is measured, then cut where waste."""
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start


def class_weight_map(labels, num_classes: int, mode: str):
    """``None``, or {class: n / (k * n_class)} for ``balanced`` (mean weight over examples is 1)."""
    if mode == "none":
        return None
    counts = numpy.bincount(labels, minlength=num_classes)
    return {index: len(labels) / (num_classes * count) for index, count in enumerate(counts) if count}


def float_images(image_set, indices=None) -> numpy.ndarray:
    images = image_set.images if indices is None else image_set.images[indices]
    return numpy.asarray(images, dtype="float32")
