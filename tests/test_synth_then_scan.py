"""The foundation's acceptance check: scan accounts for every synthetic file, rejecting exactly the broken ones."""

import subprocess
import sys
from pathlib import Path

import pandas


def test_scan_accounts_for_every_synthetic_file(tmp_path):
    out, truth, manifest = tmp_path / "x", tmp_path / "t.csv", tmp_path / "m.csv"
    for command in (["synth", "--out", str(out), "--per-class", "20", "--image-size", "96", "--dirt", "--truth", str(truth)],
                    ["scan", str(out), "--out", str(manifest)]):
        result = subprocess.run([sys.executable, "-m", "heroes", *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    scanned = pandas.read_csv(manifest, keep_default_na=False)
    defects = pandas.read_csv(truth, keep_default_na=False)
    on_disk = {path.as_posix() for path in out.rglob("*") if path.is_file()}
    assert set(scanned["path"]) == on_disk
    rejected = set(scanned.loc[scanned["status"] == "rejected", "path"])
    broken = set(defects.loc[defects["kind"].isin(["corrupt", "not_image"]), "path"])
    assert broken and rejected == broken  # every broken file rejected, and no clean image
    assert (scanned.loc[scanned["status"] == "rejected", "reason"] != "").all()
    assert set(scanned.loc[scanned["relpath"].str.startswith("probes/"), "role"]) == {"probe"}
    assert Path(out).is_dir()
