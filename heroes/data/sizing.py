"""Split sizing, in one place: per-class counts or fractions, checked, and lowered to what the smallest class holds.

* ``are_fractions``: whether (train, val, test) are fractions (all below 1) or per-class counts; a mix, negative
  sizes, all zeros or fractions over 1 are refused.
* ``fitting_counts``: counts (the study's 200/25/25) lowered until the smallest cleaned class can fill them.
* ``split_sizes``: what ``make_splits`` is given for a request: fractions stay fractions while every class gets at
  least one validation and one test image from them; smaller classes get counts in the same proportions instead.
* ``study_counts``: notebook 01's counts for N images per class, in the study's proportions (``make reproduce``).
"""

import pandas

from heroes.config import SplitConfig
from heroes.data.scan import data_rows
from heroes.errors import UserError

COUNT_SCALE = 1000  # fractions become counts in the same proportions (0.8 -> 800), then are lowered to fit


def are_fractions(train, val, test) -> bool:
    """True for fractions (all below 1), False for per-class counts; ``UserError`` for sizes that make no split."""
    values = (train, val, test)
    if any(value < 0 for value in values):
        raise UserError("split sizes must be non-negative")
    if not any(values):
        raise UserError("split sizes are all 0: every image would be unused; give --train, --val or --test above 0")
    fractions = all(value < 1 for value in values)
    if not fractions and any(0 < value < 1 for value in values):
        raise UserError("give either per-class counts (200 25 25) or fractions (0.8 0.1 0.1), not a mix")
    if fractions and sum(values) > 1 + 1e-9:
        raise UserError(f"split fractions add up to {sum(values):g}, more than 1")
    return fractions


def class_sizes(manifest: pandas.DataFrame) -> pandas.Series:
    """Usable class-data images per label (``scan.data_rows``)."""
    return manifest[data_rows(manifest, usable=True)].groupby("label").size()


def check_counts(usable: pandas.DataFrame, needed: int) -> None:
    """A class with too few images for the requested counts is an error naming the numbers."""
    counts = usable.groupby("label").size()
    short = counts[counts < needed]
    if not short.empty:
        details = ", ".join(f"'{label}' has {count}" for label, count in short.items())
        raise UserError(f"too few images for {needed} per class (train+val+test): {details}")


def fitting_counts(cleaned: pandas.DataFrame, train, val, test) -> tuple:
    """Per-class (train, val, test) counts that the smallest cleaned class can fill.

    When cleaning removed only a few images (the embedded set), validation and test keep their size, since they
    carry the reported numbers, and training is lowered. When the smallest class cannot fill half the training
    count (a user's small folders), all three become the largest counts in the same proportions (the study's
    200/25/25 of 250 scaled down, at least 1 validation and 1 test image). Fractions (all below 1) pass through.
    """
    if all(value < 1 for value in (train, val, test)):
        return train, val, test
    sizes = class_sizes(cleaned)
    if sizes.empty:
        raise UserError("cleaning left no images to split: every file was flagged (see flags.csv for why)")
    smallest, name = int(sizes.min()), sizes.idxmin()
    if smallest < 3:
        raise UserError(f"class {name!r} has {smallest} usable image(s) after cleaning: at least 3 are needed "
                        f"(one each for training, validation and test)")
    if smallest - val - test >= train / 2:
        return min(int(train), int(smallest - val - test)), int(val), int(test)
    scale = smallest / (train + val + test)
    val_count, test_count = max(1, int(val * scale)), max(1, int(test * scale))
    return min(int(train * scale), smallest - val_count - test_count), val_count, test_count


def split_sizes(manifest: pandas.DataFrame, train, val, test) -> tuple:
    """The (train, val, test) sizes to split ``manifest`` (cleaned) with, for fractions or counts.

    Fractions need at least two classes, and stay fractions while the smallest class gets at least one image of
    each evaluation split from them; otherwise (and for counts) counts that every class can fill, in the asked
    proportions (``fitting_counts``).
    """
    if are_fractions(train, val, test):
        sizes = class_sizes(manifest)
        if len(sizes) < 2:
            found = ", ".join(sizes.index) or "none"
            raise UserError(f"need at least two classes with usable images, found {len(sizes)} ({found})")
        asked = [value for value in (val, test) if value]
        if not asked or sizes.min() * min(asked) >= 1:
            return train, val, test
        train, val, test = (round(value * COUNT_SCALE) for value in (train, val, test))
    return fitting_counts(manifest, train, val, test)


def study_counts(per_class: int, study: SplitConfig = SplitConfig()) -> tuple:
    """(train, val, test) for ``per_class`` images in the study's 200/25/25 proportions: validation and test rounded
    (at least 1 each), training the rest (may be below 2 for tiny ``per_class``: the caller says what to do)."""
    total = study.train + study.val + study.test
    val, test = (max(1, round(per_class * share / total)) for share in (study.val, study.test))
    return per_class - val - test, val, test
