"""Notebook helpers of 02/03: notebook 01's outputs found or explained, probes predicted in order, summaries honest."""

import json

import keras
import numpy
import pandas
import pytest
from PIL import Image

from heroes.data import sources, split
from heroes.data.arrays import ImageSet
from heroes.errors import UserError
from heroes.evaluation import stats
from heroes.models import backbones
from heroes.serving import predict
from heroes.training import runs
from heroes.training.runs import RunResult
from heroes.models.weights import RANDOM_UNAVAILABLE, WeightsChoice
from heroes.reporting import study_metrics, tables, verdicts
from heroes.reporting.plots.probes import probe_grid

CLASSES = ("batman", "captain_marvel", "superman", "wonder_woman", "deadpool", "not_a_hero")


def write_splits(data_dir, per_class=(4, 2, 2), classes=CLASSES):
    rows = []
    for label in classes:
        for split_name, count in zip(("train", "val", "test"), per_class):
            for index in range(count):
                sha = f"{label}-{split_name}-{index}".encode().hex().ljust(64, "0")[:64]
                rows.append({"path": f"/x/{label}/{split_name}{index}.png", "label": label, "sha256": sha,
                             "group_key": sha, "split": split_name})
    rows.append({"path": "/x/batman/spare.png", "label": "batman", "sha256": "f" * 64, "group_key": "f" * 64,
                 "split": "unused"})
    split.write_splits(pandas.DataFrame(rows), data_dir / "interim" / "splits.csv")


def write_image(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_a_missing_split_says_to_run_notebook_01(tmp_path):
    with pytest.raises(UserError, match="run notebooks/01-data-cleaning.ipynb first"):
        sources.load_split(tmp_path)
    with pytest.raises(UserError, match="01-data-cleaning"):
        sources.read_clean_manifest(tmp_path)


def test_the_split_is_restricted_to_the_classes_asked_for(tmp_path):
    write_splits(tmp_path)
    two = sources.load_split(tmp_path, ["not_a_hero", "batman"])
    assert set(two["label"]) == {"batman", "not_a_hero"} and len(two) == 2 * 8 + 1
    counts = sources.split_counts(two)
    assert list(counts.index) == ["batman", "not_a_hero", "total"]  # the study's order, not the order asked
    assert list(counts.columns) == ["train", "val", "test"]
    assert counts.loc["total"].tolist() == [8, 4, 4]  # "unused" is not counted
    assert len(sources.load_split(tmp_path)) == 6 * 8 + 1
    with pytest.raises(UserError, match="robin"):
        sources.load_split(tmp_path, ["batman", "robin"])
    with pytest.raises(UserError, match="two distinct"):
        sources.load_split(tmp_path, ["batman", "batman"])


def test_probe_rows_are_the_decodable_probes_in_class_order():
    manifest = pandas.DataFrame({
        "path": ["p/superman/a.png", "p/batman/b.png", "p/batman/a.png", "c/batman/x.png", "p/deadpool/bad.png"],
        "label": ["superman", "batman", "batman", "batman", "deadpool"],
        "role": ["probe", "probe", "probe", "data", "probe"],
        "status": ["ok", "ok", "ok", "ok", "rejected"],
    })
    probes = sources.probe_rows(manifest)
    assert probes["path"].tolist() == ["p/batman/a.png", "p/batman/b.png", "p/superman/a.png"]
    assert list(probes.index) == [0, 1, 2]
    assert sources.probe_rows(manifest, ["superman"])["path"].tolist() == ["p/superman/a.png"]
    assert sources.probe_rows(manifest.drop(columns="role")).empty


def random_choice(backbone):
    return WeightsChoice(RANDOM_UNAVAILABLE, None, None, True, f"ImageNet weights for {backbone} unavailable")


def test_the_random_weights_warning_is_plain():
    imagenet = WeightsChoice("imagenet", "imagenet", None, False, "ImageNet weights from a file")
    both_random = {"vgg16": random_choice("vgg16"), "resnet50": random_choice("resnet50")}
    warning = verdicts.weights_warning(both_random)
    assert warning == "weights: random (ImageNet unavailable) — these numbers are NOT the study's"
    lines = verdicts.weights_lines(both_random).splitlines()
    assert lines[:2] == ["VGG16      weights: random (ImageNet unavailable)",
                         "ResNet50   weights: random (ImageNet unavailable)"]
    assert lines[3].startswith("RANDOM WEIGHTS for VGG16, ResNet50: no ImageNet weights were loaded for them")
    with_notes = verdicts.weights_lines(both_random, notes=True)
    assert "ResNet50   weights: random (ImageNet unavailable); ImageNet weights for resnet50 unavailable" in with_notes
    assert verdicts.weights_lines({"vgg16": imagenet}) == "VGG16      weights: imagenet"
    assert verdicts.weights_warning({"vgg16": imagenet}) is None
    mixed = verdicts.weights_warning({"vgg16": imagenet, "resnet50": random_choice("resnet50")})
    assert "NOT the study's" in mixed and "ResNet50" in mixed


def test_the_data_note_says_when_the_images_are_synthetic(tmp_path):
    assert sources.data_note(tmp_path).startswith("data: your images in")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "embedded.json").write_text(json.dumps({"per_class": 16}))
    assert "EMBEDDED SYNTHETIC DATASET" in sources.data_note(tmp_path)


@pytest.fixture(scope="module")
def colour_model():
    """Two classes from mean colour: red images -> "batman", blue -> "not_a_hero" (softmax of R - B)."""
    inputs = keras.Input((16, 16, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(mean)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([numpy.array([[0.05, -0.05], [0, 0], [-0.05, 0.05]]), numpy.zeros(2)])
    return model


def test_predict_images_keeps_the_order_and_gives_probabilities(tmp_path, colour_model):
    paths = [write_image(tmp_path / "red.png", (250, 0, 0)), write_image(tmp_path / "blue.jpg", (0, 0, 250)),
             write_image(tmp_path / "red2.webp", (200, 10, 10), size=(20, 60))]
    frame = predict.predict_images(colour_model, ["batman", "not_a_hero"], paths, 16)
    assert frame["path"].tolist() == [str(path) for path in paths]
    assert frame["predicted"].tolist() == ["batman", "not_a_hero", "batman"]
    assert numpy.allclose(frame[["prob_batman", "prob_not_a_hero"]].sum(axis=1), 1)
    assert (frame["probability"] > 0.99).all()
    empty = predict.predict_images(colour_model, ["batman", "not_a_hero"], [], 16)
    assert empty.empty and "prob_batman" in empty.columns
    with pytest.raises(UserError, match="3 class names"):
        predict.predict_images(colour_model, ["a", "b", "c"], paths, 16)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.png"):
        predict.predict_images(colour_model, ["batman", "not_a_hero"], [tmp_path / "broken.png"], 16)


def probe_frames():
    probes = pandas.DataFrame({"path": ["b1", "b2", "s1"], "label": ["batman", "batman", "superman"]})
    vgg = pandas.DataFrame({"path": probes["path"], "predicted": ["not_a_hero", "batman", "not_a_hero"],
                            "probability": [0.834, 0.6, 0.7]})
    resnet = pandas.DataFrame({"path": probes["path"], "predicted": ["batman", "batman", "batman"],
                               "probability": [0.605, 0.9, 0.55]})
    return probes, {"VGG16": vgg, "ResNet50": resnet}


def test_probe_titles_and_table():
    probes, predictions = probe_frames()
    titles = tables.probe_titles(predictions)
    assert titles[0] == "VGG16: Not a hero 0.83 | ResNet50: Batman 0.60"
    assert titles[numpy.array([False, False, True])].tolist() == ["VGG16: Not a hero 0.70 | ResNet50: Batman 0.55"]
    table = tables.probe_table(probes, predictions)
    assert list(table.index) == ["Batman", "Superman"]
    assert table.loc["Batman"].to_dict() == {"probes": 2, "VGG16: Not a hero": 0.5, "VGG16: own class": 0.5,
                                             "ResNet50: Not a hero": 0.0, "ResNet50: own class": 1.0}
    assert table.loc["Superman", "VGG16: Not a hero"] == 1.0
    assert tables.probe_table(probes.iloc[:0], predictions).empty
    with pytest.raises(ValueError, match="same images"):
        tables.probe_titles({"VGG16": predictions["VGG16"], "ResNet50": predictions["ResNet50"].iloc[:2]})


def test_probe_records_name_images_relative_to_the_project_root():
    from heroes import paths

    _, predictions = probe_frames()
    inside, outside = paths.PROJ_ROOT / "data" / "raw" / "probes" / "Batman" / "b 1.jpg", "/elsewhere/b2.jpg"
    predictions = {name: frame.assign(path=[str(inside), outside, str(inside.with_name("b2.png"))]) for name, frame in predictions.items()}
    records = tables.probe_records(predictions)
    assert list(records) == ["VGG16", "ResNet50"]
    assert records["VGG16"][0] == {"path": "data/raw/probes/Batman/b 1.jpg", "predicted": "not_a_hero",
                                   "probability": 0.834}
    assert [record["path"] for record in records["ResNet50"]] == ["data/raw/probes/Batman/b 1.jpg", outside,
                                                           "data/raw/probes/Batman/b2.png"]
    json.dumps(records)  # plain Python values only: the metrics file is JSON


def test_probe_grid_writes_a_png(tmp_path):
    paths = [write_image(tmp_path / f"{index}.png", (40 * index, 90, 200)) for index in range(3)]
    (tmp_path / "bad.png").write_bytes(b"broken")
    saved = probe_grid([*paths, tmp_path / "bad.png"], ["VGG16: Batman 0.61 | ResNet50: Not a hero 0.90"] * 4,
                             tmp_path / "figures" / "grid.png", columns=3, headings=["Batman"] * 4, title="probes")
    with Image.open(saved.path) as image:
        assert image.format == "PNG" and image.width > 300
    assert saved.figure.axes[0].get_title() == "Batman\nVGG16: Batman 0.61\nResNet50: Not a hero 0.90"
    with pytest.raises(ValueError, match="one title per image"):
        probe_grid(paths, ["only one"], tmp_path / "x.png")


def fake_result(tmp_path, correct):
    """A RunResult of 50 test images, ``correct`` of them right, as heroes.training.train writes it."""
    class_names = ("batman", "not_a_hero")
    labels = numpy.arange(50) % 2
    predicted = numpy.where(numpy.arange(50) < correct, labels, 1 - labels)
    probabilities = numpy.full((50, 2), 0.1)
    probabilities[numpy.arange(50), predicted] = 0.9

    test_set = ImageSet(numpy.zeros((50, 1, 1, 3), numpy.uint8), labels, tuple(f"t/{index}.png" for index in range(50)),
                        tuple(f"{index:064x}" for index in range(50)), class_names)
    frame = runs.predictions_frame(test_set, probabilities)
    metrics = {"backbone": "vgg16", "policy": "study", "seed": 0, "weights": RANDOM_UNAVAILABLE,
               "weights_random": True, "best_epoch": 3, "epochs_run": 10, "best_val_accuracy": 0.9,
               "train_path": "cached-features", "feature_dtype": "float32", "wall_time_s": 12.5}
    return RunResult(tmp_path, None, pandas.DataFrame(), metrics, frame, None,
                     {"model": {"trainable_parameters": 1234}})


def test_run_summary_carries_the_exact_interval(tmp_path):
    summary = tables.run_summary(fake_result(tmp_path, 50))
    assert summary["test_correct"] == 50 and summary["test_accuracy"] == 1.0
    assert summary["test_accuracy_ci"] == pytest.approx([0.9289, 1.0], abs=1e-4)
    assert verdicts.accuracy_line("VGG16", summary) == "VGG16: 50/50 correct = 100.0%, exact 95% CI [92.9%, 100.0%]"
    assert summary["weights"] == RANDOM_UNAVAILABLE and summary["confusion_matrix"] == [[25, 0], [0, 25]]
    lower = tables.run_summary(fake_result(tmp_path, 40))
    assert lower["test_accuracy_ci"] == pytest.approx(list(stats.clopper_pearson(40, 50)))
    metrics = study_metrics.BatmanVsHuman(
        notebook="02-batman-vs-human", title="Batman vs Not a hero", weights={}, data={}, config={},
        models={"VGG16": summary}, verdict="", run_dirs=[], study_claim={"accuracy_ci": [float("nan"), 1.0]},
        probe_summary={}, probes={})
    written = json.loads(study_metrics.write_study_metrics(tmp_path / "metrics" / "02.json", metrics).read_text())
    assert written["study_claim"]["accuracy_ci"] == [None, 1.0]  # strict JSON
    assert written["models"]["VGG16"]["test_accuracy_ci"] == pytest.approx([0.9289, 1.0], abs=1e-4)


def test_backbone_and_class_names_read_well():
    assert backbones.display_name("resnet50") == "ResNet50"
    with pytest.raises(UserError, match="unknown backbone"):
        backbones.display_name("mystery")
    assert tables.display_class("not_a_hero") == "Not a hero"
