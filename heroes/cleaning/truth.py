"""Score the cleaning flags against the injected-defect truth: recall per kind, confusion, clean drops, thresholds."""

import numpy
import pandas

from heroes.cleaning.fingerprints import hash_words
from heroes.cleaning.near_duplicates import close_pairs, distances
from heroes.data.scan import data_rows
from heroes.io import read_csv

# The flag that finds each injected kind (the last two only ``clean --backbone`` can see).
EXPECTED_FLAG = {
    "corrupt": "unreadable",
    "not_image": "unreadable",
    "exact_duplicate": "exact_duplicate",
    "near_duplicate": "near_duplicate",
    "cross_class_duplicate": "cross_class_duplicate",
    "tiny": "tiny",
    "mislabelled": "label_issue",
    "off_class": "off_class",
}
# Kinds whose file is a (possibly altered) copy of its ``source``: the pairs a near-duplicate hash must join.
COPY_KINDS = ("near_duplicate", "cross_class_duplicate", "tiny")


def read_truth(path) -> pandas.DataFrame:
    """The truth CSV written by ``synth --truth``."""
    return read_csv(path, required=["path", "kind", "source"], what="truth file")


def _flag_sets(flags: pandas.DataFrame) -> dict:
    return {path: set(value.split(";")) for path, value in zip(flags["path"], flags["flags"])}


def confusion(manifest: pandas.DataFrame, truth: pandas.DataFrame, flags: pandas.DataFrame) -> pandas.DataFrame:
    """Files per injected kind (rows; ``clean`` for the rest of the class data) and flag (columns).

    A file carrying several flags counts once under each; ``none`` counts files with no flag.
    """
    kinds = dict(zip(truth["path"], truth["kind"]))
    flag_sets = _flag_sets(flags)
    data = manifest[data_rows(manifest)]
    records = []
    for path in data["path"]:
        for flag in sorted(flag_sets.get(path, {"none"})):
            records.append((kinds.get(path, "clean"), flag))
    frame = pandas.DataFrame(records, columns=["kind", "flag"])
    table = pandas.crosstab(frame["kind"], frame["flag"])
    order = [kind for kind in (*EXPECTED_FLAG, "clean") if kind in table.index]
    columns = sorted(column for column in table.columns if column != "none") + (["none"] if "none" in table else [])
    return table.reindex(index=order, columns=columns, fill_value=0)


def recall_by_kind(truth: pandas.DataFrame, flags: pandas.DataFrame) -> pandas.Series:
    """Share of the injected files of each kind that carry the flag meant to find them."""
    flag_sets = _flag_sets(flags)
    found = [EXPECTED_FLAG.get(kind) in flag_sets.get(path, set()) for path, kind in zip(truth["path"], truth["kind"])]
    return pandas.Series(found, index=truth["kind"].to_numpy()).groupby(level=0).mean().rename("recall")


def clean_dropped(manifest: pandas.DataFrame, truth: pandas.DataFrame, flags: pandas.DataFrame) -> tuple:
    """(clean images flagged ``drop``, clean images): class data that is not an injected defect."""
    data = manifest[data_rows(manifest, usable=True)]
    clean = set(data["path"]) - set(truth["path"])
    dropped = flags[(flags["action"] == "drop") & flags["path"].isin(clean)]
    return sorted(dropped["path"]), len(clean)


def _copy_pairs(usable: pandas.DataFrame, truth: pandas.DataFrame) -> pandas.DataFrame:
    """Distances between each injected copy and its source, with the copy's kind."""
    position = {path: index for index, path in enumerate(usable["path"])}
    copies = truth[truth["kind"].isin(COPY_KINDS) & truth["path"].isin(position) & truth["source"].isin(position)]
    words = hash_words(usable)
    first = numpy.array([position[path] for path in copies["path"]], dtype=numpy.int64)
    second = numpy.array([position[path] for path in copies["source"]], dtype=numpy.int64)
    distance = distances(words[first], words[second]) if len(first) else numpy.empty(0, dtype=numpy.int64)
    return pandas.DataFrame({"kind": copies["kind"].to_numpy(), "distance": distance})


def threshold_table(usable: pandas.DataFrame, truth: pandas.DataFrame, thresholds) -> pandas.DataFrame:
    """Per threshold: recall of injected copies (near_duplicate alone, and all copy kinds) and false matches.

    ``usable`` holds fingerprinted class data (``heroes.cleaning.flags.usable_rows``). A false
    match is a pair of clean images (neither injected nor a source) within the
    threshold: on the embedded set they are distinct drawings by construction.
    """
    thresholds = sorted(thresholds)
    copies = _copy_pairs(usable, truth)
    involved = set(truth["path"]) | set(truth["source"])
    clean = usable[~usable["path"].isin(involved) & (usable["error"] == "")]
    pairs, distance = close_pairs(hash_words(clean), max(thresholds))
    near = copies[copies["kind"] == "near_duplicate"]["distance"]
    rows = []
    for threshold in thresholds:
        within = distance <= threshold
        rows.append({
            "threshold": threshold,
            "near_duplicate_recall": float((near <= threshold).mean()) if len(near) else numpy.nan,
            "all_copies_recall": float((copies["distance"] <= threshold).mean()) if len(copies) else numpy.nan,
            "false_pairs": int(within.sum()),
            "clean_images_in_false_pairs": len(numpy.unique(pairs[within])),
        })
    table = pandas.DataFrame(rows)
    table.attrs.update(copies=len(copies), near_duplicates=len(near), clean_images=len(clean))
    return table
