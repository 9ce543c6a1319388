"""Decode each image once and take its fingerprints: pixel digest, perceptual hashes, spread, a colour embedding."""

import hashlib
import os
import sys
import warnings

import numpy
import pandas
from PIL import Image

from heroes.cleaning.near_duplicates import HASH_WORDS, from_hex, perceptual_hash, to_hex
from heroes.data.decode import DecodeError, decode_image
from heroes.data.workers import fork_context, ordered_map

COLUMNS = ["path", "pixel_sha256", "hash", "spread", "error"]
# Side of the box-filtered thumbnail whose colour spread measures "information":
# averaging 16x16 blocks removes sensor noise, so a flat image with noise still reads flat.
SPREAD_SIDE = 16
HISTOGRAM_BINS = 4  # per channel: 4x4x4 = 64 colour bins
LAYOUT_SIDE = 4  # a 4x4 RGB thumbnail (48 numbers) adds coarse layout to the colour histogram
POOL_MIN_FILES = 200
CHUNK_SIZE = 32
EMBEDDING_SIZE = HISTOGRAM_BINS**3 + LAYOUT_SIDE * LAYOUT_SIDE * 3


def pixel_digest(image: Image.Image) -> str:
    """sha256 of the decoded RGB pixels and the size: equal for lossless re-encodings of one picture."""
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def spread(image: Image.Image) -> float:
    """Largest per-channel standard deviation of a 16x16 box thumbnail (0 for a flat image)."""
    small = numpy.asarray(image.resize((SPREAD_SIDE, SPREAD_SIDE), Image.Resampling.BOX), dtype=numpy.float32)
    return float(small.reshape(-1, 3).std(axis=0).max())


def embedding(image: Image.Image) -> numpy.ndarray:
    """A cheap appearance vector: square-rooted colour histogram plus a 4x4 colour layout."""
    small = numpy.asarray(image.resize((64, 64), Image.Resampling.BOX))
    bins = (small // (256 // HISTOGRAM_BINS)).reshape(-1, 3).astype(numpy.int64)
    index = (bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]
    histogram = numpy.bincount(index, minlength=HISTOGRAM_BINS**3) / len(index)
    layout = numpy.asarray(image.resize((LAYOUT_SIDE, LAYOUT_SIDE), Image.Resampling.BOX), dtype=numpy.float32)
    # sqrt turns Euclidean distance on histograms into the Hellinger distance.
    return numpy.concatenate([numpy.sqrt(histogram), layout.reshape(-1) / 255.0 / 4]).astype(numpy.float32)


def fingerprint(path) -> tuple:
    """(row dict, embedding) of one file; a file that no longer decodes gets ``error`` set."""
    row = dict.fromkeys(COLUMNS, "")
    row["path"] = path
    try:
        image = decode_image(path)
    except (DecodeError, OSError) as error:
        row["error"] = getattr(error, "reason", str(error))
        return row, numpy.zeros(EMBEDDING_SIZE, dtype=numpy.float32)
    row.update(pixel_sha256=pixel_digest(image), hash=to_hex(perceptual_hash(image)), spread=spread(image))
    return row, embedding(image)


def _quiet() -> None:
    """Pillow warns on odd EXIF and palettes; the flags report what matters."""
    warnings.simplefilter("ignore")


def hash_words(frame) -> numpy.ndarray:
    """The ``hash`` column as an (n, HASH_WORDS) uint64 array (zeros where the file did not decode)."""
    return from_hex([value or "0" * 16 * HASH_WORDS for value in frame["hash"]]).reshape(len(frame), HASH_WORDS)


def fingerprint_all(paths, progress: bool = True, workers: int | None = None) -> tuple:
    """Fingerprints of ``paths`` in order: ``(frame with COLUMNS, (n, EMBEDDING_SIZE) float32)``.

    Uses ``min(2, cpu count)`` processes for more than ``POOL_MIN_FILES`` files.
    """
    from tqdm import tqdm

    paths = list(paths)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(total=len(paths), desc="fingerprints", unit="file", file=sys.stderr, disable=None if progress else True)
    results = []
    with bar, warnings.catch_warnings():
        _quiet()
        context = fork_context() if workers > 1 and len(paths) >= POOL_MIN_FILES else None
        computed = map(fingerprint, paths) if context is None else \
            ordered_map(fingerprint, paths, workers, context, CHUNK_SIZE, initializer=_quiet)
        for result in computed:  # workers stop on Ctrl-C and never fork a threaded (TensorFlow) process
            results.append(result)
            bar.update()
    frame = pandas.DataFrame([row for row, _ in results], columns=COLUMNS)
    vectors = numpy.stack([vector for _, vector in results]) if results else numpy.zeros((0, EMBEDDING_SIZE))
    frame["spread"] = pandas.to_numeric(frame["spread"].replace("", numpy.nan))
    return frame, vectors.astype(numpy.float32)
