"""A full disk and SIGTERM: one line, exit 2 or 143, no temporary file left, inputs untouched (issue 23, 3 and 10)."""

import contextlib
import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas
import pytest

from heroes import cli
from heroes.data.synthetic import dataset
from heroes.errors import UserError
from heroes.io import write_csv, write_json

PROJECT = Path(__file__).resolve().parents[1]
FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@contextlib.contextmanager
def file_size_limit(size: int):
    """Writes past ``size`` bytes fail in the kernel with EFBIG (Python ignores SIGXFSZ): a full disk, no tmpfs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture(scope="module")
def writers():
    """Each way a command writes a file: CSV, JSON and a Keras model, all through ``atomic_path``."""
    import keras

    from heroes.models import saving

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    return {"x.csv": lambda path: write_csv(pandas.DataFrame({"n": range(2000)}), path),
            "x.json": lambda path: write_json(path, {"n": list(range(2000))}),
            "m.keras": lambda path: saving.save_model(model, path, ["a", "b"])}


@pytest.mark.parametrize("name", ["x.csv", "x.json", "m.keras"])
def test_a_write_that_runs_out_of_room_names_the_file_and_the_cause_and_leaves_the_old_file(tmp_path, writers,
                                                                                            name):
    path = tmp_path / name
    path.write_text("the user's earlier file")
    with file_size_limit(1000), pytest.raises(UserError) as raised:
        writers[name](path)
    assert str(raised.value) == f"cannot write {path}: {os.strerror(errno.EFBIG)}"
    assert os.listdir(tmp_path) == [name] and path.read_text() == "the user's earlier file"


def test_scan_on_a_full_disk_is_one_line_and_the_dataset_is_untouched(tmp_path, capsys):
    images = tmp_path / "drawn"
    dataset.write_dataset(images, per_class=2, size=32, progress=False)
    before = sorted((path, path.stat().st_mtime_ns) for path in images.rglob("*"))
    with file_size_limit(512):
        status = cli.main(["scan", str(images), "--out", str(tmp_path / "m.csv")])
    expected = f"error: cannot write {tmp_path / 'm.csv'}: {os.strerror(errno.EFBIG)}\n"
    assert (status, capsys.readouterr().err) == (2, expected)
    assert sorted((path, path.stat().st_mtime_ns) for path in images.rglob("*")) == before
    assert sorted(os.listdir(tmp_path)) == ["drawn"]


def _truth_half_written(frame, path, **options):
    Path(path).write_text("path,kind,source\n")
    raise FULL


def _image_half_written(context, relative, data):
    (context.root / relative).parent.mkdir(parents=True, exist_ok=True)
    (context.root / relative).write_bytes(data[:10])
    raise FULL


@pytest.mark.parametrize("target, attribute, failing", [(pandas.DataFrame, "to_csv", "truth.csv"),
                                                         (dataset._Context, "write", "drawn")])
def test_synth_on_a_full_disk_leaves_neither_dataset_nor_truth(tmp_path, capsys, monkeypatch, target, attribute,
                                                               failing):
    replacement = _truth_half_written if attribute == "to_csv" else _image_half_written
    monkeypatch.setattr(target, attribute, replacement)
    status = cli.main(["synth", "--out", str(tmp_path / "drawn"), "--per-class", "2", "--image-size", "32", "--dirt",
                       "--truth", str(tmp_path / "truth.csv")])
    err = capsys.readouterr().err
    assert (status, err.splitlines()[-1]) == (2, f"error: cannot write {tmp_path / failing}: No space left on device")
    assert "Traceback" not in err and os.listdir(tmp_path) == []  # no dataset, no truth, no .partial-, no .tmp


def test_sigterm_ends_synth_like_ctrl_c_and_removes_its_temporary_files(tmp_path):
    """`timeout`, CI and `docker stop` send SIGTERM: the hidden .partial- folder and the truth's .tmp file go."""
    process = subprocess.Popen([sys.executable, "-m", "heroes", "synth", "--out", tmp_path / "drawn", "--per-class",
                                "2000", "--image-size", "48", "--truth", tmp_path / "truth.csv"], cwd=PROJECT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(os.listdir(tmp_path)) < 2 and time.monotonic() < deadline:  # the .partial- folder and the .tmp file
        time.sleep(0.1)
    assert len(os.listdir(tmp_path)) == 2, os.listdir(tmp_path)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == "terminated" and os.listdir(tmp_path) == []
