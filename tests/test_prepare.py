"""The one data preparation: same splits as the CLI's scan -> clean -> split, one data-row test, one split sizing."""

import shutil

import pandas
import pytest

from heroes import cli
from heroes.cleaning import report
from heroes.data import prepare, scan, sizing, sources, split
from heroes.errors import UserError
from heroes.reporting import reproduce
from heroes.training import folder
from tests.test_own_photographs import draw_named
from tests.test_split import fake_manifest

SEED = 5
COUNTS = (4, 2, 2)


def compared(splits: pandas.DataFrame) -> list:
    return sorted(zip(splits["path"], splits["label"], splits["split"]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Person-named folders of drawn images, one undecodable file among them and one probe beside them."""
    photos = draw_named(tmp_path_factory.mktemp("prepare"), per_class=10, size=64)
    (photos / "Batman" / "broken.jpg").write_bytes(b"not a picture at all")
    probe_folder = photos / "probes" / "Batman"
    probe_folder.mkdir(parents=True)
    shutil.copy(sorted((photos / "Superman").iterdir())[0], probe_folder / "unmasked.png")
    return photos


@pytest.fixture(scope="module")
def prepared(photos):
    return prepare.prepare(photos, split=COUNTS, seed=SEED, progress=False)


def test_prepare_gives_the_splits_of_the_cli_scan_clean_split(photos, prepared, tmp_path):
    manifest, flags_file, cleaned, splits = (tmp_path / name for name in ("m.csv", "f.csv", "c.csv", "s.csv"))
    assert cli.main(["scan", str(photos), "--out", str(manifest)]) == 0
    assert cli.main(["clean", str(manifest), "--out", str(flags_file), "--clean-manifest", str(cleaned),
                     "--decisions", str(tmp_path / "decisions.csv")]) == 0
    train, val, test = map(str, COUNTS)
    assert cli.main(["split", str(cleaned), "--out", str(splits), "--train", train, "--val", val, "--test", test,
                     "--seed", str(SEED)]) == 0
    assert prepared["sizes"] == COUNTS
    assert compared(prepared["splits"]) == compared(split.read_splits(splits))
    from_manifest = prepare.prepare(manifest, split=COUNTS, seed=SEED, progress=False)  # a manifest CSV as source
    assert compared(from_manifest["splits"]) == compared(prepared["splits"])


def test_train_prepares_the_same_way(photos, tmp_path):
    """`heroes train`'s ``folder.prepare`` is the one preparation, decoded at the size asked."""
    trained = folder.prepare(photos, seed=SEED, split=(0.8, 0.1, 0.1), image_size=32, cache_dir=tmp_path,
                             progress=False)
    same = prepare.prepare(photos, split=(0.8, 0.1, 0.1), seed=SEED, progress=False)
    assert compared(trained["splits"]) == compared(same["splits"])
    assert same["sets"] is None and same["sizes"] == sizing.split_sizes(same["cleaned"].manifest, 0.8, 0.1, 0.1)
    assert trained["sets"]["train"].images.shape[1:3] == (32, 32)
    used = trained["splits"][trained["splits"]["split"] != "unused"]
    assert {name: len(trained["sets"][name]) for name in split.SPLIT_NAMES} == used["split"].value_counts().to_dict()


def test_a_rejected_file_or_a_probe_never_reaches_a_split(photos, prepared):
    manifest, splits = prepared["manifest"], prepared["splits"]
    broken = manifest.loc[manifest["relpath"] == "Batman/broken.jpg"].iloc[0]
    probe = manifest.loc[manifest["relpath"] == "probes/Batman/unmasked.png"].iloc[0]
    assert broken["status"] == "rejected" and probe["status"] == "ok"
    assert not {broken["path"], probe["path"]} & set(splits["path"])
    assert "unreadable" in set(prepared["cleaned"].flags.loc[prepared["cleaned"].flags["path"] == broken["path"],
                                                               "flag"])
    assert list(sources.probe_rows(manifest)["path"]) == [probe["path"]]
    assert "ok per class (probe): Batman 1" in scan.describe_manifest(manifest)
    assert report.probe_counts(manifest).loc["Batman"].tolist() == [1, 1]
    assert report.class_counts(manifest, prepared["cleaned"].manifest).loc["Batman", ["files", "decodable"]].tolist() \
        == [11, 10]


def test_the_one_data_row_test():
    manifest = pandas.DataFrame({"role": ["data", "data", "probe", "probe", ""],
                                 "status": ["ok", "rejected", "ok", "rejected", "rejected"]})
    assert scan.data_rows(manifest).tolist() == [True, True, False, False, True]
    assert scan.data_rows(manifest, usable=True).tolist() == [True, False, False, False, False]
    assert scan.data_rows(manifest, usable=True, role="probe").tolist() == [False, False, True, False, False]
    no_role = manifest.drop(columns="role")
    assert scan.data_rows(no_role, usable=True).tolist() == [True, False, True, False, False]
    assert not scan.data_rows(no_role, role="probe").any()
    rejected = fake_manifest({"batman": 12, "superman": 12})
    rejected.loc[[0, 12], "status"] = "rejected"
    rejected.loc[[1, 13], "role"] = "probe"
    splits = split.make_splits(rejected, 6, 2, 2)
    assert not set(rejected.loc[[0, 1, 12, 13], "path"]) & set(splits["path"])
    assert sizing.class_sizes(rejected).tolist() == [10, 10]


def test_sizing_a_tiny_class():
    manifest = fake_manifest({"batman": 40, "superman": 5})
    assert sizing.split_sizes(manifest, 0.8, 0.1, 0.1) == (3, 1, 1)  # fractions would give Superman no val/test
    assert sizing.split_sizes(fake_manifest({"batman": 40, "superman": 20}), 0.8, 0.1, 0.1) == (0.8, 0.1, 0.1)
    assert sizing.split_sizes(manifest, 200, 25, 25) == (3, 1, 1)  # the study's proportions, scaled to 5 images
    assert sizing.split_sizes(fake_manifest({"batman": 40, "superman": 30}), 200, 25, 25) == (24, 3, 3)
    assert sizing.split_sizes(fake_manifest({"batman": 300, "superman": 240}), 200, 25, 25) == (190, 25, 25)
    sized = split.make_splits(manifest, *sizing.split_sizes(manifest, 0.8, 0.1, 0.1), seed=0)
    superman = sized[sized["label"] == "superman"]["split"].value_counts().to_dict()
    assert superman == {"train": 3, "val": 1, "test": 1}
    with pytest.raises(UserError, match="class 'superman' has 2 usable image"):
        sizing.split_sizes(fake_manifest({"batman": 40, "superman": 2}), 0.8, 0.1, 0.1)
    with pytest.raises(UserError, match="need at least two classes with usable images, found 1 \\(batman\\)"):
        sizing.split_sizes(fake_manifest({"batman": 40}), 0.8, 0.1, 0.1)
    with pytest.raises(UserError, match="not a mix"):
        sizing.split_sizes(manifest, 0.8, 25, 0.1)


def test_the_study_proportions_for_make_reproduce():
    assert sizing.study_counts(250) == (200, 25, 25)
    assert sizing.study_counts(60) == (48, 6, 6)
    assert reproduce.overrides(per_class=60)["train_count"] == 48


def test_prepare_refuses_a_source_without_images(tmp_path):
    with pytest.raises(UserError, match="not found"):
        prepare.prepare(tmp_path / "nowhere", progress=False)
    (tmp_path / "Batman").mkdir()
    (tmp_path / "Batman" / "notes.txt").write_text("no picture here")
    with pytest.raises(UserError, match="no readable images under"):
        prepare.prepare(tmp_path, progress=False)
