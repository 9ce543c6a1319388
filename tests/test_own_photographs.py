"""A person's own folders: any names and classes, `heroes train` end to end, and one clear line for bad input."""

import shutil
from pathlib import Path

import pandas
import pytest

from heroes import cli
from heroes.reporting import reproduce as pipeline
from heroes.data import scan, sources, split
from heroes.data.synthetic import dataset

PERSON_NAMES = {"batman": "Batman", "not_a_hero": "Not a hero", "captain_marvel": "Captain Marvel",
                "superman": "Superman", "wonder_woman": "Wonder Woman", "deadpool": "Deadpool"}


def draw_named(root: Path, per_class=8, size=72, names=PERSON_NAMES) -> Path:
    """The embedded dataset in folders named as a person names them (capitals, spaces); probes left out."""
    drawn = root / "drawn"
    dataset.write_dataset(drawn, per_class=per_class, size=size, seed=3, progress=False)
    photos = root / "My Photos"
    for class_id, folder in names.items():
        shutil.copytree(drawn / class_id, photos / folder)
    return photos


def write_split(data_dir: Path, photos: Path) -> pandas.DataFrame:
    manifest = scan.scan(photos, progress=False)
    splits = split.make_splits(manifest, 4, 2, 2, seed=0)
    (data_dir / "interim").mkdir(parents=True, exist_ok=True)
    split.write_splits(splits, data_dir / "interim" / sources.SPLITS_FILE)
    return splits


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return draw_named(tmp_path_factory.mktemp("own"))


def test_person_named_folders_get_class_ids_and_keep_their_names(photos):
    manifest = scan.scan(photos, progress=False)
    ids = dict(zip(manifest["label"], manifest["class_id"]))
    assert ids["Not a hero"] == "not_a_hero" and ids["Captain Marvel"] == "captain_marvel"


def test_the_study_classes_are_found_by_id_in_person_named_folders(photos, tmp_path):
    write_split(tmp_path, photos)
    binary = sources.load_split(tmp_path, ["batman", "not_a_hero"])
    assert set(binary["label"]) == {"Batman", "Not a hero"}
    assert pipeline.skipped_notebooks(tmp_path) == {}


def test_ten_classes_without_not_a_hero_skip_only_the_binary_notebook(photos, tmp_path):
    ten = tmp_path / "ten"
    heroes = [folder for folder in photos.iterdir() if folder.name != "Not a hero"]
    for folder in heroes:  # each hero twice: ten classes, none of them "Not a hero"
        shutil.copytree(folder, ten / folder.name)
        shutil.copytree(folder, ten / f"{folder.name} (comics)")
    write_split(tmp_path, ten)
    skipped = pipeline.skipped_notebooks(tmp_path)
    assert list(skipped) == ["02-batman-vs-human"] and "no Not a hero class" in skipped["02-batman-vs-human"]
    assert sources.data_title(sources.load_split(tmp_path)).startswith("10 classes: Batman, Captain Marvel, Superman, Wonder Woman, Deadpool, Batman (comics)")


def test_two_classes_only_run_every_notebook(photos, tmp_path):
    two = tmp_path / "two"
    for name in ("Batman", "Not a hero"):
        shutil.copytree(photos / name, two / name)
    write_split(tmp_path, two)
    assert pipeline.skipped_notebooks(tmp_path) == {}


@pytest.mark.slow
def test_train_end_to_end_gives_a_model_predict_loads(photos, tmp_path, capsys):
    out = tmp_path / "runs" / "first run"
    assert cli.main(["train", str(photos), "--out", str(out), "--recipe", "study", "--epochs", "1",
                     "--image-size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "Test accuracy" in printed and "python -m heroes predict" in printed and "ms/step" in printed
    metrics = pandas.read_json(out / "metrics.json", typ="series")
    assert metrics["backbone"] == "efficientnet_lite0" and metrics["weights"] == "imagenet"
    assert sorted(metrics["classes"]) == sorted(PERSON_NAMES.values()) and metrics["test_n"] > 0
    for name in ("summary.md", "confusion-matrix.png", "learning-curves.png", "model.keras", "splits.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))  # tensorboard --logdir models/ finds it
    history = pandas.read_csv(out / "history.csv")
    assert {"train_eval_loss", "train_eval_accuracy", "val_loss"} <= set(history.columns)
    assert cli.main(["predict", str(photos / "Wonder Woman"), "--model", str(out), "--top-k", "1"]) == 0
    table = capsys.readouterr().out
    assert "Wonder Woman" in table and len(table.strip().splitlines()) == 1 + 8
    assert cli.main(["train", str(photos), "--out", str(out)]) == 2  # a run is there: not without --force
    assert "--force" in capsys.readouterr().err
    assert cli.main(["train", str(photos), "--out", str(out), "--recipe", "study", "--epochs", "1",
                     "--image-size", "64", "--force", "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "ms/step" not in quiet.out and "Test accuracy" in quiet.out and quiet.err == ""


def bad_inputs(root: Path, photos: Path) -> dict:
    """Each case: (DATA_DIR, RUN_DIR) that must give one line, exit 2, nothing written."""
    (root / "empty").mkdir()
    (root / "a file.jpg").write_bytes(b"not a folder")
    one = root / "one class"
    shutil.copytree(photos / "Batman", one / "Batman")
    few = root / "few"
    shutil.copytree(photos / "Batman", few / "Batman")
    (few / "Superman").mkdir()
    for picture in sorted((photos / "Superman").iterdir())[:2]:
        shutil.copy(picture, few / "Superman" / picture.name)
    held = root / "held"
    held.mkdir()
    (held / "metrics.json").write_text("{}")
    return {"empty folder": (root / "empty", root / "out1"), "data is a file": (root / "a file.jpg", root / "out2"),
            "one class": (one, root / "out3"), "a class of 2 images": (few, root / "out4"),
            "run inside the data": (photos, photos / "run"), "run already there": (photos, held)}


@pytest.mark.parametrize("case", ["empty folder", "data is a file", "one class", "a class of 2 images",
                                  "run inside the data", "run already there"])
def test_bad_train_input_is_one_line_and_writes_nothing(photos, tmp_path, capsys, case):
    data, out = bad_inputs(tmp_path, photos)[case]
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    assert cli.main(["train", str(data), "--out", str(out), "--epochs", "1", "--image-size", "64"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and "Traceback" not in error, error
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert not (photos / "run").exists()
