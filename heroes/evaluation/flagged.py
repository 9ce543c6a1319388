"""Test accuracy scored both ways: on every test image, and without the images flagged for review."""

import dataclasses

import pandas

from heroes.data.split import pending_mask


@dataclasses.dataclass(frozen=True)
class BothWays:
    """Counts of one run's test predictions (or several runs' pooled with ``+``), scored both ways."""

    images: int = 0
    flagged: int = 0  # images waiting for review (``heroes.data.split.pending_mask``)
    correct: int = 0  # right answers on every image
    correct_unflagged: int = 0  # right answers on the images that wait for no review

    @property
    def unflagged(self) -> int:
        return self.images - self.flagged

    @property
    def accuracy_all(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def accuracy_unflagged(self) -> float:
        return self.correct_unflagged / self.unflagged if self.unflagged else float("nan")

    def __add__(self, other: "BothWays") -> "BothWays":
        return BothWays(*(getattr(self, field.name) + getattr(other, field.name)
                          for field in dataclasses.fields(self)))

    def row(self) -> dict:
        """{images, flagged, accuracy_all, accuracy_unflagged}: one row of ``grid.flagged_test_effect``."""
        return {"images": self.images, "flagged": self.flagged, "accuracy_all": self.accuracy_all,
                "accuracy_unflagged": self.accuracy_unflagged}


def score_both_ways(predictions: pandas.DataFrame, splits: pandas.DataFrame) -> BothWays:
    """One run's test predictions (a frame with ``path``, ``sha256`` and ``correct``, as runs write it) scored on
    every image and on those that wait for no review, matched to ``splits`` by path or sha256."""
    pending = pending_mask(predictions, splits).to_numpy(bool)
    right = predictions["correct"].astype(bool).to_numpy()
    return BothWays(images=len(predictions), flagged=int(pending.sum()), correct=int(right.sum()),
                    correct_unflagged=int(right[~pending].sum()))
