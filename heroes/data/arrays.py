"""Decode each image once into fixed-size uint8 arrays, cached on disk, with paths kept beside them.

Resize policy (evaluation): aspect-preserving resize of the shorter side to the
target size, then a centre crop (``heroes.data.decode.fit_and_crop``), the same policy
``predict`` uses, so training and prediction see identical pixels.

Cache key: the sha256 of the ordered image contents requested, the size and the
policy version; the file lives under ``data/processed/`` and is memory-mapped back.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy
import pandas

from heroes import paths
from heroes.config import CLASSES
from heroes.errors import UserError
from heroes.io import atomic_path, write_json
from heroes.progress import bar

RESIZE_POLICY = "shorter-side-resize+centre-crop/v1"


@dataclass(frozen=True)
class ImageSet:
    """Images of one split in a fixed order, with labels, file paths and hashes beside them."""

    images: numpy.ndarray  # (N, size, size, 3) uint8, raw RGB 0-255
    labels: numpy.ndarray  # (N,) int64 indices into class_names
    paths: tuple
    sha256: tuple
    class_names: tuple

    def __len__(self) -> int:
        return len(self.labels)


def class_names_of(frame: pandas.DataFrame) -> tuple:
    """Class names in the study's order when they are the study's, otherwise alphabetical."""
    labels = sorted(set(frame["label"]))
    ids = dict(zip(frame["label"], frame["class_id"])) if "class_id" in frame.columns else {}
    known = {name: index for index, name in enumerate(CLASSES)}
    return tuple(sorted(labels, key=lambda label: (known.get(ids.get(label, label), len(known)), label)))


def cache_key(sha256_values, size: int) -> str:
    """Key of a decoded-array cache: image contents in order, size and resize policy."""
    digest = hashlib.sha256(f"{RESIZE_POLICY}|{size}|".encode())
    for value in sha256_values:
        digest.update(value.encode())
    return digest.hexdigest()[:20]


def _decode_all(frame: pandas.DataFrame, size: int, progress: bool) -> numpy.ndarray:
    """Decode and resize each row's file; any failure names the file."""
    from heroes.data.decode import DecodeError, decode_image, fit_and_crop

    out = numpy.empty((len(frame), size, size, 3), dtype=numpy.uint8)
    rows = zip(frame["path"], frame["sha256"])
    for index, (path, _) in enumerate(bar(list(rows), desc=f"decoding {size}px", disable=not progress)):
        try:
            out[index] = fit_and_crop(decode_image(path), size)
        except (DecodeError, OSError) as error:
            raise UserError(f"cannot decode {path} ({error}); re-run the scan, the data changed") from None
    return out


def decoded_arrays(frame: pandas.DataFrame, size: int, cache_dir=None, progress=True) -> numpy.ndarray:
    """uint8 arrays for the unique images of ``frame`` in row order, from the cache when present."""
    if size < 8:
        raise UserError(f"image size {size} is too small")
    cache_dir = Path(cache_dir or paths.PROCESSED)
    key = cache_key(frame["sha256"], size)
    array_path = cache_dir / f"arrays-{size}px-{key}.npy"
    if array_path.is_file():
        return numpy.load(array_path, mmap_mode="r")
    arrays = _decode_all(frame, size, progress)
    with atomic_path(array_path) as temporary:
        with open(temporary, "wb") as handle:
            numpy.save(handle, arrays)
    index_path = array_path.with_suffix(".json")
    write_json(index_path, {"policy": RESIZE_POLICY, "size": size, "sha256": list(frame["sha256"])}, indent=None)
    return arrays


def load_split_arrays(splits: pandas.DataFrame, size: int, class_names=None, cache_dir=None, progress=True) -> dict:
    """One ``ImageSet`` per split (train/val/test present in ``splits``), ordered by path."""
    used = splits[splits["split"].isin(["train", "val", "test"])].sort_values(["split", "path"])
    class_names = tuple(class_names or class_names_of(used))
    unknown = sorted(set(used["label"]) - set(class_names))
    if unknown:
        raise UserError(f"labels {unknown} are not among the class names {list(class_names)}")
    # Decode unique contents once for all splits; duplicates share their pixels.
    unique = used.drop_duplicates("sha256").sort_values("sha256")
    arrays = decoded_arrays(unique, size, cache_dir, progress)
    position = {value: index for index, value in enumerate(unique["sha256"])}
    label_index = {name: index for index, name in enumerate(class_names)}
    result = {}
    for name, rows in used.groupby("split", sort=False):
        take = numpy.array([position[value] for value in rows["sha256"]], dtype=numpy.int64)
        result[name] = ImageSet(
            images=numpy.asarray(arrays[take]),
            labels=numpy.array([label_index[label] for label in rows["label"]], dtype=numpy.int64),
            paths=tuple(rows["path"]),
            sha256=tuple(rows["sha256"]),
            class_names=class_names,
        )
    return result
