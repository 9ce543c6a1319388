"""Metrics, confidence intervals and paired tests over stored predictions; pure functions, no TensorFlow."""

import math
import warnings

import numpy
import pandas
from scipy import stats
from sklearn import metrics as skmetrics

from heroes.errors import UserError
from heroes.evaluation.calibration import ece_ci, expected_calibration_error, proper_score_ci, reliability_table
from heroes.evaluation.predictions import align


def per_seed_comparisons(predictions: dict, pair, seeds, labels=None, n_resamples=9999) -> pandas.DataFrame:
    """The paired comparison repeated for each seed: B - A accuracy with its bootstrap CI and exact McNemar p.

    ``predictions``: {(backbone, seed): Predictions}; ``pair``: the two backbones (A, B); ``labels``: their display
    names. ``difference`` follows ``SIGN_CONVENTION`` (B - A, positive favours B), as every table and sentence does.
    """
    first, second = labels or pair
    rows = []
    for seed in seeds:
        a, b = predictions[pair[0], seed], predictions[pair[1], seed]
        difference = difference_ci(a, b, "accuracy", n_resamples=n_resamples)
        test = mcnemar(a, b)
        rows.append({"seed": seed, f"{first} accuracy": a.correct.mean(), f"{second} accuracy": b.correct.mean(),
                     "difference": difference["estimate"], "CI low": difference["low"], "CI high": difference["high"],
                     f"only {first} right": test["b"], f"only {second} right": test["c"], "McNemar p": test["p_value"],
                     "mid-p": test["mid_p_value"]})
    return pandas.DataFrame(rows)


# One orientation for every paired difference in tables and sentences (issue 16: summary.md used to mix both).
SIGN_CONVENTION = "difference = B − A (the second model minus the first): positive favours B"


def _roc_auc_per_class(predictions):
    """One-vs-rest ROC-AUC per class; NaN where the class has no positives (or no negatives) in the test set."""
    scores = []
    for k in range(len(predictions.class_names)):
        positives = predictions.labels == k
        if positives.all() or not positives.any():
            scores.append(math.nan)
        else:
            scores.append(float(skmetrics.roc_auc_score(positives, predictions.probabilities[:, k])))
    return scores


def _present_classes(predictions):
    """Indices of classes that occur in the test labels: macro averages run over these."""
    return numpy.unique(predictions.labels)


def macro_f1(predictions) -> float:
    """Macro-F1 over the classes present in the test labels (sklearn, zero_division=0)."""
    return float(skmetrics.f1_score(predictions.labels, predictions.predicted,
                                    labels=_present_classes(predictions), average="macro", zero_division=0))


def classification_metrics(predictions, n_bins=10) -> dict:
    """Accuracy, per-class and macro scores, confusion matrix, ROC-AUC, log loss and calibration, JSON-ready."""
    names, labels, predicted = list(predictions.class_names), predictions.labels, predictions.predicted
    every = list(range(len(names)))
    precision, recall, f1, support = skmetrics.precision_recall_fscore_support(
        labels, predicted, labels=every, zero_division=0)
    auc = _roc_auc_per_class(predictions)
    notes = [f"class {names[k]!r} has no test images: its ROC-AUC is undefined (NaN) and it is left out of "
             "the macro averages" for k in every if support[k] == 0]
    table = reliability_table(predictions.confidence, predictions.correct, n_bins)
    return {
        "n": len(predictions),
        "class_names": names,
        "accuracy": float(skmetrics.accuracy_score(labels, predicted)),
        "macro_f1": macro_f1(predictions),
        "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]),
                             "f1": float(f1[k]), "support": int(support[k])} for k, name in enumerate(names)},
        "confusion_matrix": skmetrics.confusion_matrix(labels, predicted, labels=every).tolist(),
        "roc_auc_per_class": dict(zip(names, auc)),
        "roc_auc_ovr_macro": float(numpy.nanmean(auc)) if not numpy.isnan(auc).all() else math.nan,
        "log_loss": float(skmetrics.log_loss(labels, predictions.probabilities, labels=every)),
        "ece": expected_calibration_error(predictions.confidence, predictions.correct, n_bins),
        "n_bins": n_bins,
        "reliability": table.to_dict(orient="list"),
        "notes": notes,
    }


def per_class_frame(metrics) -> pandas.DataFrame:
    """The ``per_class`` part of ``classification_metrics`` as a table, one row per class."""
    return pandas.DataFrame.from_dict(metrics["per_class"], orient="index").rename_axis("class").reset_index()


def clopper_pearson(successes, n, confidence_level=0.95) -> tuple:
    """Exact binomial CI of a proportion; unlike the bootstrap it stays honest at 0% or 100%."""
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level, method="exact")
    return float(interval.low), float(interval.high)


def _macro_f1_vectorised(y_true, y_pred, classes, axis=-1):
    """Macro-F1 along ``axis`` for many bootstrap resamples at once; equals sklearn's with zero_division=0."""
    scores = []
    for k in classes:
        truth, guess = y_true == k, y_pred == k
        tp = numpy.sum(truth & guess, axis=axis)
        denominator = 2 * tp + numpy.sum(truth ^ guess, axis=axis)  # 2TP + FP + FN
        scores.append(numpy.divide(2 * tp, denominator, out=numpy.zeros(numpy.shape(tp)), where=denominator > 0))
    return numpy.mean(scores, axis=0)


def bootstrap_ci(statistic, data, *, n_resamples=9999, confidence_level=0.95, seed=0, method="BCa",
                 paired=True) -> dict:
    """Bootstrap CI with ``scipy.stats.bootstrap``: rows of every array in ``data`` are resampled together
    (``paired=False``: each array resampled on its own, e.g. one per seed when seeds score different images).

    BCa by default (better coverage than percentile for skewed statistics such as accuracy near 100%). BCa is
    undefined when every resample gives the same value (e.g. all predictions correct); then the percentile
    interval is used, which collapses to a point, and ``note`` says so.
    """
    data = tuple(numpy.asarray(array) for array in data)
    if min(len(array) for array in data) < 2:
        raise UserError(f"a bootstrap needs at least 2 test images, got {min(len(array) for array in data)}")
    estimate = float(statistic(*data, axis=-1))

    def run(how):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degeneracy is detected from the NaN result below, then explained
            result = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence_level,
                                     method=how, paired=paired, vectorized=True, rng=numpy.random.default_rng(seed))
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high, note = *run(method), ""
    if method == "BCa" and not (numpy.isfinite(low) and numpy.isfinite(high)):
        low, high, method = *run("percentile"), "percentile"
        note = ("BCa undefined because every resample gives the same value; percentile interval used, and it "
                "collapses to a point: see the exact binomial interval for accuracy")
    elif method == "BCa" and not low <= estimate <= high:  # its bias correction overshot (issue 26)
        low, high, method = *run("percentile"), "percentile"
        note = "BCa excluded its own estimate; percentile interval used"
    return {"estimate": estimate, "low": low, "high": high, "method": method, "confidence_level": confidence_level,
            "n_resamples": n_resamples, "seed": seed, "note": note}


def _mean(values, axis=-1):
    return numpy.mean(values, axis=axis)


def accuracy_ci(predictions, **options) -> dict:
    """Bootstrap CI of accuracy (see ``bootstrap_ci`` for options); add ``clopper_pearson`` for the exact one."""
    return bootstrap_ci(_mean, (predictions.correct.astype(float),), **options)


def macro_f1_ci(predictions, **options) -> dict:
    """Bootstrap CI of macro-F1, resampling images (label and prediction together)."""
    classes = _present_classes(predictions)
    return bootstrap_ci(lambda y, p, axis=-1: _macro_f1_vectorised(y, p, classes, axis),
                        (predictions.labels, predictions.predicted), **options)


def difference_ci(predictions_a, predictions_b, metric="accuracy", **options) -> dict:
    """Paired bootstrap CI of metric(B) - metric(A) on the same test images, resampled jointly (``SIGN_CONVENTION``)."""
    a, b = align(predictions_a, predictions_b)
    if metric == "accuracy":
        result = bootstrap_ci(lambda x, y, axis=-1: numpy.mean(y, axis=axis) - numpy.mean(x, axis=axis),
                              (a.correct.astype(float), b.correct.astype(float)), **options)
    elif metric == "macro_f1":
        classes = _present_classes(a)
        result = bootstrap_ci(lambda y, p, q, axis=-1: _macro_f1_vectorised(y, q, classes, axis)
                              - _macro_f1_vectorised(y, p, classes, axis), (a.labels, a.predicted, b.predicted),
                              **options)
    else:
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    return {**result, "direction": "B − A"}


def mcnemar_test(only_a: int, only_b: int) -> dict:
    """The exact McNemar test on discordant counts, the project's one paired test, named before any result.

    ``only_a`` (b): pairs only A gets right; ``only_b`` (c): pairs only B gets right. Two-sided exact binomial
    p-value (``scipy.stats.binomtest``, b ~ Binomial(b + c, 1/2)) for every count: no switch to chi-square, whose
    continuity correction moved p at the old 25-pair switch and gave p = 0.845 for b = c = 13 (exact: 1).
    The mid-p (Fagerland, Lydersen & Laake 2013: 2 P(X <= min) - P(X = min)) stands beside it, less conservative.
    """
    only_a, only_b = int(only_a), int(only_b)
    discordant = only_a + only_b
    if discordant == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "mid_p_value": 1.0, "method": "exact",
                "note": "no discordant pairs: the two models err on exactly the same images"}
    smaller = min(only_a, only_b)
    mid_p = 2 * stats.binom.cdf(smaller, discordant, 0.5) - stats.binom.pmf(smaller, discordant, 0.5)
    return {"b": only_a, "c": only_b, "statistic": float(smaller),
            "p_value": float(stats.binomtest(only_a, discordant, 0.5).pvalue), "mid_p_value": float(min(1.0, mid_p)),
            "method": "exact", "note": ""}


def discordant_counts(predictions_a, predictions_b) -> tuple:
    """(only A right, only B right, both right, both wrong) on the aligned test images."""
    a, b = align(predictions_a, predictions_b)
    return (int(numpy.sum(a.correct & ~b.correct)), int(numpy.sum(~a.correct & b.correct)),
            int(numpy.sum(a.correct & b.correct)), int(numpy.sum(~a.correct & ~b.correct)))


def mcnemar(predictions_a, predictions_b) -> dict:
    """``mcnemar_test`` on two models' predictions of the same images: b = only A right, c = only B right."""
    only_a, only_b, _, _ = discordant_counts(predictions_a, predictions_b)
    return mcnemar_test(only_a, only_b)


def cochran_mantel_haenszel(tables) -> dict:
    """Cochran-Mantel-Haenszel test that K 2 x 2 tables share an odds ratio of 1; no continuity correction.

    ``tables``: (K, 2, 2) counts, rows the groups, columns the outcome. The textbook statistic (Agresti,
    Categorical Data Analysis, 3rd ed., section 6.4): [sum_k (n11k - E n11k)]^2 / sum_k Var n11k, with
    E n11k = n1+k n+1k / n++k and Var n11k = n1+k n2+k n+1k n+2k / (n++k^2 (n++k - 1)), against chi-square(1).
    Written out because statsmodels (``StratifiedTable.test_null_odds``) is not a dependency of this project and
    scipy has no CMH. Strata of fewer than 2 observations carry no information and are skipped.
    """
    tables = numpy.asarray(tables, dtype=float).reshape(-1, 2, 2)
    tables = tables[tables.sum(axis=(1, 2)) > 1]
    n = tables.sum(axis=(1, 2))
    rows, columns = tables.sum(axis=2), tables.sum(axis=1)
    expected = rows[:, 0] * columns[:, 0] / n
    variance = float(numpy.sum(rows[:, 0] * rows[:, 1] * columns[:, 0] * columns[:, 1] / (n**2 * (n - 1))))
    deviation = float(tables[:, 0, 0].sum() - expected.sum())
    if variance == 0:
        return {"statistic": math.nan, "p_value": 1.0, "strata": len(tables), "note": "no informative stratum"}
    statistic = deviation**2 / variance
    return {"statistic": statistic, "p_value": float(stats.chi2.sf(statistic, 1)), "strata": len(tables), "note": ""}


def matched_pair_tables(only_a, only_b, both_right=0, both_wrong=0) -> numpy.ndarray:
    """One 2 x 2 stratum per matched pair (rows: model A, model B; columns: right, wrong), as CMH for matched pairs
    needs: with pairs as strata the CMH statistic is McNemar's (b - c)^2 / (b + c) (Agresti, section 11.1)."""
    kinds = numpy.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[1, 0], [1, 0]], [[0, 1], [0, 1]]])
    return numpy.repeat(kinds, [int(only_a), int(only_b), int(both_right), int(both_wrong)], axis=0)


def _model_summary(predictions, options):
    correct = int(predictions.correct.sum())
    return {"accuracy": correct / len(predictions), "correct": correct,
            "accuracy_ci_exact": clopper_pearson(correct, len(predictions)),
            "accuracy_ci_bootstrap": accuracy_ci(predictions, **options),
            "macro_f1": macro_f1(predictions), "macro_f1_ci": macro_f1_ci(predictions, **options)}


def compare_models(predictions_a, predictions_b, names=("model A", "model B"), **options) -> dict:
    """Both models' accuracy and macro-F1 with CIs, paired bootstrap CIs of B - A, and the exact McNemar test.

    ``options`` go to ``bootstrap_ci`` (n_resamples, confidence_level, seed, method). Differences follow
    ``SIGN_CONVENTION``: B - A, positive favours ``names[1]``; ``direction`` spells it with the names.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different model names, got {names!r}")
    a, b = align(predictions_a, predictions_b)
    direction = f"{names[1]} − {names[0]}"
    difference = {**difference_ci(a, b, "accuracy", **options), "direction": direction}
    test = mcnemar(a, b)
    return {
        "n": len(a), "names": list(names), "direction": direction,
        "models": {names[0]: _model_summary(a, options), names[1]: _model_summary(b, options)},
        "accuracy_difference": difference,
        "macro_f1_difference": {**difference_ci(a, b, "macro_f1", **options), "direction": direction},
        "mcnemar": test,
        "supports_difference": bool((difference["low"] > 0 or difference["high"] < 0) and test["p_value"] < 0.05),
    }


def seed_spread(values_by_seed) -> dict:
    """Mean and sample standard deviation (ddof=1) of one metric over seeds; a note instead of a spread below 2."""
    values = list(values_by_seed.values()) if isinstance(values_by_seed, dict) else list(values_by_seed)
    values = [float(value) for value in values]
    if not values:
        raise UserError("seed_spread got no runs: train at least one seed first")
    if len(values) < 2:
        return {"n_seeds": 1, "mean": values[0], "std": math.nan, "values": values,
                "note": "a spread over seeds needs at least 2 seeds; only one run, so its single-run confidence "
                        "intervals are reported instead"}
    return {"n_seeds": len(values), "mean": float(numpy.mean(values)), "std": float(numpy.std(values, ddof=1)),
            "values": values, "note": ""}


def headline_metrics(predictions, n_bins=10, **options) -> dict:
    """Numbers to merge into a run's metrics for ``comparison_table``; the accuracy CI is the exact binomial one.

    macro-F1 carries a bootstrap CI (``options`` go to ``bootstrap_ci``; 9,999 resamples by default). Calibration:
    Brier score and log loss with bootstrap intervals (primary); ``ece`` is the debiased ECE so that it sits inside
    its ``ece_ci``, and ``ece_plug_in`` the plotted one (``classification_metrics``' ``ece``), shown without one.
    """
    point = classification_metrics(predictions, n_bins)
    resampling = {key: options[key] for key in ("n_resamples", "confidence_level", "seed") if key in options}
    ece, brier = ece_ci(predictions, n_bins, **resampling), proper_score_ci(predictions, "brier", **resampling)
    log_loss = proper_score_ci(predictions, "log_loss", **resampling)  # equals sklearn's; the same doubles as its CI
    return {"test_n": point["n"], "test_accuracy": point["accuracy"],
            "test_accuracy_ci": list(clopper_pearson(int(predictions.correct.sum()), len(predictions))),
            "test_accuracy_ci_method": "Clopper-Pearson exact binomial",
            "macro_f1": point["macro_f1"], "macro_f1_ci": macro_f1_ci(predictions, **options),
            "ece": ece["estimate"], "ece_ci": ece, "ece_plug_in": point["ece"], "ece_bins": n_bins,
            "brier": brier["estimate"], "brier_ci": brier,
            "log_loss": log_loss["estimate"], "log_loss_ci": log_loss,
            "roc_auc_ovr_macro": point["roc_auc_ovr_macro"]}
