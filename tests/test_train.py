"""Training runs: the cached path trains the same model as end-to-end fitting, and each run leaves a full record."""

import dataclasses
import json
import types

import keras
import numpy
import pandas
import pytest
from test_features import coloured_set

from heroes import paths
from heroes.config import TrainConfig
from heroes.data.arrays import ImageSet
from heroes.models import build, saving
from heroes.training.cached import features
from heroes.training import runs, train
from heroes.training.fit import fresh_session, release_optimizer_graphs
from heroes.training.train import train_run

# lr 0.01 so two epochs move the head visibly; the study's 0.001 barely moves it on 24 images.
SMALL = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=2, batch_size=8, learning_rate=0.01)


def small_sets(train=24, classes=("batman", "not_a_hero")) -> dict:
    return {"train": coloured_set(train, 32, 1, classes), "val": coloured_set(8, 32, 2, classes),
            "test": coloured_set(8, 32, 3, classes)}


def probabilities(result) -> numpy.ndarray:
    return result.predictions[runs.probability_columns(result.metrics["class_names"])].to_numpy()


def imbalanced(image_set, keep_every=3) -> ImageSet:
    """Keep every class-0 image but only every ``keep_every``-th of the others."""
    keep = numpy.flatnonzero((image_set.labels == 0) | (numpy.arange(len(image_set)) % keep_every == 1))
    pick = lambda values: tuple(values[index] for index in keep)  # noqa: E731
    return ImageSet(image_set.images[keep], image_set.labels[keep], pick(image_set.paths), pick(image_set.sha256),
                    image_set.class_names)


def test_cached_features_train_the_same_model_as_end_to_end(tmp_path):
    sets = small_sets()
    naive = train_run(SMALL, sets, run_dir=tmp_path / "naive", use_cache=False, progress=False)
    cached = train_run(SMALL, sets, run_dir=tmp_path / "cached", cache_dir=tmp_path / "features", progress=False)
    assert naive.metrics["train_path"] == "end-to-end" and cached.metrics["train_path"] == "cached-features"
    numpy.testing.assert_allclose(probabilities(cached), probabilities(naive), atol=1e-4)
    numpy.testing.assert_allclose(cached.history["loss"], naive.history["loss"], rtol=1e-4)

    # Training really moved the head: the saved fc1 differs from a fresh model with the same seed.
    keras.utils.set_random_seed(SMALL.seed)
    fresh = build.build_model("vgg16", 2, 32, weights=None)
    assert not numpy.allclose(fresh.get_layer("fc1").get_weights()[0], cached.model.get_layer("fc1").get_weights()[0])


def test_run_directory_holds_everything_a_report_needs(tmp_path):
    sets = small_sets()
    # bf16 features steer training only; the reported numbers must still be the saved float32 model's.
    config = dataclasses.replace(SMALL, feature_dtype="bfloat16")
    result = train_run(config, sets, name="six", run_dir=tmp_path / "run", manifest_hash="abc123",
                       cache_dir=tmp_path / "features", progress=False)
    assert "bfloat16" in result.metrics["feature_cache"]["dir"]
    assert result.metrics["feature_cache"]["computed"] == 24 + 8  # train and val: bf16 test features go unread
    # the float32 model is scored on float32 test features, kept in the float32 store for every later run
    assert result.metrics["test_feature_cache"]["computed"] == 8
    assert "float32" in result.metrics["test_feature_cache"]["dir"]
    inside = paths.PROJ_ROOT / "data" / "processed" / "features" / "x"  # recorded from the project root
    assert train._store_record(types.SimpleNamespace(directory=inside, computed=1, reused=2)) == \
        {"dir": "data/processed/features/x", "computed": 1, "reused": 2}
    assert {"build_model", "extract_features", "fit", "materialise", "test_predictions"} \
        <= set(result.metrics["step_seconds"])
    assert release_optimizer_graphs() == 0  # the run left no traced train step behind
    names = {path.name for path in (tmp_path / "run").iterdir()}
    assert {"config.json", "history.csv", "metrics.json", "predictions.csv", "model.keras", "versions.json",
            "model.class_names.json"} <= names
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["weights"] == "random (weights=None)" and metrics["manifest_hash"] == "abc123"
    assert metrics["test_n"] == 8 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["wall_time_s"] >= metrics["train_time_s"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert TrainConfig(**config["config"]) == result.config and result.record == config
    assert config["data"]["train"] == 24 and config["weights"] == "random (weights=None)"
    assert set(json.loads((tmp_path / "run" / "versions.json").read_text())) >= {"python", "tensorflow", "keras"}
    history = pandas.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history.columns)

    predictions = pandas.read_csv(tmp_path / "run" / "predictions.csv")
    assert list(predictions["path"]) == list(sets["test"].paths)
    assert list(predictions.columns[:4]) == ["path", "sha256", "label", "predicted"]
    numpy.testing.assert_allclose(predictions[["prob_batman", "prob_not_a_hero"]].sum(axis=1), 1, atol=1e-5)
    # The saved model, given raw images, predicts what predictions.csv says.
    model, class_names = saving.load_model(tmp_path / "run" / "model.keras")
    assert class_names == ["batman", "not_a_hero"]
    again = model.predict(sets["test"].images.astype("float32"), verbose=0)
    numpy.testing.assert_allclose(again, predictions[["prob_batman", "prob_not_a_hero"]], atol=1e-5)
    assert runs.read_run(tmp_path / "run").metrics == metrics


def test_augmented_views_reuse_the_cache_and_match_end_to_end(tmp_path, monkeypatch):
    sets = small_sets(train=30)
    sets["train"] = imbalanced(sets["train"])  # 15 batman, 5 not_a_hero
    config = dataclasses.replace(SMALL, augment=True, views=3, class_weights="balanced", early_stopping=1, epochs=3)
    first = train_run(config, sets, run_dir=tmp_path / "first", cache_dir=tmp_path / "features", progress=False)
    assert first.metrics["feature_cache"]["computed"] == 20 * 3 + 8 + 8
    assert first.metrics["best_val_loss"] == pytest.approx(first.history["val_loss"].min())

    monkeypatch.setattr(features, "run_prefix", lambda *args: pytest.fail("features computed again"))
    second = train_run(config, sets, run_dir=tmp_path / "second", cache_dir=tmp_path / "features", progress=False)
    assert second.metrics["feature_cache"] == {**first.metrics["feature_cache"], "computed": 0, "reused": 76}
    numpy.testing.assert_allclose(probabilities(second), probabilities(first), atol=1e-6)

    naive = train_run(config, sets, run_dir=tmp_path / "naive", use_cache=False, progress=False)
    numpy.testing.assert_allclose(probabilities(naive), probabilities(first), atol=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"augment": True, "views": 1}, "views >= 2"),
        ({"class_weights": "inverse"}, "class_weights must be one of"),
        ({"image_size": 48}, "config asks for 48x48"),
        ({"backbone": "vgg99"}, "unknown backbone 'vgg99'; known: .*vgg16"),
        ({"feature_dtype": "half"}, "feature_dtype must be one of"),
    ],
)
def test_bad_configs_are_clear_errors(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_run(dataclasses.replace(SMALL, **change), small_sets(), run_dir=tmp_path, progress=False)


def test_a_class_missing_from_train_is_a_clear_error(tmp_path):
    sets = small_sets(classes=("batman", "not_a_hero", "superman"))
    train = sets["train"]
    keep = train.labels != 2
    sets["train"] = ImageSet(train.images[keep], train.labels[keep], tuple(numpy.array(train.paths)[keep]),
                             tuple(numpy.array(train.sha256)[keep]), train.class_names)
    with pytest.raises(ValueError, match="classes without a training image: superman"):
        train_run(SMALL, sets, run_dir=tmp_path, progress=False)


def test_determinism_option_switches_tensorflow_op_determinism(monkeypatch):
    import tensorflow

    calls = []
    monkeypatch.setattr(tensorflow.config.experimental, "enable_op_determinism", lambda: calls.append(1))
    fresh_session(dataclasses.replace(SMALL, deterministic=False))
    fresh_session(dataclasses.replace(SMALL, deterministic=True))
    assert calls == [1]
