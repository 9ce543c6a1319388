"""Odds ratios and equivalence by hand: conditional odds ratio, Mantel-Haenszel, TOST at a margin named in advance."""

import math
from fractions import Fraction

import numpy
import pandas
import pytest
from scipy import stats as scipy_stats

from heroes.evaluation import equivalence
from heroes.evaluation.predictions import load_predictions


def scored(correct):
    """A two-class model right exactly where ``correct`` is 1, on images img/000.png, img/001.png, ..."""
    right = numpy.asarray(correct, bool)
    return load_predictions(pandas.DataFrame({"path": [f"img/{k:03d}.png" for k in range(len(right))], "sha256": "",
                                              "label": "batman", "predicted": numpy.where(right, "batman", "other"),
                                              "prob_batman": numpy.where(right, 0.9, 0.2),
                                              "prob_other": numpy.where(right, 0.1, 0.8)}))


def test_margin_is_five_points():
    assert equivalence.EQUIVALENCE_MARGIN == 0.05


def test_conditional_odds_ratio_by_the_beta_form_of_clopper_pearson():
    # 2 pairs favour A, 8 favour B: OR 4; p = 8/10 has the exact CI [Beta(0.025; 8, 3), Beta(0.975; 9, 2)].
    result = equivalence.conditional_odds_ratio(2, 8)
    low, high = scipy_stats.beta.ppf(0.025, 8, 3), scipy_stats.beta.ppf(0.975, 9, 2)
    assert result["estimate"] == 4
    assert (result["low"], result["high"]) == pytest.approx((low / (1 - low), high / (1 - high)))
    assert result["low"] < 1 < result["high"]  # 8 of 10 is not evidence at 5%: the exact p is 0.11
    one_sided = equivalence.conditional_odds_ratio(0, 7)
    assert one_sided["estimate"] == one_sided["high"] == math.inf and one_sided["low"] > 1  # p = 2/128 < 0.05
    empty = equivalence.conditional_odds_ratio(0, 0)
    assert math.isnan(empty["estimate"]) and (empty["low"], empty["high"]) == (0.0, math.inf) and empty["note"]


def test_mantel_haenszel_of_one_table_is_the_sample_odds_ratio_with_woolfs_interval():
    # With one stratum the Robins-Breslow-Greenland variance is Woolf's 1/a + 1/b + 1/c + 1/d.
    table = numpy.array([[12, 5], [7, 16]])
    result = equivalence.mantel_haenszel_odds_ratio([table])
    assert result["estimate"] == pytest.approx(12 * 16 / (5 * 7))
    half = 1.959964 * math.sqrt(1 / 12 + 1 / 5 + 1 / 7 + 1 / 16)
    assert (result["low"], result["high"]) == pytest.approx((12 * 16 / 35 * math.exp(-half),
                                                             12 * 16 / 35 * math.exp(half)), rel=1e-6)


def test_mantel_haenszel_of_two_tables_by_hand():
    # [[10, 5], [3, 12]] and [[4, 6], [2, 8]]: R = 120/30 + 32/20 = 5.6, S = 15/30 + 12/20 = 1.1, OR = 56/11.
    tables = [[[10, 5], [3, 12]], [[4, 6], [2, 8]]]
    r, s = [Fraction(4), Fraction(8, 5)], [Fraction(1, 2), Fraction(3, 5)]
    p, q = [Fraction(22, 30), Fraction(12, 20)], [Fraction(8, 30), Fraction(8, 20)]
    variance = (sum(pk * rk for pk, rk in zip(p, r)) / (2 * sum(r) ** 2)
                + sum(pk * sk + qk * rk for pk, qk, rk, sk in zip(p, q, r, s)) / (2 * sum(r) * sum(s))
                + sum(qk * sk for qk, sk in zip(q, s)) / (2 * sum(s) ** 2))
    result = equivalence.mantel_haenszel_odds_ratio(tables)
    assert result["estimate"] == pytest.approx(56 / 11) and result["strata"] == 2
    assert result["high"] == pytest.approx(56 / 11 * math.exp(1.959964 * math.sqrt(float(variance))), rel=1e-6)
    bound = equivalence.mantel_haenszel_odds_ratio([[[5, 0], [3, 2]]])  # b c = 0 in every stratum
    assert bound["estimate"] == math.inf and (bound["low"], bound["high"]) == (0.0, math.inf)


def test_tost_shows_equivalence_when_the_90_percent_interval_is_inside_the_margin():
    differences = [0.01, -0.01, 0.0, 0.02, -0.005]
    result = equivalence.tost(differences)
    mean, error = numpy.mean(differences), scipy_stats.sem(differences)
    assert result["p_lower"] == pytest.approx(scipy_stats.t.sf((mean + 0.05) / error, 4))
    assert result["p_upper"] == pytest.approx(scipy_stats.t.cdf((mean - 0.05) / error, 4))
    half = scipy_stats.t.ppf(0.95, 4) * error
    assert (result["low"], result["high"]) == pytest.approx((mean - half, mean + half))
    assert result["equivalent"] and -0.05 < result["low"] < result["high"] < 0.05
    assert result["excluded"] == {"below": result["low"], "above": result["high"]}


def test_tost_does_not_show_equivalence_when_seeds_disagree():
    differences = [0.08, -0.06, 0.03]
    result = equivalence.tost(differences)
    mean, error = numpy.mean(differences), scipy_stats.sem(differences)
    half = scipy_stats.t.ppf(0.95, 2) * error
    assert not result["equivalent"] and result["p_value"] > 0.05
    assert (result["excluded"]["below"], result["excluded"]["above"]) == pytest.approx((mean - half, mean + half))
    assert result["low"] < -0.05 and result["high"] > 0.05  # neither margin is excluded
    assert not equivalence.tost([0.01])["equivalent"] and equivalence.tost([0.01])["note"]


def test_tost_paired_on_images():
    # 400 images, 10 discordant each way: the difference is 0 with standard error ~0.011: within ±5 points.
    a = scored([1] * 10 + [0] * 10 + [1] * 300 + [0] * 80)
    b = scored([0] * 10 + [1] * 10 + [1] * 300 + [0] * 80)
    assert equivalence.tost_paired(a, b)["equivalent"]
    # 40 images, 4 discordant each way: standard error ~0.07: ±5 points is not excluded.
    small_a, small_b = scored([1] * 4 + [0] * 4 + [1] * 32), scored([0] * 4 + [1] * 4 + [1] * 32)
    result = equivalence.tost_paired(small_a, small_b)
    assert not result["equivalent"] and result["units"] == 40 and result["estimate"] == 0
