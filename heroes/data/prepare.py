"""The one data preparation: scan (or read) a manifest, clean it, size and split it, and optionally decode the split.

`heroes train`, notebook 01 and the real-photo benchmarks all prepare data through ``prepare``. It reads and never
writes (decoded arrays go to ``cache_dir`` when one is given); the callers write what they keep.

Cleaning sits above the data modules (``heroes.cleaning.flags`` imports ``heroes.data.scan`` and
``heroes.data.split``), so it is imported inside ``prepare``: this module is the pipeline's top, nothing in
``heroes.data`` or ``heroes.cleaning`` imports it.
"""

from pathlib import Path

import pandas

from heroes.data import arrays, scan, sizing
from heroes.data.split import as_bool, make_splits
from heroes.errors import UserError

DEFAULT_SPLIT = (0.8, 0.1, 0.1)  # `heroes train --split`: train, validation, test fractions of every class


def read_source(source, progress: bool = True) -> pandas.DataFrame:
    """A manifest from ``source``: a folder of class folders (scanned, read-only), a manifest CSV, or a DataFrame."""
    if isinstance(source, pandas.DataFrame):
        return source.copy()
    path = Path(source)
    if path.is_dir():
        return scan.scan(path, progress=progress)
    if path.is_file():
        return scan.read_manifest(path)
    raise UserError(f"data folder or manifest not found: {source}")


def prepare(source, *, split=DEFAULT_SPLIT, seed: int = 0, image_size: int | None = None, cache_dir=None,
            decisions=None, config=None, progress: bool = True) -> dict:
    """Scan, clean, split and (with ``image_size``) decode: ``{manifest, decisions, cleaned, sizes, splits, sets}``.

    ``source``: a data folder, a manifest CSV or a manifest DataFrame. ``split``: (train, val, test) fractions or
    per-class counts, fitted to the cleaned classes (``split_cleaned``; ``sizes`` is what was used; images waiting
    for review are tested where the hash puts them in test, never trained or validated on); None stops after
    cleaning (``sizes``, ``splits``, ``sets`` None) for a caller that saves the flags first, so that a class too
    small to split still leaves its review rows. ``decisions``: review decisions (a DataFrame, or the path of
    ``decisions.csv``, read against the manifest). ``config``: a ``heroes.cleaning.flags.CleanConfig`` (default: the
    measured thresholds, no backbone). ``sets`` is None without ``image_size``; decoded images are cached under
    ``cache_dir`` when given.
    """
    from heroes.cleaning import flags, review

    manifest = read_source(source, progress)
    if not scan.data_rows(manifest, usable=True).any():
        raise UserError(f"no readable images {_where(source)} (expected one sub-folder per class)")
    if decisions is not None and not isinstance(decisions, pandas.DataFrame):
        decisions = review.read_decisions(decisions, manifest)
    cleaned = flags.clean(manifest, decisions, config or flags.CleanConfig(), progress=progress)
    sizes, splits, sets = None, None, None
    if split is not None:
        sizes, splits = split_cleaned(cleaned, split, seed)
    if splits is not None and image_size is not None:
        sets = arrays.load_split_arrays(splits, image_size, cache_dir=cache_dir, progress=progress)
    return {"manifest": manifest, "decisions": decisions, "cleaned": cleaned, "sizes": sizes, "splits": splits,
            "sets": sets}


def split_cleaned(cleaned, split=DEFAULT_SPLIT, seed: int = 0) -> tuple:
    """(sizes, splits) of a cleaning: ``split`` fractions or counts fitted to the cleaned classes
    (``heroes.data.sizing.split_sizes``), then the seeded, group-aware ``make_splits`` of ``split_pool(cleaned)``.

    ``cleaned``: a ``heroes.cleaning.flags.CleanResult`` (the images it holds out pending review join the split as
    ``test_only``), or a manifest DataFrame, split as it is.
    """
    pool = cleaned if isinstance(cleaned, pandas.DataFrame) else split_pool(cleaned)
    trainable = pool[~as_bool(pool["test_only"], "test_only")] if "test_only" in pool.columns else pool
    sizes = sizing.split_sizes(trainable, *split)
    return sizes, make_splits(pool, *sizes, seed=seed)


def split_pool(cleaned) -> pandas.DataFrame:
    """The cleaned manifest of a ``CleanResult`` plus the class images it holds out while they wait for review (a
    doubtful label, a cross-class copy), marked ``test_only``: they may be tested, never trained or validated on, so
    no review flag (and no compared model's embedding behind one) filters the test set. Dropped files stay out."""
    manifest = cleaned.manifest
    waiting = cleaned.flags.loc[cleaned.flags["action"] == "review", ["path", "flags"]]
    waiting = waiting[~waiting["path"].isin(set(manifest["path"]))]
    rows = cleaned.fingerprints[cleaned.fingerprints["path"].isin(set(waiting["path"]))]
    held = rows[[column for column in manifest.columns if column in rows.columns]].merge(waiting, on="path")
    held = held.assign(action="review", test_only=True)
    pool = pandas.concat([manifest.assign(test_only=False), held], ignore_index=True)
    return pool.sort_values("path").reset_index(drop=True)


def _where(source) -> str:
    """Where the images were looked for, in a message."""
    return "in the manifest" if isinstance(source, pandas.DataFrame) else f"under {source}"
