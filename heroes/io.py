"""Atomic file writes (an output is either complete or absent, never half-written), CSV and strict JSON."""

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy

from heroes.errors import UserError


def jsonable(value):
    """``value`` with numpy scalars made Python and NaN made None, so ``json.dump`` writes strict JSON."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, numpy.ndarray)):
        return [jsonable(item) for item in value]
    if isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    ``suffix`` ends the temporary name: Keras picks its format from it (``.keras``, ``.weights.h5``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(handle)
        # mkstemp creates 0600 files; give outputs the usual permissions (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_csv(frame, path) -> Path:
    """Write a pandas DataFrame to CSV atomically."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
    return Path(path)


def read_csv(path, required=(), what="file"):
    """Read a CSV, raising ``UserError`` when it is missing or lacks ``required`` columns."""
    import pandas

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        frame = pandas.read_csv(path, keep_default_na=False, dtype=str)
    except (pandas.errors.ParserError, pandas.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{what} {path} is not a readable CSV: {error}") from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise UserError(f"{what} {path} lacks required column(s): {', '.join(missing)}")
    return frame


def write_json(path, data, indent=2) -> Path:
    """Strict JSON (numpy scalars as Python, NaN as null), written atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(jsonable(data), indent=indent, default=str) + "\n")
    return Path(path)
