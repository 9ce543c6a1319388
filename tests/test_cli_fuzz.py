"""Random bad paths, hostile names, numbers and CSVs: exit 0 or 2, no traceback or raw escape printed, inputs intact."""

import hashlib
import os
import random
import shutil
import time
from pathlib import Path

import pandas
import pytest
from clean_helpers import tiny_model
from PIL import Image

from heroes import cli
from heroes.data import scan, split
from heroes.data.synthetic import dataset

SEED = 14
CASES = 400
BUDGET_SECONDS = 45  # stop drawing cases after this long (each case is bounded too: tiny data, tiny model)
HOSTILE_CLASS = "x\x1b[2J\x1b]0;pwned\x07y"  # clears the screen and sets the window title if printed raw
NUMBERS = ["0", "1", "2", "-1", "-5", "0.5", "-0.5", "1.5", "inf", "-inf", "nan", "1e999", "99999999999999999999",
           "x", "", " 3", "0x10", "1_000", "40000"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Valid inputs of every command, malformed variants of each CSV, and odd files; digests to prove them intact."""
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "data"
    dataset.write_dataset(data, per_class=3, size=72, seed=1, progress=False)
    (data / "deadpool").rename(data / HOSTILE_CLASS)
    manifest = scan.write_manifest(scan.scan(data, progress=False), root / "manifest.csv")
    split.write_splits(split.make_splits(scan.read_manifest(manifest), 0.5, 0.25, 0.25), root / "splits.csv")
    # Without the optional columns (relpath, role, class_id...) the dataset folder must be as safe.
    bare = _only(manifest, scan.REQUIRED_COLUMNS, root / "bare_manifest.csv")
    bare_splits = _only(root / "splits.csv", split.SPLIT_COLUMNS, root / "bare_splits.csv")
    sha = scan.read_manifest(manifest)["sha256"].iloc[0]
    (root / "decisions.csv").write_text(f"sha256,decision,label,note\n{sha},keep,,fine\n")
    model = _tiny_model(root / "model")
    bad = _malformed(root)
    os.mkfifo(root / "fifo.csv")
    os.symlink(root / "loop.csv", root / "loop.csv")
    (root / "empty_dir").mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(root / "image.png")
    world = {"root": root, "data": data, "manifests": (manifest, bare), "splits": (root / "splits.csv", bare_splits),
             "manifest": manifest, "decisions": root / "decisions.csv", "model": model, "bad": bad,
             "image": root / "image.png", "data_image": sorted((data / "batman").iterdir())[0]}
    world["digest"] = _digest(root)
    return world


def _only(path: Path, columns, out: Path) -> Path:
    pandas.read_csv(path, dtype=str, keep_default_na=False)[columns].to_csv(out, index=False)
    return out


def _tiny_model(folder: Path) -> Path:
    path = tiny_model(folder / "model.keras", ["a", HOSTILE_CLASS])
    broken = folder / "broken.keras"
    shutil.copyfile(path, broken)
    (folder / "broken.class_names.json").write_text('{"class_names": [1, 2]}')
    return path


def _malformed(root: Path) -> list:
    """Broken variants of the manifest, splits and decisions files a hand or a crash could make."""
    folder = root / "bad"
    folder.mkdir()
    manifest = (root / "manifest.csv").read_text()
    splits = (root / "splits.csv").read_text()
    lines = manifest.splitlines()
    variants = {
        "truncated.csv": manifest[: len(manifest) // 2],
        "extra_cell.csv": "\n".join(lines[:2] + [lines[2] + ",surprise"] + lines[3:]) + "\n",
        "missing_column.csv": manifest.replace("sha256", "sha", 1),
        "empty.csv": "",
        "header_only.csv": lines[0] + "\n",
        "nul.csv": manifest.replace(",ok,", ",o\x00k,", 1),
        "crlf_bom.csv": "\ufeff" + manifest.replace("\n", "\r\n"),
        "status.csv": manifest.replace(",ok,", ",OK,", 1),
        "width.csv": manifest.replace(",72,72,", ",wide,72,", 1),
        "no_sha.csv": "\n".join([lines[0]] + [_drop_sha(line) for line in lines[1:]]) + "\n",
        "quote.csv": manifest.replace(",ok,", ',"ok,', 1),
        "shouting_splits.csv": splits.replace(",train", ",TRAIN"),
        "comma_note.csv": "sha256,decision,label,note\n" + "a" * 64 + ",keep,,looks fine, keep it\n",
        "bad_decision.csv": "sha256,decision,label,note\n" + "a" * 64 + ",maybe,,\n",
    }
    for name, text in variants.items():
        (folder / name).write_text(text, newline="")
    (folder / "garbage.csv").write_bytes(random.Random(SEED).randbytes(700))  # not UTF-8 at all
    return sorted(folder.iterdir())


def _drop_sha(line: str) -> str:
    cells = line.split(",")
    cells[7] = ""
    return ",".join(cells)


def _digest(root: Path) -> dict:
    state = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                state[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


class Draw:
    """Random arguments: a valid one now and then, mostly the bad paths, numbers and files of ``world``."""

    def __init__(self, rng: random.Random, world: dict, scratch: Path):
        self.rng, self.world, self.scratch = rng, world, scratch

    def pick(self, *options):
        return self.rng.choice(options)

    def number(self, valid="2"):
        """Mostly ``valid``: one bad number per command is enough to stop it, and the rest should be reached too."""
        return valid if self.rng.random() < 0.8 else self.pick(*NUMBERS)

    def odd_path(self):
        root = self.world["root"]
        return self.pick(root / "missing.csv", root / "empty_dir", root / "fifo.csv", root / "loop.csv",
                         "/dev/null", root / "manifest.csv" / "below", root / "new\nline.csv", "",
                         root / ("n" * 300), *self.world["bad"])

    def csv_input(self, valid):
        """One of the ``valid`` files (full or without optional columns), or an odd path."""
        return self.pick(*valid) if self.rng.random() < 0.5 else self.odd_path()

    def out(self, *inputs):
        """A fresh place in the scratch folder, or one that must be refused (an input of this command among them)."""
        scratch, world = self.scratch, self.world
        refused = [world["root"], world["data"] / "batman" / "o.csv", world["data_image"], "/dev/null",
                   world["root"] / "fifo.csv",
                   world["manifest"] / "o.csv", world["root"] / ("o" * 300), "", *inputs]
        if self.rng.random() < 0.7:
            return self.pick(scratch / "o.csv", scratch / "deep" / "er" / "o.csv", scratch / "o\nnewline.csv",
                             scratch / f"{HOSTILE_CLASS}.csv")
        return self.pick(*refused)

    def decisions(self):
        """A scratch copy (clean appends to it) of the valid or a malformed decisions file, or a bad path."""
        if self.rng.random() < 0.3:
            return self.scratch / "fresh_decisions.csv", None
        source = self.world["decisions"] if self.rng.random() < 0.5 else self.pick(*self.world["bad"], None)
        if source is None:
            return self.odd_path(), None
        copy = self.scratch / "decisions.csv"
        shutil.copyfile(source, copy)
        return copy, source

    def command(self) -> tuple:
        world = self.world
        kind = self.pick("synth", "scan", "clean", "split", "leakage", "predict", "export", "bench")
        checks = []
        if kind == "synth":
            argv = ["synth", "--out", self.pick(self.scratch / "new", world["data"], world["manifest"], "/dev/null"),
                    "--per-class", self.pick("1", "0", "-1", "x", "inf", "1.5", ""),
                    "--image-size", self.pick("32", "40", "0", "-5", "40000", "1e3", "x", "inf", "")]
            if self.rng.random() < 0.5:
                argv += ["--truth", self.out(world["data"])]
        elif kind == "scan":
            argv = ["scan", self.pick(world["data"], world["root"] / "empty_dir", world["manifest"],
                                      world["root"] / "missing", world["root"] / "fifo.csv"), "--out", self.out()]
        elif kind == "clean":
            manifest = self.csv_input(world["manifests"])
            decisions, source = self.decisions()
            argv = ["clean", manifest, "--out", self.out(manifest), "--clean-manifest", self.out(manifest),
                    "--decisions", decisions, "--threshold", self.number("80"), "--min-side", self.number("64")]
            if source is not None:
                checks.append((decisions, source.read_bytes()))
        elif kind == "split":
            manifest = self.csv_input(world["manifests"])
            argv = ["split", manifest, "--out", self.out(manifest), "--train", self.number("0.5"),
                    "--val", self.number("0.25"), "--test", self.number("0.25"), "--seed", self.number()]
        elif kind == "leakage":
            splits = self.csv_input(world["splits"])
            argv = ["leakage", splits, "--threshold", self.number("80")]
            if self.rng.random() < 0.5:
                argv += ["--manifest", self.csv_input(world["manifests"])]
            if self.rng.random() < 0.5:
                argv += ["--out", self.out(splits)]
        elif kind == "predict":
            model = self.pick(world["model"], world["model"].parent, world["model"].with_name("broken.keras"),
                              world["root"] / "missing.keras", world["manifest"])
            inputs = [self.pick(world["image"], world["data"] / "batman", self.odd_path()) for _ in range(2)]
            argv = ["predict", *inputs, "--model", model, "--top-k", self.number(), "--batch-size", self.number()]
            argv += ["--json"] if self.rng.random() < 0.5 else []
        elif kind == "export":
            model = self.pick(world["model"].with_name("broken.keras"), world["root"] / "missing.keras",
                              world["manifest"], world["model"])
            out = self.out(model, world["model"]) if model != world["model"] else self.pick(
                world["root"], "/dev/null", world["model"], world["data"] / "batman")
            argv = ["export", "--model", model, "--format", self.pick("savedmodel", "onnx", "tflite"), "--out", out]
        else:  # bench: only places it must refuse, or it would run the benchmark
            argv = ["bench", "--out", self.pick(world["root"], "/dev/null", world["manifest"] / "below",
                                                world["root"] / ("b" * 300))]
        return [str(arg) for arg in argv], checks


def test_random_bad_input_is_exit_0_or_2_without_traceback_and_inputs_stay_intact(world, tmp_path, monkeypatch,
                                                                                 capsys):
    monkeypatch.chdir(tmp_path)  # an empty --out resolves here, never in the repository
    rng = random.Random(SEED)
    started, ran = time.perf_counter(), 0
    scratch = tmp_path / "scratch"
    while ran < CASES and time.perf_counter() - started < BUDGET_SECONDS:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        argv, checks = Draw(rng, world, scratch).command()
        try:
            status = cli.main(argv)
        except SystemExit as exited:  # argparse: a value of the wrong type
            status = exited.code
        except BaseException as error:  # pragma: no cover - the failure report
            pytest.fail(f"{argv!r} raised {error!r}")
        out, err = capsys.readouterr()
        assert status in (0, 2), f"{argv!r} exited {status}: {err}"
        assert "Traceback" not in err, f"{argv!r}: {err}"
        assert not {"\x1b", "\x07"} & set(out + err), f"{argv!r} printed a raw control character: {out + err!r}"
        if status == 2:
            assert "error:" in err.strip().splitlines()[-1], f"{argv!r}: {err}"
        assert _digest(world["root"]) == world["digest"], f"{argv!r} changed an input"
        for path, before in checks:  # a decisions file is appended to, never rewritten
            assert Path(path).read_bytes().startswith(before), f"{argv!r} rewrote {path}"
        ran += 1
    assert ran >= 40, f"only {ran} cases in {BUDGET_SECONDS} s"
