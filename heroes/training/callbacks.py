"""Keras callbacks for training runs: keep the best weights on validation loss in memory, time each epoch."""

import math
import time

import keras
import numpy


class BestWeights(keras.callbacks.Callback):
    """Remember the weights of the epoch with the lowest ``monitor`` and put them back when training ends.

    Only layers that train are copied (frozen layers cannot change), so a VGG16 snapshot is its head, not the
    whole 138M-parameter network, and nothing is written to disk per epoch; the run saves the final model once.
    """

    def __init__(self, monitor="val_loss"):
        super().__init__()
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch = None  # 1-based
        self._snapshot = None

    def _variables(self):
        return [variable for layer in self.model.layers if layer.trainable_weights for variable in layer.weights]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"BestWeights monitors {self.monitor!r} but the logs only have {sorted(logs or {})}")
        if value < self.best:  # NaN never compares smaller, so a diverged epoch is never kept
            self.best, self.best_epoch = float(value), epoch + 1
            self._snapshot = [numpy.array(variable.numpy()) for variable in self._variables()]

    def on_train_end(self, logs=None):
        if self._snapshot is not None:
            for variable, value in zip(self._variables(), self._snapshot):
                variable.assign(value)
            self._snapshot = None


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch (validation included) in ``seconds``, one entry per epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
