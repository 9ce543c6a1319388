"""Pooling over seeds against distributions known in closed form: hierarchical bootstrap, seed interval, CMH."""

from fractions import Fraction

import numpy
import pandas
import pytest
from scipy import stats as scipy_stats

from heroes.evaluation import pooled, stats
from heroes.evaluation.predictions import load_predictions


def scored(correct, prefix):
    """A two-class model right exactly where ``correct`` is 1 (every label is batman), images named by ``prefix``."""
    right = numpy.asarray(correct, bool)
    paths = [f"{prefix}/{k:03d}.png" for k in range(len(right))]
    return load_predictions(pandas.DataFrame({"path": paths, "sha256": "", "label": "batman",
                                              "predicted": numpy.where(right, "batman", "not_a_hero"),
                                              "prob_batman": numpy.where(right, 0.8, 0.3),
                                              "prob_not_a_hero": numpy.where(right, 0.2, 0.7)}))


def replicates(values_by_seed, keys_by_seed=None, n_resamples=40000):
    values = [numpy.asarray(v, float) for v in values_by_seed.values()]
    return pooled._hierarchical_replicates(values, pooled._image_keys(values_by_seed, keys_by_seed), n_resamples,
                                           numpy.random.default_rng(1))


# ---------------------------------------------------------------- hierarchical bootstrap


def test_one_seed_is_the_ordinary_image_bootstrap():
    # 20 images, 6 right: a resample's accuracy is K / 20 with K ~ Binomial(20, 0.3).
    values = {0: [1] * 6 + [0] * 14}
    draws = replicates(values)
    assert draws.mean() == pytest.approx(0.3, abs=0.002)
    assert draws.var() == pytest.approx(0.3 * 0.7 / 20, rel=0.03)
    result = pooled.hierarchical_bootstrap(values, n_resamples=20000)
    assert (result["low"], result["high"]) == (scipy_stats.binom.ppf(0.025, 20, 0.3) / 20,
                                               scipy_stats.binom.ppf(0.975, 20, 0.3) / 20)
    assert result["estimate"] == pytest.approx(0.3) and result["n_seeds"] == 1


def test_no_variation_within_seeds_is_the_bootstrap_of_seeds():
    # Seed means 0, 0, 0, 0, 1, constant within each seed: a resample's mean is K / 5, K ~ Binomial(5, 1/5).
    values = {seed: [float(seed == 4)] * 7 for seed in range(5)}
    draws = replicates(values)
    assert draws.var() == pytest.approx(0.2 * 0.8 / 5, rel=0.03)
    assert set(numpy.round(draws * 5, 9)) <= {0, 1, 2, 3, 4, 5}
    result = pooled.hierarchical_bootstrap(values, n_resamples=20000)
    assert (result["low"], result["high"]) == (scipy_stats.binom.ppf(0.025, 5, 0.2) / 5,
                                               scipy_stats.binom.ppf(0.975, 5, 0.2) / 5) == (0.0, 0.6)


def test_an_image_shared_by_seeds_is_one_draw():
    # Three seeds score the same 20 images with the same results. Drawn once for all seeds, the variance stays
    # that of one seed's image bootstrap, 0.3 0.7 / 20. Drawn independently per seed (distinct images), it is that
    # times E[sum of squared seed multiplicities] / 9 = 5 / 9, and a little more as a seed's image count varies.
    keys = {seed: [f"img/{k}" for k in range(20)] for seed in range(3)}
    values = {seed: [1] * 6 + [0] * 14 for seed in range(3)}
    assert replicates(values, keys).var() == pytest.approx(0.3 * 0.7 / 20, rel=0.03)
    assert replicates(values).var() == pytest.approx(0.3 * 0.7 / 20 * 5 / 9, rel=0.06)


def test_two_levels_add_their_variances_when_test_sets_are_distinct():
    # Seeds differ (means 0.2 and 0.6) and vary within. Between: var{0.2, 0.6} / 2 = 0.02. Within: two seed draws
    # with multiplicities m, E[m^2] = 1.5, so 1.5 (0.2 0.8 + 0.6 0.4) / 40 / 4 = 0.00375. Total 0.02375.
    values = {0: [1] * 8 + [0] * 32, 1: [1] * 24 + [0] * 16}
    spread = replicates(values).var()
    assert spread == pytest.approx(0.02 + 0.00375, rel=0.05)
    assert spread > 0.02 * 1.1  # more than the seed level alone


def test_seed_interval_by_hand():
    # Per-seed values 1/6, 2/6, 2/6: mean 5/18, sd sqrt(3)/18, standard error 1/18, t(0.975, 2) = 4.3027.
    result = pooled.seed_interval([1 / 6, 2 / 6, 2 / 6])
    assert result["estimate"] == pytest.approx(5 / 18)
    assert (result["low"], result["high"]) == pytest.approx((5 / 18 - 4.302653 / 18, 5 / 18 + 4.302653 / 18))
    assert numpy.isnan(pooled.seed_interval([0.1])["low"]) and "2 seeds" in pooled.seed_interval([0.1])["note"]
    assert pooled.seed_interval([0.1, 0.1])["low"] == pooled.seed_interval([0.1, 0.1])["high"] == 0.1


def test_hierarchical_difference_pairs_each_seed_and_keeps_b_minus_a():
    a = {0: scored([1, 0, 0, 1], "s0"), 1: scored([1, 1, 0, 0], "s1")}
    b = {0: scored([1, 1, 1, 1], "s0"), 1: scored([1, 1, 1, 0], "s1")}
    result = pooled.hierarchical_difference(a, b, n_resamples=999)
    assert result["estimate"] == pytest.approx((2 / 4 + 1 / 4) / 2) and result["direction"] == "B − A"
    assert result["seed_level"]["estimate"] == pytest.approx(3 / 8) and result["n_distinct_images"] == 8
    assert pooled.hierarchical_accuracy(b, n_resamples=999)["estimate"] == pytest.approx(7 / 8)


# ---------------------------------------------------------------- CMH stratified by seed


def simpson_seeds():
    """Seed 0: A 30/40, B 38/40 right; seed 1: A 2/40, B 10/40. Within each seed B's odds are 19/3 times A's."""
    a = {0: scored([1] * 30 + [0] * 10, "s0"), 1: scored([1] * 2 + [0] * 38, "s1")}
    b = {0: scored([1] * 38 + [0] * 2, "s0"), 1: scored([1] * 10 + [0] * 30, "s1")}
    return a, b


def test_cmh_stratified_by_seed_differs_from_the_pooled_counts():
    a, b = simpson_seeds()
    result = pooled.stratified_cmh(a, b)
    # By hand: per seed a - E a = 4; Var = 40 40 68 12 / (80^2 79) in both; statistic 8^2 / (2 Var).
    variance = Fraction(40 * 40 * 68 * 12, 80**2 * 79)
    assert result["statistic"] == pytest.approx(float(64 / (2 * variance))) == pytest.approx(12.39, abs=0.01)
    assert result["common_odds_ratio"] == pytest.approx(19 / 3) and result["strata"] == 2
    # Collapsing the seeds: one table [[48, 32], [32, 48]], odds ratio 2.25 and CMH statistic 6.36.
    collapsed = numpy.array([[48, 32], [32, 48]])
    assert scipy_stats.contingency.odds_ratio(collapsed, kind="sample").statistic == pytest.approx(2.25)
    assert stats.cochran_mantel_haenszel([collapsed])["statistic"] == pytest.approx(6.36, abs=0.01)
    # The old "CMH", one stratum per (seed, image) pair, is McNemar on the 16 pooled discordant pairs: 16.
    tables = numpy.concatenate([stats.matched_pair_tables(*stats.discordant_counts(a[s], b[s])) for s in a])
    assert stats.cochran_mantel_haenszel(tables)["statistic"] == pytest.approx(16)
    assert result["low"] < 19 / 3 < result["high"] and result["note"] == ""


def test_pooled_comparison_reports_the_stratified_cmh_and_equivalence():
    a, b = simpson_seeds()
    result = pooled.pooled_comparison(a, b, ("A", "B"), n_resamples=999)
    assert result["cmh"]["strata_by"] == "seed" and result["cmh"]["common_odds_ratio"] == pytest.approx(19 / 3)
    assert result["conditional_odds_ratio"]["estimate"] == float("inf")  # 16 pairs favour B, none A
    assert result["equivalence"]["unit"] == "seed" and not result["equivalence"]["equivalent"]
    assert result["seed_level"]["estimate"] == pytest.approx(0.2) == result["hierarchical"]["estimate"]
