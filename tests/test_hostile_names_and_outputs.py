"""Hostile names and outputs (issue 23): the data folder is guarded from the data itself, names print safely."""

import base64
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
from clean_helpers import tiny_model, tree_digest
from test_clumsy_input import assert_one_line, run
from PIL import Image

from heroes import cli
from heroes.data import scan
from heroes.data.split import make_splits
from heroes.data.synthetic import dataset
from heroes.serving import predict

PROJECT = Path(__file__).resolve().parents[1]
FRACTIONS = ["--train", ".6", "--val", ".2", "--test", ".2"]
HOSTILE = {"batman": "x\x1b[2J\x1b]0;pwned\x07y", "deadpool": "new\nline", "superman": "\U0001f987"}
ESCAPED = ["x\\x1b[2J\\x1b]0;pwned\\x07y", "new\\nline"]  # as they must print


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
    assert cli.main(["split", str(manifest), "--out", str(tmp_path / "s.csv"), *FRACTIONS]) == 0
    splits = only_required(tmp_path / "s.csv", tmp_path / "s2.csv", ["path", "label", "sha256", "group_key", "split"])
    return {"images": images, "manifest": manifest, "splits": splits, "tmp": tmp_path}


@pytest.fixture
def named(drawn, tmp_path):
    """A copy of the drawn set whose class folders have hostile names (``HOSTILE``), and its manifest."""
    images = tmp_path / "E"
    shutil.copytree(drawn, images)
    shutil.rmtree(images / scan.PROBES_FOLDER)
    for old, new in HOSTILE.items():
        (images / old).rename(images / new)
    manifest = scan.write_manifest(scan.scan(images, progress=False), tmp_path / "m.csv")
    return {"images": images, "manifest": manifest, "tmp": tmp_path}


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("model") / "model.keras", list(HOSTILE.values()))


# 1. One output guard that knows the data folder from the data ------------------------------------------------------


def test_no_command_writes_inside_the_data_folder_of_a_manifest_without_optional_columns(bare, capsys):
    images, tmp = bare["images"], bare["tmp"]
    image = sorted((images / "batman").iterdir())[0]
    before = tree_digest(images)
    for argv in (["split", bare["manifest"], "--out", image, *FRACTIONS],
                 ["split", bare["manifest"], "--out", images / "s.csv"],
                 ["clean", bare["manifest"], "--out", image, "--decisions", tmp / "d.csv",
                  "--clean-manifest", tmp / "c.csv"],
                 ["clean", bare["manifest"], "--out", tmp / "f.csv", "--decisions", tmp / "d.csv",
                  "--clean-manifest", image],
                 ["leakage", bare["splits"], "--out", image]):
        assert_one_line(*run(capsys, *argv)[::2], "inside the dataset folder", str(images))
    assert tree_digest(images) == before


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


# 6. A locale that cannot show a name ---------------------------------------------------------------------------------


def test_names_a_latin1_terminal_cannot_show_print_replaced_in_split_and_predict(named, hostile_model, monkeypatch):
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")  # strict, as Python sets up a Latin-1 locale's
    monkeypatch.setattr(sys, "stdout", stdout)
    assert cli.main(["split", str(named["manifest"]), "--out", str(named["tmp"] / "s.csv"), *FRACTIONS]) == 0
    assert cli.main(["predict", str(named["images"] / HOSTILE["superman"]), "--model", str(hostile_model)]) == 0
    stdout.flush()
    shown = stdout.buffer.getvalue().decode("latin-1")
    assert shown.count("\\U0001f987") >= 2 and "wrote" in shown  # the split table and the predict table


@pytest.fixture(scope="module")
def latin1(tmp_path_factory):
    """The environment of a real ISO-8859-1 locale (file names and terminal), compiled here; skip where it cannot be."""
    folder = tmp_path_factory.mktemp("locale")
    try:
        subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
                       capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("localedef is not installed")
    unset = ("LC_", "PYTHONIOENCODING", "PYTHONUTF8")
    environment = {key: value for key, value in os.environ.items() if not key.startswith(unset)}
    environment.update(LOCPATH=str(folder), LC_ALL="en_US.ISO-8859-1", HEROES_OFFLINE="1")
    check = [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"]
    if subprocess.run(check, env=environment, capture_output=True, text=True).stdout.strip() != "iso8859-1":
        pytest.skip("no ISO-8859-1 locale can be compiled here")
    return environment


def test_a_latin1_locale_reads_and_writes_the_same_utf8_names_without_a_traceback(named, latin1):
    tmp = named["tmp"]
    for argv in (["scan", named["images"], "--out", tmp / "latin1.csv"],
                 ["split", named["manifest"], "--out", tmp / "s.csv", *FRACTIONS],
                 ["clean", named["manifest"], "--out", tmp / "f.csv", "--decisions", tmp / "d.csv",
                  "--clean-manifest", tmp / "c.csv"]):
        result = subprocess.run([sys.executable, "-m", "heroes", *map(str, argv)], cwd=PROJECT, env=latin1,
                                capture_output=True, timeout=300)
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode("latin-1")
        assert b"\\U0001f987" in result.stdout
    assert (tmp / "latin1.csv").read_bytes() == named["manifest"].read_bytes()  # as scanned in a UTF-8 locale
    assert f"/{HOSTILE['superman']}/" in (tmp / "c.csv").read_text(encoding="utf-8")  # found with os.stat, kept


# 7. Names that are terminal escapes ----------------------------------------------------------------------------------


def test_scan_split_and_clean_print_hostile_class_names_escaped(named, capsys):
    tmp = named["tmp"]
    for argv in (["scan", named["images"], "--out", tmp / "again.csv"],
                 ["split", named["manifest"], "--out", tmp / "s.csv", *FRACTIONS],
                 ["clean", named["manifest"], "--out", tmp / "f.csv", "--decisions", tmp / "d.csv",
                  "--clean-manifest", tmp / "c.csv"]):
        status, out, err = run(capsys, *argv)
        assert status == 0, err
        assert all(name in out for name in ESCAPED), out
        assert not any(raw in out + err for raw in ("\x1b", "\x07", "new\nline")), out + err


# 14. Silent or lossy outputs -----------------------------------------------------------------------------------------


def test_a_split_with_every_size_0_is_one_line_and_writes_nothing(bare, capsys):
    out = bare["tmp"] / "zero.csv"
    status, _, err = run(capsys, "split", bare["manifest"], "--out", out, "--train", "0", "--val", "0", "--test", "0")
    assert_one_line(status, err, "all 0")
    assert not out.exists()


def test_fractions_that_leave_a_class_without_test_or_val_images_warn(capsys):
    rows = [(f"/d/{label}/{index}.png", label, f"{label}{index}".ljust(64, "0")) for label, count in
            (("Batman", 1), ("Superman", 60)) for index in range(count)]
    manifest = pandas.DataFrame(rows, columns=["path", "label", "sha256"]).assign(status="ok")
    splits = make_splits(manifest, train=0.8, val=0.1, test=0.1)
    lonely = splits.loc[splits["label"] == "Batman", "split"].item()
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("warning: ") and "Batman" in line for line in warnings)
    assert not any(f"no {lonely} images" in line for line in warnings)  # the split its one image went to
    assert not any("Superman" in line for line in warnings)


def test_predict_json_keeps_the_exact_bytes_of_a_name_that_is_not_utf8(tmp_path, hostile_model):
    image = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")  # Latin-1 bytes: not UTF-8
    Image.new("RGB", (8, 8), (200, 10, 10)).save(image, "PNG")
    shown = io.StringIO()
    assert predict.run([image], hostile_model, as_json=True, progress=False, out=shown) == 0
    line = shown.getvalue().strip()
    record = json.loads(line)
    assert "\\udc" not in line  # no lone surrogate: strict JSON readers and UTF-8 writers take it
    assert record["path"].endswith("/caf\\xe9.png")
    assert base64.b64decode(record["path_bytes_b64"]) == os.fsencode(image)
    assert "path_bytes_b64" not in predict.Prediction("/d/café.png", "ok").to_json()  # only where it is needed
