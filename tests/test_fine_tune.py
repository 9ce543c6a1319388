"""The fine_tune recipe (the default of `heroes train`): end to end on drawn folders, its options recorded,
augmentation on training images only, bad values refused before any data is read, runs that appear whole."""

import hashlib
import json

import numpy
import pandas
import pytest

from heroes import cli
from heroes.training import folder as train_folder
from heroes.training.spec import TrainSpec
from heroes.data import augment
from heroes.models import backbones
from tests.test_own_photographs import draw_named

NAMES = {"batman": "Batman", "not_a_hero": "Not a hero", "superman": "a$^$b"}  # a TeX-looking folder name too
FAST = ["--epochs", "2", "--image-size", "64"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return draw_named(tmp_path_factory.mktemp("fine"), per_class=10, size=64, names=NAMES)


def _digest(image) -> str:
    return hashlib.sha256(numpy.ascontiguousarray(image, dtype=numpy.uint8).tobytes()).hexdigest()


@pytest.mark.slow
def test_fine_tune_runs_end_to_end_records_its_options_and_augments_only_training_images(
        photos, tmp_path, capsys, monkeypatch):
    seen = []
    original = augment.training_view
    monkeypatch.setattr(augment, "training_view", lambda image, *rest: seen.append(_digest(image)) or
                        original(image, *rest))
    out = tmp_path / "My Runs" / "fine tune"
    assert cli.main(["train", str(photos), "--out", str(out), *FAST, "--lr", "0.001", "--batch-size", "8",
                     "--label-smoothing", "0.05", "--tta"]) == 0
    printed = capsys.readouterr().out
    assert "exact 95% CI" in printed and "precision" in printed and "recall" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "fine_tune" and metrics["policy"] == "fine_tune"
    settings = metrics["recipe_settings"]
    assert (settings["epochs"], settings["learning_rate"], settings["batch_size"]) == (2, 0.001, 8)
    assert (settings["label_smoothing"], settings["augment"], settings["tta"]) == (0.05, True, True)
    assert metrics["weights"] == "imagenet" and sorted(metrics["classes"]) == sorted(NAMES.values())
    assert metrics["trained_at"].startswith("20") and "commit" in metrics  # the demo page's model card shows them
    summary = (out / "summary.md").read_text()
    assert "## Per class" in summary and "a$^$b" in summary and "exact 95% CI" in summary
    for name in ("worst-errors.png", "learning-curves.png", "confusion-matrix.png", "model.keras"):
        assert (out / name).is_file(), name
    assert not list(out.parent.glob(".partial-*"))
    # augmentation: every augmented image is a training image, never a validation or test one
    from heroes.data import arrays

    splits = pandas.read_csv(out / "splits.csv")
    decoded = arrays.decoded_arrays(splits.drop_duplicates("sha256").sort_values("sha256"), 64, progress=False)
    digest_of = dict(zip(splits.drop_duplicates("sha256").sort_values("sha256")["sha256"], map(_digest, decoded)))
    held_out = {digest_of[sha] for sha in splits[splits["split"].isin(["val", "test"])]["sha256"]}
    training = {digest_of[sha] for sha in splits[splits["split"] == "train"]["sha256"]}
    assert seen and set(seen) <= training and not set(seen) & held_out
    assert cli.main(["predict", str(photos / "a$^$b"), "--model", str(out), "--top-k", "1"]) == 0


@pytest.mark.parametrize("flags", [
    ["--seed", "-1"], ["--seed", str(2**32)], ["--image-size", "100000"], ["--image-size", "8"], ["--epochs", "0"],
    ["--lr", "0"], ["--lr", "-1"], ["--batch-size", "0"], ["--label-smoothing", "1"], ["--policy", "full"],
    ["--recipe", "study", "--tta"], ["--recipe", "study", "--label-smoothing", "0.1"], ["--backbone", "vgg17"],
])
def test_bad_option_values_exit_2_before_any_data_is_read(photos, tmp_path, capsys, monkeypatch, flags):
    from heroes.data import scan

    monkeypatch.setattr(scan, "scan", lambda *args, **kwargs: pytest.fail("data was read"))
    before = sorted(tmp_path.rglob("*"))
    try:
        status = cli.main(["train", str(photos), "--out", str(tmp_path / "run"), *flags])
    except SystemExit as stop:  # argparse's own refusal (an unknown choice): usage and one error line
        status = stop.code
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error and "Traceback" not in error
    assert sorted(tmp_path.rglob("*")) == before


def test_an_out_folder_that_cannot_be_made_is_refused_before_any_work(photos, tmp_path, capsys, monkeypatch):
    from heroes.data import scan

    monkeypatch.setattr(scan, "scan", lambda *args, **kwargs: pytest.fail("data was read"))
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    assert cli.main(["train", str(photos), "--out", str(blocker / "run")]) == 2
    assert "cannot write the run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_that_fails_at_its_last_step_leaves_no_run_folder(photos, tmp_path, monkeypatch):
    from heroes.reporting import run_report

    def broken(*args, **kwargs):
        raise RuntimeError("the summary failed")

    monkeypatch.setattr(run_report, "write_summary", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train_folder.train_folder(TrainSpec(str(photos), epochs=1, image_size=64), out, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_train_writes_only_its_run_folder_and_the_cache_folder(photos, tmp_path):
    from heroes import paths

    processed = sorted(paths.PROCESSED.rglob("*")) if paths.PROCESSED.exists() else []
    request = TrainSpec(str(photos), recipe="study", epochs=1, image_size=64,
                                     cache_dir=str(tmp_path / "cache"))
    train_folder.train_folder(request, tmp_path / "run", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "run"]
    assert (sorted(paths.PROCESSED.rglob("*")) if paths.PROCESSED.exists() else []) == processed
    assert list((tmp_path / "cache").rglob("arrays-*.npy")) and list((tmp_path / "cache").rglob("features*"))


def test_the_cache_folder_comes_from_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HEROES_CACHE_DIR", str(tmp_path / "env"))
    assert train_folder.cache_root() == tmp_path / "env"
    assert train_folder.cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("HEROES_CACHE_DIR")
    assert "heroes" in str(train_folder.cache_root())


def test_the_cli_lists_every_registered_backbone():
    assert sorted(cli.BACKBONES) == backbones.list_backbones()


def test_the_head_of_two_classes_is_the_same_logistic_model(tmp_path):
    """sklearn keeps one coefficient row for two classes; the softmax head built from it gives its probabilities."""
    import keras
    from sklearn.linear_model import LogisticRegression

    from heroes.training import finetune

    rng = numpy.random.default_rng(0)
    features = rng.normal(size=(40, 5)).astype("float32")
    labels = (features[:, 0] > 0).astype(int)
    inputs = keras.Input((5,))
    pooled = keras.layers.Identity()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, outputs)
    finetune.fit_head(model, model, [features], labels, finetune.FineTune())
    expected = LogisticRegression(C=1.0, max_iter=2000).fit(features, labels).predict_proba(features)
    numpy.testing.assert_allclose(model.predict(features, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("name", backbones.list_backbones())
def test_every_backbone_names_where_fine_tuning_starts(name):
    import keras

    from heroes.models import build
    from heroes.training import finetune

    spec = backbones.get_backbone(name)
    model = build.build_model(name, 3, spec.min_size, weights=None, policy="linear_probe")
    finetune.set_trainable(model, finetune.FineTune(), spec.fine_tune_from)
    trainable = [layer for layer in model.layers if layer.trainable and layer.weights]
    assert trainable and trainable[-1].name == build.OUTPUT_LAYER
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert any(layer.name.startswith(spec.fine_tune_from) for layer in trainable)
    frozen = [layer for layer in model.layers if layer.weights and not layer.trainable
              and not isinstance(layer, keras.layers.BatchNormalization)]
    assert frozen  # only the top of the backbone trains
