"""Calibration: proper scores against sklearn, their paired differences, and the debiased ECE's bias and interval."""

import numpy
import pandas
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from heroes.evaluation import calibration, stats
from heroes.evaluation.predictions import load_predictions

CLASSES = ("batman", "superman", "not_a_hero")


def made(labels, probabilities, prefix="img"):
    """Predictions of ``probabilities`` (rows) for integer ``labels``, on images prefix/0000.png, ..."""
    probabilities = numpy.asarray(probabilities, float)
    return load_predictions(pandas.DataFrame({
        "path": [f"{prefix}/{k:04d}.png" for k in range(len(labels))], "sha256": "",
        "label": [CLASSES[label] for label in labels], "predicted": [CLASSES[k] for k in probabilities.argmax(1)],
        **{f"prob_{name}": probabilities[:, k] for k, name in enumerate(CLASSES)}}))


def random_model(n, seed, sharpness=2.0):
    rng = numpy.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * sharpness
    probabilities = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    labels = numpy.array([rng.choice(3, p=row) for row in probabilities])  # calibrated by construction
    return labels, probabilities


def test_proper_scores_match_sklearn():
    labels, probabilities = random_model(200, 0)
    predictions = made(labels, probabilities)
    scores = calibration.image_scores(predictions)
    assert scores["brier"].mean() == pytest.approx(
        brier_score_loss(labels, probabilities, labels=[0, 1, 2], scale_by_half=False))
    assert scores["log_loss"].mean() == pytest.approx(log_loss(labels, probabilities, labels=[0, 1, 2]))
    # A sure and right image scores 0 on both; a sure and wrong one 2 (Brier) and -log eps, not infinity.
    sure = made([0, 0], [[1, 0, 0], [0, 1, 0]])
    assert list(calibration.image_scores(sure)["brier"]) == [0, 2]
    assert calibration.image_scores(sure)["log_loss"][1] == pytest.approx(-numpy.log(numpy.finfo(float).eps))


def test_paired_score_difference_is_b_minus_a_and_resamples_images_jointly():
    labels, probabilities = random_model(150, 1)
    a = made(labels, probabilities)
    nudged = 0.98 * probabilities + 0.02 / 3  # B: nearly A, a little less sure
    b = made(labels, nudged)
    for score in calibration.SCORES:
        difference = calibration.proper_score_difference(a, b, score, n_resamples=999)
        expected = calibration.image_scores(b)[score].mean() - calibration.image_scores(a)[score].mean()
        assert difference["estimate"] == pytest.approx(expected) and difference["direction"] == "B − A"
        alone = calibration.proper_score_ci(a, score, n_resamples=999)
        # Paired: the shared image difficulty cancels, so the difference is far narrower than either model's score.
        assert difference["high"] - difference["low"] < 0.2 * (alone["high"] - alone["low"])
    same = calibration.proper_score_difference(a, a, "brier", n_resamples=99)
    assert (same["estimate"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="score must be"):
        calibration.proper_score_ci(a, "ece")


def test_compare_calibration_names_both_models_and_both_scores():
    labels, probabilities = random_model(60, 2)
    result = calibration.compare_calibration(made(labels, probabilities), made(labels, probabilities ** 2 /
                                             (probabilities ** 2).sum(1, keepdims=True)), ("VGG16", "ResNet50"),
                                             n_resamples=199)
    assert result["direction"] == "ResNet50 − VGG16" and set(result["differences"]) == {"brier", "log_loss"}
    assert set(result["models"]["VGG16"]) == {"brier", "log_loss"}


def test_debiased_ece_removes_part_of_the_bias_of_a_calibrated_model():
    # Labels drawn from the model's own probabilities: the true ECE is 0, and the plug-in ECE is all bias.
    plug_in, debiased = [], []
    for seed in range(20):
        labels, probabilities = random_model(150, seed)
        predictions = made(labels, probabilities)
        plug_in.append(calibration.expected_calibration_error(predictions.confidence, predictions.correct))
        debiased.append(calibration.debiased_ece(predictions.confidence, predictions.correct))
    # Near a true gap of 0 the folded-normal correction, taken at the observed gap, removes only part of the bias
    # (no estimator of |gap| is unbiased at 0); here over a third, and on every draw something.
    assert numpy.mean(plug_in) > 0.04
    assert numpy.mean(debiased) < 0.65 * numpy.mean(plug_in)
    assert all(d < p for d, p in zip(debiased, plug_in))


def test_debiased_ece_keeps_a_large_miscalibration():
    # Confidence 0.9, accuracy 0.6 on 2000 images in one bin: the gap 0.3 is far above the noise (sd 0.011).
    confidence, correct = numpy.full(2000, 0.9), numpy.arange(2000) % 5 < 3
    assert calibration.expected_calibration_error(confidence, correct) == pytest.approx(0.3)
    assert calibration.debiased_ece(confidence, correct) == pytest.approx(0.3, abs=1e-6)


def test_majority_class_ece_interval_is_sane():
    # Every image gets the class shares as probabilities (issue 26: its BCa "CI" was [1.8e-17, 1.8e-17]).
    labels = numpy.arange(150) % 6 % 3  # shares 1/3 each; "batman" is predicted, right on a third
    predictions = made(labels, numpy.tile([0.34, 0.33, 0.33], (150, 1)))
    result = stats.ece_ci(predictions, n_resamples=999)
    assert 0 <= result["low"] <= result["estimate"] <= result["high"] < 0.2
    assert result["high"] > result["low"]  # the accuracy of a constant guess still varies between resamples
    assert result["plug_in"] == pytest.approx(abs(1 / 3 - 0.34))


def test_a_model_without_label_noise_gets_a_point_interval_on_its_estimate():
    predictions = made([0] * 20, numpy.tile([0.7, 0.2, 0.1], (20, 1)))  # always right at confidence 0.7
    result = calibration.ece_ci(predictions, n_resamples=199)
    assert result["low"] == result["estimate"] == result["high"] == pytest.approx(0.3)
