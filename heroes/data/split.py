"""Stratified, group-aware, seeded-hash train/val/test splits of a manifest.

Every image gets a position from a seeded hash of its *group's* content key (the
smallest sha256 in the group), never from the order files were listed. Groups are
the connected components of "same sha256" and "same near-duplicate ``group_id``"
(the cleaning step writes that column), so duplicates can never straddle splits.

Two modes, per class:

* fractions (``--test 0.1``): an image's split depends only on its own hash
  compared with fixed thresholds, so adding images never moves existing ones.
* counts (``--test 25``, the study's 200/25/25): groups are taken in hash order,
  test first, then validation, then train; a class with more images than asked
  leaves the surplus ``unused``. Adding images only moves existing ones when a new
  image sorts into the first ``test + val`` positions (probability
  ``(test + val) / n`` each), and then only one step along test -> val -> train.

Images waiting for review: a ``test_only`` row (cleaning holds it out pending review: a doubtful label, a
cross-class copy) takes the place its group's hash gives it, but only a test place is kept: one that falls in
train or val becomes ``unused`` with ``held_out_of`` naming that split, and in counts mode it fills no train or val
quota. So no review flag, and no compared model's embedding behind one, chooses the test set; ``pending_review``
(any image still waiting, ``flags`` its flags) lets a scorer score the test split both as it is and ``unflagged``.
``flag_removals`` counts what each flag took out of each split.
"""

import hashlib
import sys

import numpy
import pandas
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from heroes.data import sizing
from heroes.data.scan import data_rows
from heroes.errors import UserError
from heroes.io import absolute_paths, check_output_path, printable, read_csv, resolved_paths, write_csv

SPLIT_NAMES = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "label", "sha256", "group_key", "split"]
# Written after the manifest's extra columns: the image's flags (";"-joined, "" when none), whether it waits for
# review, whether it may only be tested (held out of train and val), and the split it was held out of ("" if none).
REVIEW_COLUMNS = ["flags", "pending_review", "test_only", "held_out_of"]
REVIEW_FLAGS = ("pending_review", "test_only")
REMOVAL_COLUMNS = ["train_removed", "val_removed", "test_marked"]


def _hash_unit(seed: int, key: str) -> float:
    """A uniform number in [0, 1) from a seeded sha256 (never Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def link_equal(values: pandas.Series) -> tuple:
    """Edges (first, second row positions) chaining the rows that share a non-empty value."""
    frame = pandas.DataFrame({"value": values.fillna("").to_numpy(), "position": numpy.arange(len(values))})
    frame = frame[frame["value"] != ""].sort_values(["value", "position"])
    same = frame["value"].to_numpy()[1:] == frame["value"].to_numpy()[:-1]
    rows = frame["position"].to_numpy()
    return rows[:-1][same], rows[1:][same]


def linked_components(count: int, first, second) -> numpy.ndarray:
    """Connected-component label of each of ``count`` rows linked by the edges ``first[i]``-``second[i]``: the one
    grouping of copies (cleaning's duplicate groups, the split's content groups)."""
    first, second = numpy.asarray(first, dtype=numpy.int64), numpy.asarray(second, dtype=numpy.int64)
    graph = coo_matrix((numpy.ones(len(first)), (first, second)), shape=(count, count))
    return connected_components(graph, directed=False)[1]


def group_keys(frame: pandas.DataFrame) -> pandas.Series:
    """Content key per row: the smallest sha256 among rows linked by sha256 or (non-empty) near-duplicate
    ``group_id``."""
    edges = [link_equal(frame["sha256"])]
    for column in ("group_id", "group_key"):  # a splits frame keeps its groups in group_key
        if column in frame.columns:
            edges.append(link_equal(frame[column]))
    first = numpy.concatenate([pair[0] for pair in edges])
    second = numpy.concatenate([pair[1] for pair in edges])
    component = pandas.Series(linked_components(len(frame), first, second), index=frame.index)
    return frame["sha256"].groupby(component).transform("min")


def _usable_rows(manifest: pandas.DataFrame) -> pandas.DataFrame:
    """Decodable training-pool rows (``scan.data_rows``: status ok, not an unmasked-hero probe), each with a sha256."""
    usable = manifest[data_rows(manifest, usable=True)]
    if usable.empty:
        raise UserError("the manifest has no usable images (status ok) to split")
    unhashed = usable["sha256"].fillna("").str.strip() == ""
    if unhashed.any():  # one empty key would join them all into one group and leave every image unused
        example = usable["path"][unhashed].iloc[0]
        raise UserError(f"{int(unhashed.sum())} usable image(s) have no sha256 (e.g. {example}); re-run the scan")
    return usable.copy()


def _fraction_split(unit: float, train: float, val: float, test: float) -> str:
    """Fixed thresholds on the hash: test, then val, then train, the rest unused."""
    if unit < test:
        return "test"
    if unit < test + val:
        return "val"
    if unit < test + val + train:
        return "train"
    return "unused"


def _count_split(class_rows: pandas.DataFrame, quotas: dict, assigned: dict) -> dict:
    """Fill test, val, train quotas in hash order of the class's groups; ``test_only`` rows fill test places only
    (their group still goes where its size fits, to be held out of train or val afterwards)."""
    sizes = class_rows.groupby("group_key").size()
    trainable = (~class_rows["test_only"]).groupby(class_rows["group_key"]).sum()
    order = class_rows.drop_duplicates("group_key").sort_values(["unit", "group_key"])["group_key"]
    remaining = dict(quotas)
    result = {}
    for key in order:
        if key in assigned:  # a group shared with an earlier class keeps its split
            result[key] = assigned[key]
        else:
            result[key] = next((name for name in ("test", "val", "train") if remaining[name] >= sizes[key]),
                               "unused")
        if result[key] != "unused":
            remaining[result[key]] -= sizes[key] if result[key] == "test" else trainable[key]
    return result


def _warn_empty_splits(usable: pandas.DataFrame, fractions: dict) -> None:
    """One stderr line per split asked for that the fractions leave empty in some class (too few images for it)."""
    present = set(zip(usable["label"], usable["split"]))
    for name, fraction in fractions.items():
        empty = sorted(label for label in set(usable["label"]) if fraction and (label, name) not in present)
        if empty:
            print(f"warning: --{name} {fraction:g} leaves {len(empty)} class(es) with no {name} images: "
                  f"{', '.join(map(printable, empty))}; give per-class counts or more images", file=sys.stderr)


def make_splits(manifest, train=200, val=25, test=25, seed=0) -> pandas.DataFrame:
    """Assign every usable image to train/val/test (or ``unused``), per class, group-aware.

    Rows marked ``test_only`` (``heroes.data.prepare.split_pool``; a splits frame keeps the mark) are tested or
    unused, never trained or validated on (module docstring); the review columns say which and why.
    """
    values = (train, val, test)
    fractions = sizing.are_fractions(*values)
    usable = _review_state(_usable_rows(manifest))
    usable["group_key"] = group_keys(usable)
    usable["unit"] = [_hash_unit(seed, key) for key in usable["group_key"]]
    if fractions:
        usable["split"] = [_fraction_split(unit, train, val, test) for unit in usable["unit"]]
    else:
        quotas = {"train": int(train), "val": int(val), "test": int(test)}
        sizing.check_counts(usable[~usable["test_only"]], sum(quotas.values()))
        assigned = {}
        for label in sorted(usable["label"].unique()):
            assigned.update(_count_split(usable[usable["label"] == label], quotas, assigned))
        usable["split"] = usable["group_key"].map(assigned)
    held = usable["test_only"] & usable["split"].isin(("train", "val"))
    usable["held_out_of"] = usable["split"].where(held, "")
    usable.loc[held, "split"] = "unused"
    if fractions:
        _warn_empty_splits(usable, dict(zip(SPLIT_NAMES, values)))
    extra = [column for column in ("relpath", "class_id", "width", "height", "format") if column in usable.columns]
    columns = SPLIT_COLUMNS + extra + REVIEW_COLUMNS
    return usable[columns].sort_values(["label", "split", "path"]).reset_index(drop=True)


def _review_state(usable: pandas.DataFrame) -> pandas.DataFrame:
    """``flags``, ``pending_review`` and ``test_only`` of each row, from the columns a cleaned manifest or a splits
    frame has (``action == "review"`` is pending); absent ones mean no flag, nothing pending, nothing held."""
    frame = usable.copy()
    frame["flags"] = frame["flags"].astype(object).fillna("").astype(str) if "flags" in frame.columns else ""
    if "pending_review" in frame.columns:
        frame["pending_review"] = as_bool(frame["pending_review"], "pending_review")
    else:
        frame["pending_review"] = frame["action"].eq("review") if "action" in frame.columns else False
    frame["test_only"] = as_bool(frame["test_only"], "test_only") if "test_only" in frame.columns else False
    frame["pending_review"] |= frame["test_only"]  # held out because it waits for a person
    return frame


def as_bool(values: pandas.Series, column: str) -> pandas.Series:
    """A yes/no column as booleans, whether it holds bools or the text a CSV gives back (True/False, 1/0, empty)."""
    if values.dtype == bool:
        return values
    text = values.astype(object).fillna("").astype(str).str.strip().str.lower()
    known = {"true": True, "1": True, "false": False, "0": False, "": False}
    unknown = ~text.isin(list(known))
    if unknown.any():
        raise UserError(f"column {column} holds {values[unknown].iloc[0]!r}: expected True or False")
    return text.map(known).astype(bool)


def write_splits(splits: pandas.DataFrame, path, inputs=(), forbidden_dirs=()) -> None:
    """Write the splits CSV atomically, its paths absolute (``check_output_path`` first)."""
    check_output_path(path, inputs=inputs, forbidden_dirs=forbidden_dirs)
    write_csv(splits.assign(path=absolute_paths(splits["path"])), path)


def read_splits(path) -> pandas.DataFrame:
    """Read a splits CSV, checking its columns and split names; paths come back absolute (relative ones are taken
    from the file's folder). An unknown split (``TRAIN``) is refused: ignoring it could hide a leak."""
    splits = read_csv(path, required=SPLIT_COLUMNS, what="splits file")
    check_split_names(splits, f"splits file {path}")
    for column in REVIEW_FLAGS:
        if column in splits.columns:
            splits[column] = as_bool(splits[column], f"{column} of splits file {path}")
    splits["path"] = resolved_paths(splits["path"], path)
    return splits


def check_split_names(splits: pandas.DataFrame, source="splits") -> None:
    """Every row is train, val, test or unused; anything else (``TRAIN``) is a one-line ``UserError``."""
    unknown = ~splits["split"].isin((*SPLIT_NAMES, "unused"))
    if unknown.any():
        first = unknown.to_numpy().argmax()
        raise UserError(f"{source}: data row {first + 1} has the unknown split {splits['split'].iloc[first]!r} "
                        f"(expected {', '.join(SPLIT_NAMES)} or unused)")


def describe_splits(splits: pandas.DataFrame, out_path=None) -> str:
    """A per-class table of split counts, for people."""
    table = pandas.crosstab(splits["label"].map(printable), splits["split"]).reindex(
        columns=[name for name in (*SPLIT_NAMES, "unused") if name in set(splits["split"])]
    )
    lines = [table.to_string()]
    if out_path is not None:
        lines.append(f"wrote {len(splits)} rows to {printable(str(out_path))}")
    return "\n".join(lines)


def pending_mask(frame: pandas.DataFrame, splits: pandas.DataFrame | None = None) -> pandas.Series:
    """True for each row of ``frame`` whose image waits for review (``pending_review`` of the split).

    ``frame`` is a splits frame (its own column is used) or any frame with ``path`` and ``sha256`` (a predictions
    frame), looked up in ``splits`` by path, and by sha256 where the path is not there (a copy elsewhere). A row in
    neither, or a split made before the column existed, is a ``UserError``: guessing would blur the two scores.
    """
    source = frame if splits is None else splits
    if "pending_review" not in source.columns:
        raise UserError("the split has no pending_review column (made before flagged test images were kept); "
                        "re-run notebook 01 or the split")
    pending = as_bool(source["pending_review"], "pending_review")
    if splits is None:
        return pending
    by_path = dict(zip(splits["path"], pending))
    by_sha256 = pending.groupby(splits["sha256"].to_numpy()).any().to_dict()
    found = [by_path.get(path, by_sha256.get(sha256)) for path, sha256 in zip(frame["path"], frame["sha256"])]
    missing = [path for path, value in zip(frame["path"], found) if value is None]
    if missing:
        raise UserError(f"{len(missing)} row(s) are not in the split by path or sha256 (e.g. {printable(missing[0])})")
    return pandas.Series(found, index=frame.index, dtype=bool)


def unflagged(frame: pandas.DataFrame, splits: pandas.DataFrame | None = None) -> pandas.DataFrame:
    """The rows of ``frame`` whose image waits for no review: the test split (or its predictions, matched to
    ``splits`` by path or sha256; ``pending_mask``) with every flagged image removed, the second way to score it."""
    return frame[~pending_mask(frame, splits)]


def flag_removals(splits: pandas.DataFrame, flags: pandas.DataFrame | None = None) -> pandas.DataFrame:
    """Images each review flag took out, per split: held out of train and of val (``train_removed``,
    ``val_removed``), and kept in test but left out of its unflagged score (``test_marked``).

    One row per primary flag (the ``flag`` column of ``flags`` when given, matched by path, else the first of the
    split's ``flags``), most images first, then ``total``. Only images waiting for review count: a decided one is
    trained, validated and tested like any other.
    """
    pending = pending_mask(splits)
    primary = splits["flags"].astype(str).str.split(";").str[0]
    if flags is not None:
        primary = splits["path"].map(dict(zip(flags["path"], flags["flag"]))).fillna(primary)
    counted = pandas.DataFrame({
        "flag": primary.where(primary != "", "(none)"),
        "train_removed": pending & (splits["held_out_of"] == "train"),
        "val_removed": pending & (splits["held_out_of"] == "val"),
        "test_marked": pending & (splits["split"] == "test"),
    })[pending]
    table = counted.groupby("flag")[REMOVAL_COLUMNS].sum().astype(int)
    table = table[table.sum(axis=1) > 0]
    table = table.assign(_total=table.sum(axis=1)).sort_values("_total", ascending=False, kind="stable")
    table = table.drop(columns="_total")
    table.loc["total"] = table.sum() if len(table) else 0
    return table.astype(int)
