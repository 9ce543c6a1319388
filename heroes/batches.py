"""Keras batches over an ``ImageSet``: a seeded shuffle per epoch, with file paths kept in order."""

import math

import keras
import numpy


class ImageBatches(keras.utils.PyDataset):
    """Yields ``(images float32 0-255, labels)``; ``order`` and ``paths`` say which file each row is.

    Preprocessing lives inside every model, so batches stay raw RGB. Unshuffled batches
    follow the ``ImageSet`` order exactly, which keeps predictions aligned with paths.
    """

    def __init__(self, image_set, batch_size=16, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.image_set = image_set
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.order = self._make_order()

    def _make_order(self) -> numpy.ndarray:
        count = len(self.image_set)
        if not self.shuffle:
            return numpy.arange(count)
        return numpy.random.default_rng([self.seed, self.epoch]).permutation(count)

    @property
    def paths(self) -> list:
        """File path of every example, in the order batches yield them this epoch."""
        return [self.image_set.paths[index] for index in self.order]

    def __len__(self) -> int:
        return math.ceil(len(self.image_set) / self.batch_size)

    def __getitem__(self, index):
        take = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = numpy.asarray(self.image_set.images[take], dtype="float32")
        return images, self.image_set.labels[take]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._make_order()
