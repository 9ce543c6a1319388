"""Odds ratios and equivalence: the paired conditional odds ratio, the Mantel-Haenszel common odds ratio, and TOST."""

import math

import numpy
from scipy import stats

from heroes.evaluation.predictions import align

# Named before any result (issue 26): differences of accuracy within ±5 percentage points count as equivalent.
EQUIVALENCE_MARGIN = 0.05


def _odds(proportion):
    """p / (1 - p), with p = 1 giving infinity rather than a division warning."""
    return math.inf if proportion >= 1 else proportion / (1 - proportion)


def conditional_odds_ratio(only_a, only_b, confidence_level=0.95) -> dict:
    """Paired (conditional) odds ratio only_b / only_a: the odds that a discordant pair favours B, with the exact
    CI from the Clopper-Pearson interval of only_b / (only_a + only_b) (``scipy.stats.binomtest``), mapped p/(1-p).

    0 and infinity are allowed (one count zero); with no discordant pair it is undefined: NaN in [0, inf].
    """
    only_a, only_b = int(only_a), int(only_b)
    if only_a + only_b == 0:
        return {"estimate": math.nan, "low": 0.0, "high": math.inf, "only_a": 0, "only_b": 0,
                "confidence_level": confidence_level, "method": "exact (Clopper-Pearson on discordant pairs)",
                "note": "no discordant pairs: the odds ratio is undefined"}
    interval = stats.binomtest(only_b, only_a + only_b).proportion_ci(confidence_level, method="exact")
    return {"estimate": math.inf if only_a == 0 else only_b / only_a, "low": _odds(interval.low),
            "high": _odds(interval.high), "only_a": only_a, "only_b": only_b, "confidence_level": confidence_level,
            "method": "exact (Clopper-Pearson on discordant pairs)", "note": ""}


def mantel_haenszel_odds_ratio(tables, confidence_level=0.95) -> dict:
    """Mantel-Haenszel common odds ratio of K 2 x 2 tables [[a, b], [c, d]] (a d / b c per stratum) with the
    Robins-Breslow-Greenland CI of its log (Agresti, Categorical Data Analysis, 3rd ed., section 6.4.4).

    Written out because scipy has no stratified odds ratio and statsmodels (``StratifiedTable``) is not a
    dependency. When sum a d / n or sum b c / n is 0 the estimate is 0 or infinity and the CI [0, inf].
    """
    tables = numpy.asarray(tables, dtype=float).reshape(-1, 2, 2)
    tables = tables[tables.sum(axis=(1, 2)) > 0]
    a, b, c, d = (tables[:, i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    n = a + b + c + d
    r, s, p, q = a * d / n, b * c / n, (a + d) / n, (b + c) / n
    result = {"strata": len(tables), "confidence_level": confidence_level, "method": "Mantel-Haenszel, RGB CI"}
    if r.sum() == 0 or s.sum() == 0:
        estimate = math.nan if r.sum() == s.sum() else (0.0 if r.sum() == 0 else math.inf)
        return {**result, "estimate": estimate, "low": 0.0, "high": math.inf,
                "note": "a zero margin of the pooled cross products: the odds ratio is at a bound or undefined"}
    variance = ((p * r).sum() / (2 * r.sum() ** 2) + (p * s + q * r).sum() / (2 * r.sum() * s.sum())
                + (q * s).sum() / (2 * s.sum() ** 2))
    estimate = r.sum() / s.sum()
    half = stats.norm.ppf(0.5 + confidence_level / 2) * math.sqrt(variance)
    return {**result, "estimate": float(estimate), "low": float(estimate * math.exp(-half)),
            "high": float(estimate * math.exp(half)), "note": ""}


def tost(differences, margin=EQUIVALENCE_MARGIN, alpha=0.05) -> dict:
    """Two one-sided t-tests (``scipy.stats.ttest_1samp``) that the mean of ``differences`` lies within ±margin.

    ``differences``: one B − A value per unit (per seed, or per image of one test set). Equivalence is shown when
    both one-sided p-values are below ``alpha``, i.e. the (1 - 2 alpha) t-interval lies inside the margins;
    every true difference outside that interval is excluded at level ``alpha``.
    """
    values = numpy.asarray(differences, dtype=float)
    estimate = float(values.mean())
    base = {"estimate": estimate, "margin": margin, "alpha": alpha, "units": len(values),
            "confidence_level": 1 - 2 * alpha}
    if len(values) < 2 or numpy.ptp(values) < 1e-12:  # equal up to rounding: the t statistic is 0 / 0
        return {**base, "p_lower": math.nan, "p_upper": math.nan, "p_value": math.nan, "low": estimate,
                "high": estimate, "equivalent": False, "excluded": {"below": math.nan, "above": math.nan},
                "note": "fewer than 2 units or no variation between them: TOST is undefined"}
    p_lower = stats.ttest_1samp(values, -margin, alternative="greater").pvalue  # H0: difference <= -margin
    p_upper = stats.ttest_1samp(values, margin, alternative="less").pvalue  # H0: difference >= +margin
    interval = stats.ttest_1samp(values, 0.0).confidence_interval(1 - 2 * alpha)
    return {**base, "p_lower": float(p_lower), "p_upper": float(p_upper), "p_value": float(max(p_lower, p_upper)),
            "low": float(interval.low), "high": float(interval.high),
            "equivalent": bool(max(p_lower, p_upper) < alpha),
            "excluded": {"below": float(interval.low), "above": float(interval.high)}, "note": ""}


def tost_paired(predictions_a, predictions_b, margin=EQUIVALENCE_MARGIN, alpha=0.05) -> dict:
    """``tost`` of B − A accuracy on one test set: the units are the images' paired correctness differences."""
    a, b = align(predictions_a, predictions_b)
    return tost(b.correct.astype(float) - a.correct.astype(float), margin, alpha)
