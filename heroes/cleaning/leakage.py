"""Leakage check: every exact or near-duplicate pair of images that sits in two different splits."""

import numpy
import pandas

from heroes.cleaning.fingerprints import fingerprint_all, hash_words
from heroes.cleaning.near_duplicates import HASH_WORDS, close_pairs
from heroes.data.split import SPLIT_NAMES, check_split_names
from heroes.errors import UserError
from heroes.io import printable

LEAK_COLUMNS = ["kind", "distance", "split_a", "path_a", "label_a", "split_b", "path_b", "label_b"]


def check_same_manifest(splits: pandas.DataFrame, manifest: pandas.DataFrame, splits_name="splits file",
                        manifest_name="manifest") -> None:
    """A split file belongs to a manifest when each of its paths is there with the same sha256."""
    known = dict(zip(manifest["path"], manifest["sha256"]))
    missing = [path for path in splits["path"] if path not in known]
    changed = [path for path, sha in zip(splits["path"], splits["sha256"]) if path in known and known[path] != sha]
    if missing or changed:
        example = (missing or changed)[0]
        raise UserError(f"{splits_name} was not made from {manifest_name}: {len(missing)} of its {len(splits)} paths "
                        f"are not in it and {len(changed)} have another sha256 (e.g. {example})")


def check_threshold(threshold) -> None:
    """A hash distance is a whole number of bits between 0 and the hash's length."""
    bits = 64 * HASH_WORDS
    if isinstance(threshold, bool) or not isinstance(threshold, (int, numpy.integer)) or not 0 <= threshold <= bits:
        raise UserError(f"near-duplicate threshold must be a whole number of bits from 0 to {bits}, got {threshold!r}")


def _pairs_of_equal(values: numpy.ndarray) -> tuple:
    """Every pair (i < j) of positions holding the same non-empty value."""
    frame = pandas.DataFrame({"value": values, "position": numpy.arange(len(values))})
    frame = frame[frame["value"] != ""]
    pairs = frame.merge(frame, on="value")
    pairs = pairs[pairs["position_x"] < pairs["position_y"]]
    return pairs["position_x"].to_numpy(), pairs["position_y"].to_numpy()


def find_leaks(splits: pandas.DataFrame, threshold: int | None = None, progress=True, workers=None) -> pandas.DataFrame:
    """Pairs of train/val/test images in different splits that are the same picture (exact) or near it.

    ``exact``: same sha256 or same decoded pixels; ``near``: hash distance within
    ``threshold`` (default: the cleaning threshold). Files are fingerprinted anew, so
    the check trusts nothing the cleaning step wrote.
    """
    from heroes.cleaning.flags import NEAR_THRESHOLD

    threshold = NEAR_THRESHOLD if threshold is None else threshold
    check_threshold(threshold)
    check_split_names(splits)
    used = splits[splits["split"].isin(SPLIT_NAMES)].reset_index(drop=True)
    prints, _ = fingerprint_all(used["path"], progress=progress, workers=workers)
    broken = prints["error"] != ""
    if broken.any():
        raise UserError(f"cannot decode {prints['path'][broken].iloc[0]} ({prints['error'][broken].iloc[0]}): "
                        f"re-run the scan, the data changed")
    sha_a, sha_b = _pairs_of_equal(used["sha256"].to_numpy())
    pixel_a, pixel_b = _pairs_of_equal(prints["pixel_sha256"].to_numpy())
    near, distance = close_pairs(hash_words(prints), threshold)
    frame = pandas.DataFrame({
        "a": numpy.concatenate([sha_a, pixel_a, near[:, 0]]),
        "b": numpy.concatenate([sha_b, pixel_b, near[:, 1]]),
        "kind": ["exact"] * (len(sha_a) + len(pixel_a)) + ["near"] * len(near),
        "distance": numpy.concatenate([numpy.zeros(len(sha_a) + len(pixel_a), dtype=numpy.int64), distance]),
    })
    # One row per pair: an exact pair is also a near pair at distance 0.
    frame = frame.sort_values(["a", "b", "kind"]).drop_duplicates(["a", "b"])
    split = used["split"].to_numpy()
    frame = frame[split[frame["a"]] != split[frame["b"]]]
    return _describe_pairs(used, frame)


def _describe_pairs(used: pandas.DataFrame, pairs: pandas.DataFrame) -> pandas.DataFrame:
    """Readable leak rows, the earlier split first (train, then val, then test)."""
    order = {name: index for index, name in enumerate(SPLIT_NAMES)}
    rows = []
    for a, b, kind, distance in zip(pairs["a"], pairs["b"], pairs["kind"], pairs["distance"]):
        first, second = used.iloc[a], used.iloc[b]
        if order[first["split"]] > order[second["split"]]:
            first, second = second, first
        rows.append({"kind": kind, "distance": int(distance),
                     "split_a": first["split"], "path_a": first["path"], "label_a": first["label"],
                     "split_b": second["split"], "path_b": second["path"], "label_b": second["label"]})
    frame = pandas.DataFrame(rows, columns=LEAK_COLUMNS)
    return frame.sort_values(["split_a", "split_b", "path_a", "path_b"]).reset_index(drop=True)


def describe_leaks(leaks: pandas.DataFrame, out_path=None) -> str:
    """One line of counts by kind and split pair (and where the list went)."""
    if leaks.empty:
        text = "no exact or near-duplicate pair crosses train/val/test"
    else:
        counts = leaks.groupby(["kind", "split_a", "split_b"]).size()
        text = f"{len(leaks)} duplicate pairs cross splits: " + ", ".join(
            f"{kind} {a}/{b} {count}" for (kind, a, b), count in counts.items())
    return text + (f"; list in {printable(str(out_path))}" if out_path is not None else "")
