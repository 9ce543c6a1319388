"""Leakage: a split made after cleaning has no duplicate pair across splits; a naive one does."""

import subprocess
import sys

import pandas
import pytest
from clean_helpers import dirty_set, picture, save

from heroes.cleaning import flags, leakage
from heroes.data import sizing
from heroes.data import scan, split
from heroes.errors import UserError


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    _, manifest, _ = dirty_set(root, per_class=32, size=96, seed=3)
    return {"root": root, "manifest": manifest}


def test_split_after_cleaning_has_no_leak_and_a_naive_split_has_some(dirty):
    manifest = dirty["manifest"]
    cleaned = flags.clean(manifest, progress=False).manifest
    counts = sizing.fitting_counts(cleaned, 10, 10, 10)
    after = split.make_splits(cleaned, *counts, seed=0)
    assert leakage.find_leaks(after, progress=False).empty
    # Ignoring the groups (the scan's manifest has no group_id): near copies land in different splits.
    naive = split.make_splits(manifest, 10, 10, 10, seed=0)
    leaks = leakage.find_leaks(naive, progress=False)
    assert len(leaks) > 0 and set(leaks["kind"]) <= {"exact", "near"}
    assert (leaks["split_a"] != leaks["split_b"]).all()


def test_same_pixels_in_other_bytes_is_an_exact_leak(tmp_path):
    first = save(picture(1), tmp_path / "batman" / "a.png", compress_level=9)
    second = save(picture(1), tmp_path / "batman" / "b.png", compress_level=0)
    other = save(picture(2), tmp_path / "batman" / "c.png")
    splits = pandas.DataFrame({"path": [str(first), str(second), str(other)], "label": "batman",
                               "sha256": ["s1", "s2", "s3"], "group_key": "", "split": ["train", "test", "val"]})
    leaks = leakage.find_leaks(splits, progress=False)
    assert leaks[["kind", "split_a", "split_b", "distance"]].values.tolist() == [["exact", "train", "test", 0]]


def test_a_split_from_another_manifest_is_refused(dirty, tmp_path):
    manifest = dirty["manifest"]
    splits = split.make_splits(manifest, 10, 10, 10, seed=0)
    other = manifest.copy()
    other.loc[other.index[:5], "sha256"] = "0" * 64
    with pytest.raises(UserError, match="was not made from"):
        leakage.check_same_manifest(splits, other[other["path"] != splits["path"].iloc[0]])
    split.write_splits(splits, tmp_path / "splits.csv")
    scan.write_manifest(other, tmp_path / "other.csv")
    result = subprocess.run([sys.executable, "-m", "heroes", "leakage", str(tmp_path / "splits.csv"),
                             "--manifest", str(tmp_path / "other.csv"), "--out", str(tmp_path / "leaks.csv")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "leaks.csv").exists()
