"""scan: one row per file, labels from top-level folders, rejections with reasons, and a read-only walk."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
from PIL import Image

from heroes.data import scan
from heroes.errors import UserError

PROJECT = Path(__file__).resolve().parents[1]


def image(path, image_format="JPEG", size=(12, 10), color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, image_format)
    return path


@pytest.fixture
def tree(tmp_path):
    """A small messy folder: Unicode classes, nested files, probes, junk, hidden and root-level files."""
    root = tmp_path / "raw"
    image(root / "Wonder Woman" / "a.jpg")
    image(root / "Wonder Woman" / "deeper" / "still" / "b.png", "PNG")
    image(root / "Ñandú" / "c.webp", "WEBP")
    image(root / "蝙蝠侠" / "d.gif", "GIF")
    image(root / "Batman" / "png_named.jpg", "PNG")
    image(root / "probes" / "Batman" / "unmasked.jpg")
    image(root / "loose.jpg")
    (root / "Batman" / "page.jpg").write_text("<html><body>not found</body></html>")
    (root / "Batman" / "empty.png").write_bytes(b"")
    whole = image(tmp_path / "whole.jpg", size=(64, 64)).read_bytes()
    (root / "Batman" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    for junk in [".DS_Store", "Thumbs.db", "desktop.ini", "._a.jpg"]:
        (root / "Wonder Woman" / junk).write_bytes(b"\x00\x05\x16\x07junk")
    image(root / ".hidden" / "x.jpg")
    return root


def snapshot(root):
    """Every name under root with its bytes' hash, size and mtime."""
    state = {}
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder) / name
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            state[path.relative_to(root).as_posix()] = (digest, info.st_size, info.st_mtime_ns, info.st_mode)
    return state


def by_relpath(frame):
    return frame.set_index("relpath")


def test_rows_labels_and_reasons(tree):
    frame = scan.scan(tree, progress=False)
    assert list(frame.columns) == scan.COLUMNS
    assert list(frame["relpath"]) == sorted(frame["relpath"])
    rows = by_relpath(frame)
    assert len(frame) == 15
    ok = rows[rows["status"] == "ok"]
    assert set(ok.index) == {
        "Wonder Woman/a.jpg", "Wonder Woman/deeper/still/b.png", "Ñandú/c.webp", "蝙蝠侠/d.gif",
        "Batman/png_named.jpg", "probes/Batman/unmasked.jpg",
    }
    assert (ok["reason"] == "").all() and ok["sha256"].str.len().eq(64).all()
    assert rows.loc["Wonder Woman/deeper/still/b.png", "label"] == "Wonder Woman"
    assert rows.loc["Batman/png_named.jpg", "format"] == "PNG"
    assert (rows.loc["Wonder Woman/a.jpg", "width"], rows.loc["Wonder Woman/a.jpg", "height"]) == (12, 10)
    assert rows.loc["Wonder Woman/a.jpg", "path"] == (tree / "Wonder Woman" / "a.jpg").as_posix()
    rejected = rows[rows["status"] == "rejected"]
    assert (rejected["reason"] != "").all()
    assert rows.loc["loose.jpg", "reason"] == "not inside a class folder"
    assert rows.loc["Batman/page.jpg", "reason"] == "not an image (looks like HTML/text)"
    assert rows.loc["Batman/empty.png", "reason"] == "empty file"
    assert rows.loc["Batman/cut.jpg", "reason"] == "truncated image data"
    for junk in [".DS_Store", "Thumbs.db", "desktop.ini", "._a.jpg"]:
        assert rows.loc[f"Wonder Woman/{junk}", "reason"] == "hidden/system file"
        assert len(rows.loc[f"Wonder Woman/{junk}", "sha256"]) == 64
    assert rows.loc[".hidden/x.jpg", ["reason", "label"]].tolist() == ["hidden/system file", ""]


def test_unicode_labels_and_safe_class_ids(tree):
    rows = by_relpath(scan.scan(tree, progress=False))
    assert rows.loc["Ñandú/c.webp", "label"] == "Ñandú"
    assert rows.loc["Ñandú/c.webp", "class_id"] == "nandu"
    assert rows.loc["Wonder Woman/a.jpg", "class_id"] == "wonder_woman"
    cjk = rows.loc["蝙蝠侠/d.gif", "class_id"]
    assert cjk.startswith("class_") and len(cjk) == 14
    ids = rows[rows["label"] != ""].groupby("label")["class_id"].first()
    assert ids.is_unique and ids.str.fullmatch(r"[a-z0-9_]+").all()


def test_folder_names_that_normalise_alike_are_one_class_with_one_display_name():
    rows = [{"label": label, "role": role} for label, role in [
        ("Wonder Woman", "data"), ("wonder-woman", "data"), ("Not a hero", "data"), ("NOT_A_HERO", "data"),
        ("batman", "probe"), ("Batman", "data"), ("", "")]]
    scan.name_classes(rows)
    assert [(row["label"], row["class_id"]) for row in rows] == [
        ("Wonder Woman", "wonder_woman"), ("Wonder Woman", "wonder_woman"), ("NOT_A_HERO", "not_a_hero"),
        ("NOT_A_HERO", "not_a_hero"), ("Batman", "batman"), ("Batman", "batman"), ("", "")]


def test_probes_role(tree):
    rows = by_relpath(scan.scan(tree, progress=False))
    assert rows.loc["probes/Batman/unmasked.jpg", ["label", "role"]].tolist() == ["Batman", "probe"]
    assert rows.loc["Batman/png_named.jpg", "role"] == "data"
    assert rows.loc["probes/Batman/unmasked.jpg", "class_id"] == rows.loc["Batman/png_named.jpg", "class_id"]


def test_scan_leaves_the_tree_untouched(tree, monkeypatch):
    before = snapshot(tree)
    monkeypatch.setattr(scan, "POOL_MIN_FILES", 1)
    pooled = scan.scan(tree, progress=False, workers=2)
    serial = scan.scan(tree, progress=False, workers=1)
    assert snapshot(tree) == before
    pandas.testing.assert_frame_equal(pooled, serial)


def test_odd_files_do_not_crash(tree, tmp_path):
    os.mkfifo(tree / "Batman" / "pipe.jpg")
    os.symlink(tree / "nowhere.jpg", tree / "Batman" / "dangling.jpg")
    outside = tmp_path / "outside"
    image(outside / "x.jpg")
    os.symlink(outside, tree / "Batman" / "linked")
    rows = by_relpath(scan.scan(tree, progress=False))
    assert rows.loc["Batman/pipe.jpg", "reason"] == "not a regular file"
    assert rows.loc["Batman/dangling.jpg", "reason"] == "broken symlink"
    assert rows.loc["Batman/linked", "reason"] == "symlinked folder not followed"
    assert "Batman/linked/x.jpg" not in rows.index


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(tree):
    locked = tree / "Batman" / "locked.jpg"
    image(locked)
    locked.chmod(0)
    try:
        rows = by_relpath(scan.scan(tree, progress=False))
    finally:
        locked.chmod(0o644)
    assert rows.loc["Batman/locked.jpg", "reason"].startswith("unreadable")


def test_bad_roots(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        scan.scan(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        scan.scan(tmp_path / "file.txt")
    with pytest.raises(UserError, match="no class sub-folders"):
        scan.scan(tmp_path)


def test_manifest_round_trip_and_hash(tree, tmp_path):
    frame = scan.scan(tree, progress=False)
    out = scan.write_manifest(frame, tmp_path / "out" / "manifest.csv")
    back = scan.read_manifest(out)
    assert str(back["width"].dtype) == "Int64"
    assert back["width"].tolist() == frame["width"].tolist()
    assert back["label"].tolist() == frame["label"].tolist()
    assert scan.manifest_hash(back) == scan.manifest_hash(frame)
    assert scan.manifest_hash(frame.iloc[::-1]) == scan.manifest_hash(frame)
    relabelled = frame.copy()
    relabelled.loc[relabelled["label"] == "Batman", "label"] = "Bruce"
    assert scan.manifest_hash(relabelled) != scan.manifest_hash(frame)
    text = scan.describe_manifest(frame, out)
    assert "15 files: 6 ok, 9 rejected" in text and str(out) in text and "Wonder Woman 2" in text


def test_bad_manifests_and_destinations(tree, tmp_path):
    frame = scan.scan(tree, progress=False)
    (tmp_path / "thin.csv").write_text("path,label\nx,y\n")
    with pytest.raises(UserError, match="lacks required column"):
        scan.read_manifest(tmp_path / "thin.csv")
    with pytest.raises(UserError):
        scan.read_manifest(tmp_path / "absent.csv")
    (tmp_path / "plain").write_text("a file")
    for bad in [tmp_path / "plain" / "m.csv", Path("/proc/m.csv"), tmp_path, tree / "m.csv"]:
        with pytest.raises(UserError):
            scan.write_manifest(frame, bad)
    assert not (tree / "m.csv").exists()


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "heroes", *map(str, args)], cwd=PROJECT, capture_output=True, text=True, timeout=120,
    )


def assert_one_line_error(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")


def test_cli_bad_input(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    image(tmp_path / "good" / "Batman" / "a.jpg")
    assert_one_line_error(run_cli("scan", tmp_path / "missing", "--out", tmp_path / "m.csv"))
    assert_one_line_error(run_cli("scan", tmp_path / "flat", "--out", tmp_path / "m.csv"))
    assert_one_line_error(run_cli("scan", tmp_path / "good", "--out", "/proc/m.csv"))


def test_cli_good_folder(tree, tmp_path):
    out = tmp_path / "manifest.csv"
    result = run_cli("scan", tree, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "manifest written to" in result.stdout
    assert len(scan.read_manifest(out)) == 15
