"""Leakage seen by a second signal: train/val/test pairs whose small grey thumbnails correlate, mirror included.

The cleaner and ``heroes.cleaning.leakage`` both compare perceptual hashes (DCT sign bits and gradients), so they
share one blind spot: a mirrored copy hashes far from its original. This check uses another signal, the
correlation of zero-mean 24 x 24 grey thumbnails taken as they are and mirrored: it sees mirrored, resized,
re-encoded and re-lit copies (brightness and contrast cancel out), and it cannot see crops or shifts of more than
a few pixels, which the hashes partly catch. Measured on the embedded set: such copies correlate at 0.9995
(median), distinct drawings at most 0.87 (tests/test_mirror_leakage.py). An ImageNet embedding was tried as the
second signal and rejected: on the embedded drawings, distinct figures of one costume score as close as copies.
"""

import numpy
import pandas
from PIL import Image, ImageOps

from heroes.data.decode import DecodeError, decode_image, fit_and_crop
from heroes.data.split import SPLIT_NAMES
from heroes.progress import bar

THUMB = 24
DEFAULT_THRESHOLD = 0.95
COLUMNS = ["correlation", "mirrored", "split_a", "path_a", "label_a", "split_b", "path_b", "label_b"]


def thumbnail(path, mirrored=False) -> numpy.ndarray:
    """The image's centre-cropped grey thumbnail as a zero-mean unit vector (zeros when it cannot be decoded)."""
    try:
        picture = Image.fromarray(fit_and_crop(decode_image(path), 4 * THUMB)).convert("L")
    except (DecodeError, OSError):
        return numpy.zeros(THUMB * THUMB)
    picture = picture.resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    vector = numpy.asarray(ImageOps.mirror(picture) if mirrored else picture, dtype="float64").ravel()
    vector -= vector.mean()
    return vector / max(numpy.linalg.norm(vector), 1e-9)


def cross_split_pairs(plain, mirrored, splits, threshold) -> list:
    """(i, j, correlation, mirrored?) for every pair in different splits at or above ``threshold``."""
    direct, flipped = plain @ plain.T, plain @ mirrored.T
    best = numpy.maximum(direct, flipped)
    names = numpy.asarray(splits)
    rows, columns = numpy.nonzero(numpy.triu(best >= threshold, k=1))
    return [(i, j, float(best[i, j]), bool(flipped[i, j] > direct[i, j]))
            for i, j in zip(rows, columns) if names[i] != names[j]]


def mirror_leaks(splits: pandas.DataFrame, threshold=DEFAULT_THRESHOLD, progress=True) -> pandas.DataFrame:
    """Cross-split pairs of used images whose thumbnails (or one mirrored) correlate at or above ``threshold``."""
    used = splits[splits["split"].isin(SPLIT_NAMES)].reset_index(drop=True)
    paths = list(used["path"])
    plain = numpy.stack([thumbnail(path) for path in bar(paths, desc="thumbnails", disable=not progress)]) \
        if paths else numpy.zeros((0, THUMB * THUMB))
    mirrored = numpy.stack([thumbnail(path, mirrored=True) for path in paths]) if paths else plain
    records = [{"correlation": round(value, 4), "mirrored": flip,
                "split_a": used["split"][i], "path_a": paths[i], "label_a": used["label"][i],
                "split_b": used["split"][j], "path_b": paths[j], "label_b": used["label"][j]}
               for i, j, value, flip in cross_split_pairs(plain, mirrored, used["split"], threshold)]
    return pandas.DataFrame(records, columns=COLUMNS).sort_values("correlation", ascending=False, ignore_index=True)


def describe(leaks: pandas.DataFrame, threshold=DEFAULT_THRESHOLD) -> str:
    """One line for people."""
    if leaks.empty:
        return f"thumbnail check (mirror-aware): no train/val/test pair correlates at {threshold} or more"
    mirrored = int(leaks["mirrored"].sum())
    return (f"thumbnail check (mirror-aware): {len(leaks)} train/val/test pair(s) correlate at {threshold} or more "
            f"({mirrored} of them mirrored): likely copies the hashes missed; look at them")
