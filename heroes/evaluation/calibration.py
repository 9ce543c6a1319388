"""Calibration: proper scoring rules with paired intervals (primary), ECE for the plot and its debiased interval."""

import warnings

import numpy
import pandas
from scipy import stats

from heroes.errors import UserError
from heroes.evaluation.predictions import align

SCORES = ("brier", "log_loss")  # both lower-is-better; a negative B − A favours B


def bin_index(confidence, n_bins=10) -> numpy.ndarray:
    """Equal-width bin of each confidence: [k/n, (k+1)/n), the last bin closed at 1.0.

    Edges are k / n_bins, the same doubles as the literals (0.3), where ``numpy.linspace`` gives
    0.30000000000000004 and sent a confidence of exactly 0.3 into [0.2, 0.3).
    """
    edges = numpy.arange(n_bins + 1) / n_bins
    return numpy.clip(numpy.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)


def reliability_table(confidence, correct, n_bins=10) -> pandas.DataFrame:
    """Per equal-width confidence bin on [0, 1]: count, mean confidence and accuracy (NaN when empty).

    Bins are [lo, hi) except the last, which is [0.9, 1.0] with ten bins (``bin_index``).
    """
    confidence, correct = numpy.asarray(confidence, float), numpy.asarray(correct, float)
    index = bin_index(confidence, n_bins)
    count = numpy.bincount(index, minlength=n_bins)
    with numpy.errstate(invalid="ignore"):  # empty bins: 0 / 0 is NaN, which we want
        mean_confidence = numpy.bincount(index, confidence, n_bins) / count
        accuracy = numpy.bincount(index, correct, n_bins) / count
    edges = numpy.arange(n_bins + 1) / n_bins
    return pandas.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": count.astype(int),
                             "confidence": mean_confidence, "accuracy": accuracy})


def expected_calibration_error(confidence, correct, n_bins=10) -> float:
    """Top-label ECE: sum over bins of (bin share of images) x |accuracy - mean confidence|: the plotted number.

    Written here because sklearn only has binary ``calibration_curve`` and no ECE; torchmetrics and netcal
    would pull in heavy dependencies for one weighted average (Guo et al., 2017, equation 3). It is biased
    upwards (noise in a bin's accuracy only ever adds to |gap|): intervals use ``debiased_ece`` instead.
    """
    table = reliability_table(confidence, correct, n_bins)
    used = table[table["count"] > 0]
    return float((used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum() / table["count"].sum())


def _bin_sums(confidence, correct, n_bins, axis):
    """Per bin (last axis): count, sum of correct - confidence, and sum of correct, along ``axis``."""
    index = bin_index(confidence, n_bins)
    correct = numpy.asarray(correct, float)
    inside = [index == k for k in range(n_bins)]
    count = numpy.stack([numpy.sum(mask, axis=axis) for mask in inside], axis=-1)
    gap = numpy.stack([numpy.sum(numpy.where(mask, correct - confidence, 0.0), axis=axis) for mask in inside], -1)
    hits = numpy.stack([numpy.sum(numpy.where(mask, correct, 0.0), axis=axis) for mask in inside], axis=-1)
    return count, gap, hits


def debiased_ece(confidence, correct, n_bins=10, axis=-1):
    """ECE with each bin's noise bias removed (Kumar, Liang & Ma 2019, "Verified uncertainty calibration").

    Per bin, |gap| is replaced by 2|gap| - E|N(gap, s^2)|, s^2 = accuracy (1 - accuracy) / count: the folded
    normal mean (``scipy.stats.foldnorm``) is what |gap| would average to from label noise alone. It removes all
    of the bias of a large gap and part of it near 0 (no estimator of |gap| is unbiased there). Vectorised along
    ``axis`` for bootstrap resamples; may be negative for a well calibrated model (it is not clipped here).
    """
    confidence = numpy.asarray(confidence, float)
    count, gap, hits = _bin_sums(confidence, correct, n_bins, axis)
    with numpy.errstate(invalid="ignore", divide="ignore"):  # empty bins and s = 0 are replaced below
        mean_gap, accuracy = gap / count, hits / count
        spread = numpy.sqrt(accuracy * (1 - accuracy) / count)
        noisy = stats.foldnorm.mean(numpy.abs(mean_gap) / spread, scale=spread)
    noisy = numpy.where(spread > 0, noisy, numpy.abs(mean_gap))  # no label noise (bin all right or all wrong)
    term = numpy.where(count > 0, 2 * numpy.abs(mean_gap) - noisy, 0.0)
    return numpy.sum(count * term, axis=-1) / numpy.shape(confidence)[axis]


def _percentile_bootstrap(statistic, data, n_resamples, confidence_level, seed):
    """Bootstrap replicates of ``statistic`` (``scipy.stats.bootstrap``, rows of ``data`` resampled together);
    refuses fewer than 2 images."""
    if min(len(array) for array in data) < 2:
        raise UserError(f"a bootstrap needs at least 2 test images, got {min(len(array) for array in data)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant replicates (a degenerate model) warn; the interval is still right
        result = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence_level,
                                 method="percentile", vectorized=True,
                                 rng=numpy.random.default_rng(seed))
    return result.bootstrap_distribution


def _interval(estimate, replicates, confidence_level, n_resamples, seed, method) -> dict:
    """Percentile interval of ``replicates``, its median moved onto ``estimate``, so the interval always holds it.

    Without the shift a statistic whose resamples are biased (ECE: every resample adds noise) can have an
    interval that excludes its own estimate (issue 26: ECE 0.0115 with "CI" [0.0062, 0.0113]).
    """
    tail = (1 - confidence_level) / 2
    low, middle, high = numpy.quantile(replicates, [tail, 0.5, 1 - tail])
    return {"estimate": float(estimate), "low": float(estimate + (low - middle)),
            "high": float(estimate + (high - middle)), "method": method, "confidence_level": confidence_level,
            "n_resamples": n_resamples, "seed": seed, "note": ""}


def ece_ci(predictions, n_bins=10, *, n_resamples=9999, confidence_level=0.95, seed=0) -> dict:
    """Debiased ECE (clipped at 0) with a percentile bootstrap interval, median-aligned on it; ``plug_in`` is the
    plotted ECE. The interval always contains ``estimate``, also for a constant-confidence (majority-class) model.
    """
    data = (predictions.confidence, predictions.correct.astype(float))
    replicates = _percentile_bootstrap(lambda c, y, axis=-1: debiased_ece(c, y, n_bins, axis), data, n_resamples,
                                       confidence_level, seed)
    result = _interval(debiased_ece(*data, n_bins), replicates, confidence_level, n_resamples, seed,
                       "percentile bootstrap of the debiased ECE, median-aligned")
    clipped = {key: max(result[key], 0.0) for key in ("estimate", "low", "high")}  # monotone: containment holds
    return {**result, **clipped, "plug_in": expected_calibration_error(*data, n_bins), "n_bins": n_bins}


def image_scores(predictions) -> dict:
    """Per-image proper scores: multi-class Brier sum_k (p_k - y_k)^2 (range 0..2, Brier 1950) and log loss
    -log p_label, clipped at float64 eps as sklearn's ``log_loss`` does."""
    onehot = numpy.eye(predictions.probabilities.shape[1])[predictions.labels]
    truth = predictions.probabilities[numpy.arange(len(predictions)), predictions.labels]
    return {"brier": numpy.sum((predictions.probabilities - onehot) ** 2, axis=1),
            "log_loss": -numpy.log(numpy.clip(truth, numpy.finfo(float).eps, 1.0))}


def _check_score(score):
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def _mean(values, axis=-1):
    return numpy.mean(values, axis=axis)


def proper_score_ci(predictions, score="brier", *, n_resamples=9999, confidence_level=0.95, seed=0) -> dict:
    """Mean Brier score or log loss of one model with a percentile bootstrap interval over images."""
    _check_score(score)
    values = image_scores(predictions)[score]
    replicates = _percentile_bootstrap(_mean, (values,), n_resamples, confidence_level, seed)
    result = _interval(values.mean(), replicates, confidence_level, n_resamples, seed,
                       "percentile bootstrap, median-aligned")
    return {**result, "score": score}


def proper_score_difference(predictions_a, predictions_b, score="brier", *, n_resamples=9999,
                            confidence_level=0.95, seed=0) -> dict:
    """Paired bootstrap of mean score(B) - mean score(A) on the same images, resampled jointly. Lower is better,
    so a negative difference favours B (the opposite of accuracy's sign)."""
    _check_score(score)
    a, b = align(predictions_a, predictions_b)
    per_image = image_scores(b)[score] - image_scores(a)[score]
    replicates = _percentile_bootstrap(_mean, (per_image,), n_resamples, confidence_level, seed)
    result = _interval(per_image.mean(), replicates, confidence_level, n_resamples, seed,
                       "paired percentile bootstrap, median-aligned")
    return {**result, "score": score, "direction": "B − A", "favours": "negative favours B: lower is better"}


def compare_calibration(predictions_a, predictions_b, names=("model A", "model B"), **options) -> dict:
    """The primary calibration comparison: each model's Brier score and log loss with intervals, and the paired
    B − A differences of both. ``options``: n_resamples, confidence_level, seed."""
    a, b = align(predictions_a, predictions_b)
    return {"names": list(names), "direction": f"{names[1]} − {names[0]}",
            "models": {name: {score: proper_score_ci(model, score, **options) for score in SCORES}
                       for name, model in zip(names, (a, b))},
            "differences": {score: proper_score_difference(a, b, score, **options) for score in SCORES}}
