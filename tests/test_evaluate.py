"""Evaluation: loading and validation, hand-computable metrics, CIs, McNemar, verdicts, seeds, tables."""

import hashlib
import json
import math

import numpy
import pandas
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from heroes import io
from heroes.errors import UserError
from heroes.evaluation import stats
from heroes.evaluation.predictions import align, load_predictions
from heroes.reporting import tables, verdicts

CLASSES = ("Batman", "Wonder Woman", "Not a hero")


def table(labels, predicted, classes=CLASSES, confidence=0.8, prefix="img"):
    """A predictions table: the predicted class gets ``confidence``, the rest is shared equally."""
    rows = []
    for index, (label, guess) in enumerate(zip(labels, predicted)):
        path = f"{prefix}/{index:04d}.png"
        row = {"path": path, "sha256": hashlib.sha256(path.encode()).hexdigest(),
               "label": classes[label], "predicted": classes[guess]}
        rest = (1 - confidence) / (len(classes) - 1)
        row.update({f"prob_{name}": confidence if k == guess else rest for k, name in enumerate(classes)})
        rows.append(row)
    return pandas.DataFrame(rows)


def predictions(labels, predicted, **options):
    return load_predictions(table(labels, predicted, **options))


def with_errors(n, wrong, seed=0, classes=CLASSES):
    """``n`` labels cycling over the classes, predicted right except at indices ``wrong``."""
    labels = numpy.arange(n) % len(classes)
    predicted = labels.copy()
    predicted[list(wrong)] = (labels[list(wrong)] + 1) % len(classes)
    return labels, predicted


# ---------------------------------------------------------------- loading


def test_load_from_run_directory_keeps_order_and_spaced_class_names(tmp_path):
    frame = table([1, 0, 2], [1, 2, 2])
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    loaded = load_predictions(tmp_path)
    assert loaded.class_names == CLASSES
    assert list(loaded.labels) == [1, 0, 2] and list(loaded.predicted) == [1, 2, 2]
    assert list(loaded.paths) == list(frame["path"])


def test_folder_style_labels_match_display_style_columns():
    frame = table([0, 1], [0, 1])
    frame["label"] = ["batman", "wonder_woman"]
    assert list(load_predictions(frame).labels) == [0, 1]


def test_missing_predictions_file_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="has no predictions.csv: re-run training"):
        load_predictions(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_predictions(tmp_path / "nowhere.csv")


@pytest.mark.parametrize("drop", ["sha256", "label", "predicted"])
def test_missing_column_is_named(drop):
    with pytest.raises(UserError, match=drop):
        load_predictions(table([0], [0]).drop(columns=[drop]))


def test_missing_probability_columns_and_bad_rows_are_refused():
    frame = table([0, 1], [0, 1])
    with pytest.raises(UserError, match="prob_"):
        load_predictions(frame.drop(columns=[c for c in frame if c.startswith("prob_")]))
    logits = frame.copy()
    logits["prob_Batman"] = 3.0
    with pytest.raises(UserError, match="do not sum to 1"):
        load_predictions(logits)
    unknown = frame.copy()
    unknown.loc[0, "label"] = "Joker"
    with pytest.raises(UserError, match="Joker"):
        load_predictions(unknown)
    inconsistent = frame.copy()
    inconsistent.loc[0, "predicted"] = "Not a hero"
    with pytest.raises(UserError, match="disagrees"):
        load_predictions(inconsistent)


def test_user_error_is_a_value_error():
    assert issubclass(UserError, ValueError)


# ---------------------------------------------------------------- calibration and point metrics


def test_ece_is_zero_when_each_bin_is_calibrated():
    # bin [0.7, 0.8): 4 images at 0.75, 3 right; bin [0.9, 1.0]: 10 images at 0.9, 9 right.
    confidence = [0.75] * 4 + [0.9] * 10
    correct = [1, 1, 1, 0] + [1] * 9 + [0]
    assert stats.expected_calibration_error(confidence, correct) == pytest.approx(0.0)


def test_ece_known_value():
    # Half the images claim 0.9 and are half right (gap 0.4); half claim 0.55 and are all right (gap 0.45).
    confidence = [0.9] * 4 + [0.55] * 4
    correct = [1, 1, 0, 0] + [1, 1, 1, 1]
    assert stats.expected_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.4 + 0.5 * 0.45)
    bins = stats.reliability_table(confidence, correct)
    assert list(bins["count"]) == [0, 0, 0, 0, 0, 4, 0, 0, 0, 4]
    assert bins.loc[9, "accuracy"] == pytest.approx(0.5) and bins.loc[5, "confidence"] == pytest.approx(0.55)


def test_classification_metrics_by_hand():
    metrics = stats.classification_metrics(predictions([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics["per_class"]["Wonder Woman"] == {"precision": pytest.approx(2 / 3), "recall": 1.0,
                                                    "f1": pytest.approx(0.8), "support": 2}
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics["ece"] == pytest.approx(abs(0.8 - 4 / 6))
    assert metrics["log_loss"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)
    assert 0 <= metrics["roc_auc_ovr_macro"] <= 1 and metrics["notes"] == []
    json.dumps(io.jsonable(metrics), allow_nan=False)


def test_class_absent_from_test_labels_gets_nan_auc_and_a_note():
    metrics = stats.classification_metrics(predictions([0, 0, 1, 1], [0, 1, 1, 1]))
    assert math.isnan(metrics["roc_auc_per_class"]["Not a hero"])
    assert not math.isnan(metrics["roc_auc_ovr_macro"])
    assert "Not a hero" in metrics["notes"][0]
    assert io.jsonable(metrics)["roc_auc_per_class"]["Not a hero"] is None


# ---------------------------------------------------------------- confidence intervals


def test_clopper_pearson_for_the_study_fifty_out_of_fifty():
    low, high = stats.clopper_pearson(50, 50)
    assert low == pytest.approx(0.9289, abs=1e-4) and high == 1.0


def test_bootstrap_contains_estimate_and_narrows_with_more_data():
    small = stats.accuracy_ci(predictions(*with_errors(40, range(0, 40, 5))), n_resamples=999)
    large = stats.accuracy_ci(predictions(*with_errors(400, range(0, 400, 5))), n_resamples=999)
    for interval in (small, large):
        assert interval["estimate"] == pytest.approx(0.8)
        assert interval["low"] <= interval["estimate"] <= interval["high"]
        assert interval["method"] == "BCa"
    assert large["high"] - large["low"] < small["high"] - small["low"]


def test_bootstrap_is_reproducible_with_a_seed():
    data = predictions(*with_errors(60, [1, 7, 20, 33]))
    assert stats.accuracy_ci(data, n_resamples=999, seed=3) == stats.accuracy_ci(data, n_resamples=999, seed=3)


def test_all_correct_bootstrap_falls_back_to_percentile_and_degenerates():
    interval = stats.accuracy_ci(predictions(*with_errors(50, [])), n_resamples=999)
    assert (interval["low"], interval["high"], interval["method"]) == (1.0, 1.0, "percentile")
    assert "BCa undefined" in interval["note"]


def test_vectorised_macro_f1_matches_sklearn():
    rng = numpy.random.default_rng(0)
    labels, guesses = rng.integers(0, 4, (2, 8, 37))
    for y, p in zip(labels, guesses):
        classes = numpy.unique(y)
        expected = f1_score(y, p, labels=classes, average="macro", zero_division=0)
        assert stats._macro_f1_vectorised(y, p, classes) == pytest.approx(expected)


def test_macro_f1_ci_contains_estimate():
    data = predictions(*with_errors(90, range(0, 90, 7)))
    interval = stats.macro_f1_ci(data, n_resamples=999)
    assert interval["estimate"] == pytest.approx(stats.macro_f1(data))
    assert interval["low"] <= interval["estimate"] <= interval["high"] < 1


# ---------------------------------------------------------------- paired comparison


def discordant(b, c, agree=20):
    """Two models on the same images: A alone right on ``b``, B alone right on ``c``, both right on ``agree``."""
    n = b + c + agree
    labels = numpy.arange(n) % 3
    wrong = (labels + 1) % 3
    a = numpy.where(numpy.arange(n) < b + c, numpy.where(numpy.arange(n) < b, labels, wrong), labels)
    other = numpy.where(numpy.arange(n) < b + c, numpy.where(numpy.arange(n) < b, wrong, labels), labels)
    return predictions(labels, a), predictions(labels, other)


def test_mcnemar_exact_by_hand():
    result = stats.mcnemar(*discordant(1, 9))
    assert (result["b"], result["c"], result["method"]) == (1, 9, "exact")
    assert result["p_value"] == pytest.approx(22 / 1024)  # 2 * P(X <= 1), X ~ Binomial(10, 1/2)


def test_mcnemar_identical_predictions():
    model = predictions(*with_errors(30, [2, 5]))
    result = stats.mcnemar(model, model)
    assert (result["b"], result["c"], result["p_value"]) == (0, 0, 1.0)


def test_mcnemar_stays_exact_with_many_discordant_pairs():
    # Issue 16: no switch to chi-square at 25 discordant pairs; the exact binomial test at every count.
    result = stats.mcnemar(*discordant(10, 20))
    assert result["method"] == "exact"
    assert result["p_value"] == pytest.approx(binomtest(10, 30, 0.5).pvalue)


def test_different_test_sets_are_refused():
    first = predictions(*with_errors(20, [1]))
    other = predictions(*with_errors(20, [1]), prefix="elsewhere")
    with pytest.raises(UserError, match="different test sets"):
        stats.mcnemar(first, other)
    shorter = predictions(*with_errors(19, [1]))
    with pytest.raises(UserError, match="different test sets"):
        stats.compare_models(first, shorter, ("A", "B"))


def test_relabelled_test_set_is_refused():
    frame = table(*with_errors(12, [1]))
    relabelled = frame.copy()
    relabelled.loc[3, "label"] = "Batman" if relabelled.loc[3, "label"] != "Batman" else "Not a hero"
    with pytest.raises(UserError, match="different labels"):
        stats.mcnemar(load_predictions(frame), load_predictions(relabelled))


def test_same_set_in_another_order_and_column_order_is_aligned():
    frame = table(*with_errors(30, [1, 4, 9]))
    shuffled = frame.sample(frac=1, random_state=1)
    shuffled = shuffled[list(shuffled.columns[:4]) + list(shuffled.columns[4:][::-1])]
    a, b = align(load_predictions(frame), load_predictions(shuffled))
    assert list(b.paths) == list(a.paths) and b.class_names == a.class_names
    numpy.testing.assert_allclose(b.probabilities, a.probabilities)
    assert stats.mcnemar(a, b)["p_value"] == 1.0


def test_compare_models_and_verdict_no_difference():
    a, b = discordant(3, 1, agree=46)
    comparison = stats.compare_models(a, b, ("VGG16", "ResNet50"), n_resamples=999)
    assert not comparison["supports_difference"]
    sentence = verdicts.verdict_sentence(comparison)
    assert sentence.startswith("On 50 test images VGG16 scored")
    assert "ResNet50 − VGG16 = −4.0 points" in sentence  # one sign convention: B − A (issue 16)
    assert "exact McNemar p = 0.62, mid-p = 0.38" in sentence and sentence.endswith("is not evidence of a real difference.")


def test_verdict_names_the_better_model_when_supported():
    a, b = discordant(1, 16, agree=60)
    comparison = stats.compare_models(a, b, ("VGG16", "ResNet50"), n_resamples=999)
    assert comparison["supports_difference"]
    assert comparison["accuracy_difference"]["low"] > 0  # B − A: positive favours ResNet50
    assert "ResNet50 − VGG16 = +19.5 points" in verdicts.verdict_sentence(comparison)
    assert "is evidence that ResNet50 is more accurate than VGG16" in verdicts.verdict_sentence(comparison)


def test_verdict_says_when_the_two_tests_disagree():
    comparison = stats.compare_models(*discordant(0, 5, agree=45), ("VGG16", "ResNet50"), n_resamples=999)
    assert comparison["accuracy_difference"]["low"] > 0 and comparison["mcnemar"]["p_value"] == 0.0625
    assert not comparison["supports_difference"]
    assert verdicts.verdict_sentence(comparison).endswith("is not clear evidence of a real difference: the bootstrap interval "
                                          "and McNemar's test disagree.")


def test_bootstrap_of_one_image_is_refused():
    with pytest.raises(UserError, match="at least 2"):
        stats.accuracy_ci(predictions([0], [0]), n_resamples=99)


def test_all_correct_study_case():
    everything = predictions(*with_errors(50, []))
    comparison = stats.compare_models(everything, everything, ("VGG16", "ResNet18"), n_resamples=999)
    assert comparison["models"]["VGG16"]["accuracy_ci_exact"][0] == pytest.approx(0.9289, abs=1e-4)
    assert "VGG16 scored 100.0% [92.9, 100.0] and ResNet18 100.0% [92.9, 100.0]" in verdicts.verdict_sentence(comparison)
    assert verdicts.verdict_sentence(comparison).endswith("so these data cannot tell them apart.")


# ---------------------------------------------------------------- seeds, overfitting, table


def test_seed_spread():
    spread = stats.seed_spread({0: 0.8, 1: 0.84, 2: 0.82})
    assert spread["mean"] == pytest.approx(0.82) and spread["std"] == pytest.approx(0.02)
    single = stats.seed_spread([0.8])
    assert single["mean"] == 0.8 and math.isnan(single["std"])
    assert "at least 2 seeds" in single["note"] and "single-run confidence intervals" in single["note"]
    with pytest.raises(UserError):
        stats.seed_spread([])


def test_comparison_table_formats_and_tolerates_missing_fields():
    runs = {"VGG16": {"test_n": 150, "test_accuracy": 0.84, "test_accuracy_ci": [0.771, 0.895], "macro_f1": 0.8391,
                      "ece": 0.0412, "model": {"total_parameters": 134285126, "trainable_parameters": 16801798},
                      "train_time_s": 301.26, "latency_ms_per_image": 12.346, "model_bytes": 537_000_000,
                      "test_accuracy_std": 0.012, "n_seeds": 3},
            "ResNet50": {"test_n": 150, "test_accuracy": 0.8133, "total_parameters": 23600000}}
    frame = tables.comparison_table(runs)
    assert list(frame["model"]) == ["VGG16", "ResNet50"]
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["test accuracy"] == "84.0% ± 1.2 (3 seeds)" and first["95% CI"] == "[77.1, 89.5]"
    assert first["parameters"] == 134285126 and first["size on disk (MB)"] == 537.0
    assert first["training time (s)"] == 301.3 and first["latency (ms/image)"] == 12.35
    assert second["test accuracy"] == "81.3%" and second["95% CI"] == "" and second["parameters"] == 23600000
    assert pandas.isna(second["ECE"]) and pandas.isna(second["trainable"])


def test_headline_metrics_are_strict_json():
    headline = stats.headline_metrics(predictions(*with_errors(30, [0, 1])), n_resamples=999)
    assert headline["test_accuracy"] == pytest.approx(28 / 30) and len(headline["test_accuracy_ci"]) == 2
    assert tables.comparison_table({"m": headline}).iloc[0]["95% CI"] == "[77.9, 99.2]"
    json.dumps(io.jsonable(headline), allow_nan=False)


def test_a_bound_that_rounds_to_zero_is_not_typeset_negative():
    from heroes.reporting.verdicts import signed

    assert signed(-0.00004) == "0.0" and signed(0.0) == "0.0"
    assert signed(-0.0123) == "−1.2" and signed(0.0123) == "1.2"
    assert signed(-0.0734, scale=1, digits=3) == "−0.073" and signed(-0.0004, scale=1, digits=3) == "0.000"
