"""Evaluation figures: each writes a complete PNG of the expected size and returns its Figure."""

import numpy
import pandas
import pytest
from PIL import Image

from heroes.evaluation import predictions
from heroes.reporting.plots import scores

CLASSES = ("batman", "captain_marvel", "superman", "wonder_woman", "deadpool", "not_a_hero")


def fake_predictions(accuracy, seed, n=60):
    """Softmax-like predictions for the six study classes, right about ``accuracy`` of the time."""
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(n) % len(CLASSES)
    logits = rng.normal(0, 1, (n, len(CLASSES)))
    right = rng.random(n) < accuracy
    logits[numpy.arange(n), numpy.where(right, labels, (labels + 1) % len(CLASSES))] += 3
    probabilities = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    frame = pandas.DataFrame({"path": [f"test/{i}.png" for i in range(n)], "sha256": [f"{i:064x}" for i in range(n)],
                              "label": [CLASSES[k] for k in labels],
                              "predicted": [CLASSES[k] for k in probabilities.argmax(axis=1)]})
    for k, name in enumerate(CLASSES):
        frame[f"prob_{name}"] = probabilities[:, k]
    return predictions.load_predictions(frame)


def history(final_val, seed):
    rng = numpy.random.default_rng(seed)
    epochs = numpy.arange(1, 11)
    return pandas.DataFrame({"epoch": epochs, "loss": 1.8 / epochs, "accuracy": 1 - 0.8 / epochs,
                             "val_loss": 1.8 / numpy.sqrt(epochs) + rng.normal(0, 0.05, 10),
                             "val_accuracy": final_val - 0.5 / epochs + rng.normal(0, 0.02, 10)})


@pytest.fixture(scope="module")
def models():
    return {"VGG16": fake_predictions(0.85, 0), "ResNet50": fake_predictions(0.7, 1)}


def assert_png(saved, path):
    assert saved.path == path and path.stat().st_size > 5000
    width, height = saved.figure.get_size_inches() * scores.DPI
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (round(width), round(height))
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left nothing behind


def test_learning_curves(tmp_path):
    path = tmp_path / "curves.png"
    assert_png(scores.learning_curves({"VGG16": history(0.85, 0), "ResNet50": history(0.7, 1)}, path),
               path)


def test_confusion_matrices_titles_name_models(tmp_path, models):
    path = tmp_path / "nested" / "confusion.png"
    saved = scores.confusion_matrices(models, path)
    assert_png(saved, path)
    titles = [axis.get_title() for axis in saved.figure.axes]
    assert any(title.startswith("VGG16") for title in titles) and any(t.startswith("ResNet50") for t in titles)
    assert "Wonder\nWoman" in [label.get_text() for label in saved.figure.axes[0].get_yticklabels()]


def test_reliability_diagrams(tmp_path, models):
    path = tmp_path / "reliability.png"
    assert_png(scores.reliability_diagrams(models, path), path)


def test_per_class_scores(tmp_path, models):
    path = tmp_path / "per_class.png"
    assert_png(scores.per_class_scores(models, path), path)


def test_no_models_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="at least one model"):
        scores.confusion_matrices({}, tmp_path / "x.png")


def test_measured_gap_figure_rings_each_best_epoch(tmp_path):
    from heroes.evaluation import overfitting

    def measured(final_val, seed):
        frame = history(final_val, seed)
        return frame.assign(train_eval_loss=frame["loss"] * 0.9, train_eval_accuracy=frame["accuracy"] + 0.02)

    gaps = overfitting.measured_gap_frame({("VGG16", 0): measured(0.85, 0), ("ResNet50", 0): measured(0.7, 1)})
    path = tmp_path / "measured.png"
    saved = scores.measured_gap_figure(gaps, path)
    assert_png(saved, path)
    titles = [axis.get_title() for axis in saved.figure.axes]
    assert "Train − validation accuracy (measured)" in titles and "Validation − train loss (measured)" in titles
