"""Training-set loss and accuracy with each epoch's end weights, added to the epoch logs as ``train_eval_*``."""

import math

import keras
import numpy

PREFIX = "train_eval_"


def scored_images(count: int, limit: int, seed: int) -> numpy.ndarray:
    """Indices of the training images re-scored each epoch: all of them when ``limit`` is 0 or covers them, else
    ``limit`` drawn once with ``seed`` (sorted). 300 images give a train accuracy within about ±6 points (95%) for
    a quarter of the price of re-scoring the study's 1,200 every epoch."""
    if limit <= 0 or limit >= count:
        return numpy.arange(count)
    return numpy.sort(numpy.random.default_rng(seed).choice(count, size=int(limit), replace=False))


def for_run(fetch, labels, config, batch_size) -> tuple:
    """(``TrainSetEvaluation``,) over ``config``'s ``scored_images`` of the training set (``fetch(indices) ->
    inputs``), or () when ``config.score_train_set`` is off."""
    if not config.score_train_set:
        return ()
    chosen = scored_images(len(labels), config.score_train_images, config.seed)
    return (TrainSetEvaluation(lambda indices: fetch(chosen[indices]), numpy.asarray(labels)[chosen], batch_size),)


class OrderedBatches(keras.utils.PyDataset):
    """The training set in its fixed order, batch by batch, from ``fetch(indices) -> inputs``."""

    def __init__(self, fetch, labels, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.fetch, self.labels, self.batch_size = fetch, numpy.asarray(labels), int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index):
        take = numpy.arange(index * self.batch_size, min((index + 1) * self.batch_size, len(self.labels)))
        return self.fetch(take), self.labels[take]


class TrainSetEvaluation(keras.callbacks.Callback):
    """At each epoch end, score training images with the end-of-epoch weights and log ``train_eval_<metric>``.

    Keras' ``loss`` and ``accuracy`` are running means over the epoch while the weights change, so they lag the
    weights ``val_*`` is scored with; an overfitting gap needs both sides from the same weights. ``inputs`` is an
    array (N, ...) or a callable ``fetch(indices) -> inputs`` (cached features read batch by batch instead of held
    in memory); ``labels`` (N,). Training-time randomness (augmented views, dropout) is off here, and class
    weights are not applied, exactly as for ``val_*``. Costs one forward pass over ``inputs`` per epoch:
    cheap on cached features (the suffix only), a full forward pass when training end to end.
    ``model.evaluate`` inside ``fit`` is safe: only ``fit``'s own validation call uses its cached dataset.
    """

    def __init__(self, inputs, labels, batch_size=32):
        super().__init__()
        if not callable(inputs) and len(inputs) != len(labels):
            raise ValueError(f"TrainSetEvaluation got {len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels, self.batch_size = inputs, numpy.asarray(labels), int(batch_size)

    def evaluate(self) -> dict:
        """{metric: value} of the model's compiled loss and metrics on ``inputs``, now."""
        if callable(self.inputs):
            data = OrderedBatches(self.inputs, self.labels, self.batch_size)
            scores = self.model.evaluate(data, verbose=0, return_dict=True)
        else:
            scores = self.model.evaluate(self.inputs, self.labels, batch_size=self.batch_size, verbose=0,
                                         return_dict=True)
        return {f"{PREFIX}{name}": float(value) for name, value in scores.items()}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # fit passes one dict to every callback, History last: it records these keys
            logs.update(self.evaluate())
