"""Splits: exact per-class counts, determinism, stability when images are added, group integrity."""

import hashlib
import subprocess
import sys

import pandas
import pytest

from heroes.data.split import make_splits
from heroes.errors import UserError


def fake_manifest(per_class: dict, prefix: str = "") -> pandas.DataFrame:
    """A manifest of distinct fake images: ``{label: count}``."""
    rows = []
    for label, count in per_class.items():
        for index in range(count):
            name = f"{prefix}{label}/{index:04d}.jpg"
            rows.append({"path": name, "label": label, "status": "ok", "reason": "", "role": "data",
                         "sha256": hashlib.sha256(name.encode()).hexdigest(),
                         "width": "64", "height": "64", "format": "JPEG"})
    return pandas.DataFrame(rows)


def assignment(splits: pandas.DataFrame) -> dict:
    return dict(zip(splits["path"], splits["split"]))


def test_counts_are_exact_per_class():
    splits = make_splits(fake_manifest({"batman": 40, "superman": 33}), train=20, val=5, test=5, seed=1)
    table = pandas.crosstab(splits["label"], splits["split"])
    for label in ("batman", "superman"):
        assert (table.loc[label, "train"], table.loc[label, "val"], table.loc[label, "test"]) == (20, 5, 5)
    assert table.loc["batman", "unused"] == 10


def test_same_seed_same_split_other_seed_other_split():
    manifest = fake_manifest({"batman": 30, "deadpool": 30})
    first = make_splits(manifest, train=20, val=5, test=5, seed=7)
    again = make_splits(manifest.sample(frac=1, random_state=3), train=20, val=5, test=5, seed=7)
    other = make_splits(manifest, train=20, val=5, test=5, seed=8)
    assert assignment(first) == assignment(again)  # row order does not matter
    assert assignment(first) != assignment(other)


def test_fraction_mode_never_moves_existing_images_when_images_are_added():
    before = fake_manifest({"batman": 50})
    after = pandas.concat([before, fake_manifest({"batman": 30}, prefix="new/")], ignore_index=True)
    old = assignment(make_splits(before, train=0.8, val=0.1, test=0.1, seed=0))
    new = assignment(make_splits(after, train=0.8, val=0.1, test=0.1, seed=0))
    assert all(new[path] == split for path, split in old.items())


def test_count_mode_moves_at_most_one_step_per_added_image():
    before = fake_manifest({"batman": 60})
    added = fake_manifest({"batman": 3}, prefix="new/")
    after = pandas.concat([before, added], ignore_index=True)
    old = assignment(make_splits(before, train=40, val=5, test=5, seed=0))
    new = assignment(make_splits(after, train=40, val=5, test=5, seed=0))
    moved = {path: (old[path], new[path]) for path in old if old[path] != new[path]}
    step = {("test", "val"), ("val", "train"), ("train", "unused")}
    assert set(moved.values()) <= step
    assert len(moved) <= 3 * len(added)


def test_duplicates_and_near_duplicate_groups_share_a_split():
    manifest = fake_manifest({"batman": 40, "superman": 40})
    manifest["group_id"] = ""
    # Exact copies: same sha256 under other names, one of them in another class.
    copies = manifest.iloc[[0, 1, 2]].copy()
    copies["path"] = copies["path"] + ".copy.jpg"
    copies.loc[copies.index[2], "label"] = "superman"
    # Near duplicates: distinct sha256, linked by a cleaning group id.
    manifest.loc[[3, 4, 5], "group_id"] = "g1"
    manifest.loc[[45, 46], "group_id"] = "g2"
    manifest = pandas.concat([manifest, copies], ignore_index=True)
    splits = make_splits(manifest, train=30, val=4, test=4, seed=3).set_index("path")
    for sha in copies["sha256"]:
        assert splits.loc[splits["sha256"] == sha, "split"].nunique() == 1
    for members in ([3, 4, 5], [45, 46]):
        assert splits.loc[manifest.loc[members, "path"], "split"].nunique() == 1


def test_rejected_files_and_probes_are_not_split():
    manifest = fake_manifest({"batman": 12})
    manifest.loc[0, "status"] = "rejected"
    manifest.loc[1, "role"] = "probe"
    splits = make_splits(manifest, train=6, val=2, test=2)
    assert not set(manifest.loc[[0, 1], "path"]) & set(splits["path"])


def test_too_few_images_names_the_class_and_the_numbers():
    with pytest.raises(UserError, match=r"'wonder_woman' has 9.*|.*'wonder_woman' has 9"):
        make_splits(fake_manifest({"batman": 30, "wonder_woman": 9}), train=20, val=5, test=5)


@pytest.mark.parametrize("sizes", [(0.8, 25, 0.1), (0.8, 0.2, 0.2), (-1, 5, 5)])
def test_inconsistent_sizes_are_refused(sizes):
    with pytest.raises(UserError):
        make_splits(fake_manifest({"batman": 30}), *sizes)


def test_cli_exit_two_and_one_line_on_bad_manifest(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.jpg,batman\n")
    for manifest in (tmp_path / "missing.csv", bad):
        result = subprocess.run([sys.executable, "-m", "heroes", "split", str(manifest), "--out", str(tmp_path / "s.csv")],
                                capture_output=True, text=True)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "s.csv").exists()
