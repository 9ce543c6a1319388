"""Hostile names and outputs (issue 23): the data folder is guarded from the data itself, names print safely."""

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pandas
import pytest

from heroes import cli
from heroes.data import scan
from heroes.data.synthetic import dataset


def run(capsys, *argv) -> tuple:
    """(exit status, stdout, stderr) of ``heroes.cli.main`` in this process."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line(status, err, *words):
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err


def digest(folder: Path) -> dict:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def only_required(csv_path: Path, out: Path, columns) -> Path:
    """``csv_path`` cut down to ``columns`` (what ``cut -d, -f...`` leaves of it)."""
    pandas.read_csv(csv_path, dtype=str, keep_default_na=False)[columns].to_csv(out, index=False)
    return out


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    dataset.write_dataset(root / "drawn", per_class=3, size=64, seed=2, progress=False)
    return root / "drawn"


@pytest.fixture
def bare(drawn, tmp_path):
    """A copy of the drawn set, a manifest and a splits file of it with only their required columns."""
    images = tmp_path / "D"
    shutil.copytree(drawn, images)
    shutil.copyfile(sorted((images / "batman").iterdir())[-1], images / "superman" / "copied.png")  # to review
    full = scan.write_manifest(scan.scan(images, progress=False), tmp_path / "m.csv")
    manifest = only_required(full, tmp_path / "n.csv", scan.REQUIRED_COLUMNS)
    fractions = ["--train", ".6", "--val", ".2", "--test", ".2"]
    assert cli.main(["split", str(manifest), "--out", str(tmp_path / "s.csv"), *fractions]) == 0
    splits = only_required(tmp_path / "s.csv", tmp_path / "s2.csv", ["path", "label", "sha256", "group_key", "split"])
    return {"images": images, "manifest": manifest, "splits": splits, "tmp": tmp_path}


# 1. One output guard that knows the data folder from the data ------------------------------------------------------


def test_no_command_writes_inside_the_data_folder_of_a_manifest_without_optional_columns(bare, capsys):
    images, tmp = bare["images"], bare["tmp"]
    image = sorted((images / "batman").iterdir())[0]
    before = digest(images)
    for argv in (["split", bare["manifest"], "--out", image, "--train", ".6", "--val", ".2", "--test", ".2"],
                 ["split", bare["manifest"], "--out", images / "s.csv"],
                 ["clean", bare["manifest"], "--out", image, "--decisions", tmp / "d.csv",
                  "--clean-manifest", tmp / "c.csv"],
                 ["clean", bare["manifest"], "--out", tmp / "f.csv", "--decisions", tmp / "d.csv",
                  "--clean-manifest", image],
                 ["leakage", bare["splits"], "--out", image]):
        assert_one_line(*run(capsys, *argv)[::2], "inside the dataset folder", str(images))
    assert digest(images) == before


def test_dataset_roots_come_from_paths_and_labels():
    rows = [("/d/Batman/a.png", "batman"), ("/d/Batman/deep/b.png", "batman"),  # a sub-folder of a class
            ("/d/probes/Superman/c.png", "Superman"),  # a probe: the scanned folder is above probes/
            ("/d/stray.png", ""),  # no class: its own folder
            ("/e/x/y.png", "Wonder Woman")]  # no folder named like its class: its own folder
    frame = pandas.DataFrame(rows, columns=["path", "label"])
    assert scan.dataset_roots(frame) == ["/d", "/e/x"]
    relabelled = frame.assign(label="Wonder Woman", original_label=frame["label"])
    assert scan.dataset_roots(relabelled) == ["/d", "/e/x"]  # the folder it came from, not its new class


# 8. A symlinked decisions file ---------------------------------------------------------------------------------------


def test_a_symlinked_decisions_file_is_written_through_and_keeps_its_mode(bare, capsys):
    real = bare["tmp"] / "shared" / "decisions.csv"
    real.parent.mkdir()
    real.write_text("sha256,decision,label,note\n")
    real.chmod(0o640)
    link = bare["tmp"] / "decisions.csv"
    link.symlink_to(real)
    status, _, err = run(capsys, "clean", bare["manifest"], "--out", bare["tmp"] / "f.csv", "--decisions", link,
                         "--clean-manifest", bare["tmp"] / "c.csv")
    assert status == 0, err
    assert link.is_symlink() and link.resolve() == real
    assert "pending cross_class_duplicate" in real.read_text()  # the new rows went to the real file
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert os.listdir(real.parent) == ["decisions.csv"]  # no temporary file left beside it
