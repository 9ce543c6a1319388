"""Baselines on the networks' split: frames every metric reads, majority class by hand, thumbnails, linear probe."""

import numpy
import pandas
import pytest
from test_features import coloured_set

from heroes.data.arrays import ImageSet
from heroes.evaluation import baselines, stats
from heroes.evaluation.predictions import load_predictions
from heroes.reporting import tables

CLASSES = ("batman", "not_a_hero", "superman")


def sets(size=16):
    return {"train": coloured_set(30, size, 1, CLASSES), "val": coloured_set(12, size, 2, CLASSES),
            "test": coloured_set(12, size, 3, CLASSES)}


def subset(image_set, count):
    return ImageSet(image_set.images[:count], image_set.labels[:count], image_set.paths[:count],
                    image_set.sha256[:count], image_set.class_names)


def test_majority_class_by_hand():
    train = subset(coloured_set(7, 8, 1), 7)  # labels 0, 1, 0, 1, 0, 1, 0: batman 4 of 7
    test = coloured_set(6, 8, 2)
    predictions = load_predictions(baselines.majority_class(train, test))
    assert list(predictions.predicted) == [0] * 6 and predictions.correct.mean() == pytest.approx(0.5)
    numpy.testing.assert_allclose(predictions.probabilities[0], [4 / 7, 3 / 7])


def test_thumbnails_are_box_means_in_unit_range():
    flat = ImageSet(numpy.full((2, 16, 16, 3), [255, 51, 0], "uint8"), numpy.array([0, 1]), ("a", "b"), ("1", "2"),
                    ("batman", "not_a_hero"))
    features = baselines.thumbnails(flat, side=8)
    assert features.shape == (2, 8 * 8 * 3)
    numpy.testing.assert_allclose(features[0].reshape(8, 8, 3)[3, 5], [1.0, 0.2, 0.0], atol=1e-6)


def test_thumbnail_logistic_is_seeded_and_every_metric_reads_it():
    data = sets()
    frame = baselines.thumbnail_logistic(data, seed=0)
    assert frame.attrs["C"] in baselines.C_GRID
    pandas.testing.assert_frame_equal(frame, baselines.thumbnail_logistic(data, seed=0))
    predictions = load_predictions(frame)
    assert list(predictions.paths) == list(data["test"].paths)
    assert predictions.correct.mean() == 1.0  # colour alone separates these classes
    summary = tables.baseline_summary(predictions, n_resamples=199)
    assert summary["test_accuracy"] == 1.0 and summary["kind"] == "baseline"
    assert stats.mcnemar(predictions, load_predictions(baselines.majority_class(data["train"], data["test"])))


def test_baselines_join_the_models_table_with_their_cis():
    data = sets()
    found = baselines.baselines(data, probe=False)
    assert list(found) == [baselines.NAMES["majority"], baselines.NAMES["thumbnails"]]
    rows = {name: tables.baseline_summary(load_predictions(frame), n_resamples=199) for name, frame in found.items()}
    frame = tables.table({}, 0, baselines=rows)
    assert list(frame["model"]) == list(found)
    assert frame.loc[0, "95% CI"] == "[9.9, 65.1]"  # Clopper-Pearson, 4 of 12: scipy binomtest(4, 12) [0.0992, 0.6511]
    assert set(frame["mean ± sd over seeds"]) == {"baseline (one fit)"}
    assert frame.loc[0, "ECE 95% CI"].startswith("[") and frame.loc[1, "macro-F1 95% CI"].startswith("[")


@pytest.mark.slow
def test_linear_probe_on_imagenet_features():
    data = sets(32)
    features = baselines.pretrained_features(data["test"].images)
    assert features.shape == (12, 1280) and features.dtype == numpy.float32
    predictions = load_predictions(baselines.linear_probe(data, seed=0))
    assert list(predictions.paths) == list(data["test"].paths) and predictions.correct.mean() > 0.5
