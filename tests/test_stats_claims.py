"""Issue 16's claims, checked against scipy or by hand: exact McNemar, CMH, pooled seeds, binning, ECE CI, overfitting."""

import hashlib
import itertools
import subprocess
from fractions import Fraction

import keras
import numpy
import pandas
import pytest
from scipy import stats as scipy_stats

from heroes.config import TrainConfig
from heroes.errors import UserError
from heroes.evaluation import calibration, overfitting, pooled, stats
from heroes.evaluation.predictions import load_predictions
from heroes.training import train_evaluation
from heroes.training.train_evaluation import TrainSetEvaluation
from heroes.reporting import run_card, verdicts

CLASSES = ("batman", "not_a_hero")


def scored(correct, prefix="img"):
    """Predictions of a two-class model that is right exactly where ``correct`` is 1 (every label is batman)."""
    rows = []
    for index, right in enumerate(correct):
        path = f"{prefix}/{index:03d}.png"
        probability = 0.8 if right else 0.3
        rows.append({"path": path, "sha256": hashlib.sha256(path.encode()).hexdigest(), "label": "batman",
                     "predicted": "batman" if right else "not_a_hero", "prob_batman": probability,
                     "prob_not_a_hero": 1 - probability})
    return load_predictions(pandas.DataFrame(rows))


# ---------------------------------------------------------------- the exact McNemar test


def test_mcnemar_with_equal_discordant_counts_is_one():
    # The old chi-square branch gave (|13 - 13| - 1)^2 / 26 -> p = 0.845; the exact test says 1.
    result = stats.mcnemar_test(13, 13)
    assert result["p_value"] == 1.0 and result["mid_p_value"] == pytest.approx(1.0)


def test_mcnemar_without_discordant_pairs_is_one():
    result = stats.mcnemar_test(0, 0)
    assert (result["p_value"], result["mid_p_value"], result["method"]) == (1.0, 1.0, "exact")
    assert "no discordant pairs" in result["note"]


def test_mcnemar_at_the_old_switch_point_is_exact():
    # b = 16, c = 29 (45 discordant pairs, above the old 25-pair switch): exact 0.0725, not chi-square's 0.0736.
    result = stats.mcnemar_test(16, 29)
    assert result["p_value"] == pytest.approx(0.07245, abs=5e-5) and result["method"] == "exact"
    assert result["mid_p_value"] == pytest.approx(2 * scipy_stats.binom.cdf(16, 45, 0.5)
                                                  - scipy_stats.binom.pmf(16, 45, 0.5))


def test_mcnemar_mid_p_by_hand():
    # b = 1, c = 9: exact p = 2 P(X <= 1) = 22/1024; mid-p = 2 P(X <= 1) - P(X = 1) = (22 - 10)/1024.
    result = stats.mcnemar_test(1, 9)
    assert result["p_value"] == pytest.approx(22 / 1024) and result["mid_p_value"] == pytest.approx(12 / 1024)


@pytest.mark.parametrize("b, c", list(itertools.product(range(0, 41, 3), range(0, 41, 4))))
def test_mcnemar_agrees_with_scipy_binomtest(b, c):
    expected = scipy_stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    result = stats.mcnemar_test(b, c)
    assert result["p_value"] == pytest.approx(expected, rel=1e-12)
    assert result["mid_p_value"] <= result["p_value"] + 1e-12 and result["method"] == "exact"


def test_mcnemar_on_predictions_counts_only_discordant_images():
    a = scored([1] * 13 + [0] * 13 + [1] * 10 + [0] * 4)
    b = scored([0] * 13 + [1] * 13 + [1] * 10 + [0] * 4)
    assert stats.discordant_counts(a, b) == (13, 13, 10, 4)
    assert stats.mcnemar(a, b)["p_value"] == 1.0


# ---------------------------------------------------------------- Cochran-Mantel-Haenszel


def test_cmh_by_hand_on_two_strata():
    # Stratum 1 [[10, 5], [3, 12]]: E = 15 * 13 / 30 = 6.5, Var = 15 * 15 * 13 * 17 / (30^2 * 29).
    # Stratum 2 [[4, 6], [2, 8]]:   E = 10 * 6 / 20 = 3,   Var = 10 * 10 * 6 * 14 / (20^2 * 19).
    # Statistic = (10 + 4 - 6.5 - 3)^2 / (Var1 + Var2) = 20.25 / 3.01044 = 6.7266.
    variance = Fraction(15 * 15 * 13 * 17, 900 * 29) + Fraction(10 * 10 * 6 * 14, 400 * 19)
    result = stats.cochran_mantel_haenszel([[[10, 5], [3, 12]], [[4, 6], [2, 8]]])
    assert result["statistic"] == pytest.approx(float(Fraction(81, 4) / variance)) == pytest.approx(6.7266, abs=1e-4)
    assert result["p_value"] == pytest.approx(scipy_stats.chi2.sf(6.726601356, 1)) and result["strata"] == 2


def test_cmh_of_one_stratum_is_pearson_times_n_minus_one_over_n():
    table = numpy.array([[12, 7], [5, 16]])
    pearson = scipy_stats.chi2_contingency(table, correction=False).statistic
    assert stats.cochran_mantel_haenszel([table])["statistic"] == pytest.approx(pearson * 39 / 40)


def test_cmh_with_matched_pairs_as_strata_is_mcnemars_statistic():
    tables = stats.matched_pair_tables(16, 29, both_right=80, both_wrong=25)
    assert tables.shape == (150, 2, 2)
    assert stats.cochran_mantel_haenszel(tables)["statistic"] == pytest.approx((16 - 29) ** 2 / 45)
    assert stats.cochran_mantel_haenszel(stats.matched_pair_tables(0, 0, 5, 5))["p_value"] == 1.0


# ---------------------------------------------------------------- evidence pooled over seeds

SEEDS_A = {0: [1, 1, 0, 0, 1, 0], 1: [1, 1, 0, 1, 0, 0], 2: [0, 1, 0, 0, 1, 0]}
SEEDS_B = {0: [1, 0, 1, 1, 1, 0], 1: [1, 1, 1, 1, 1, 0], 2: [1, 0, 0, 1, 1, 1]}


def by_seed(patterns, shared=True):
    return {seed: scored(correct, "test" if shared else f"test-s{seed}") for seed, correct in patterns.items()}


def test_pooled_over_seeds_sharing_the_test_set_by_hand():
    result = pooled.pooled_comparison(by_seed(SEEDS_A), by_seed(SEEDS_B), ("VGG16", "ResNet50"), n_resamples=999)
    assert result["shared_test_set"] and result["n_seeds"] == 3 and result["n_images"] == [6, 6, 6]
    # Per image, B - A averaged over seeds: 1/3, -2/3, 2/3, 2/3, 1/3, 1/3; mean 5/18 = mean of per-seed differences.
    assert result["difference"]["estimate"] == pytest.approx(5 / 18)
    assert result["difference"]["direction"] == "ResNet50 − VGG16"
    assert result["accuracy"] == {"VGG16": pytest.approx(8 / 18), "ResNet50": pytest.approx(13 / 18)}
    # Five images favour ResNet50 across seeds, one favours VGG16: exact binomial p = 2 * 7 / 64.
    test = result["test"]
    assert (test["b"], test["c"], test["units"]) == (1, 5, "images")
    assert test["p_value"] == pytest.approx(14 / 64) == pytest.approx(scipy_stats.binomtest(1, 6).pvalue)
    # CMH stratified by seed: tables [[B right, B wrong], [A right, A wrong]] = [[4, 2], [3, 3]], [[5, 1], [3, 3]],
    # [[4, 2], [2, 4]]; sum (a - E a) = 0.5 + 1 + 1, variances 36 (7 5 + 8 4 + 6 6) / (144 11) = 3708 / 1584.
    cmh = result["cmh"]
    assert cmh["statistic"] == pytest.approx(6.25 / (3708 / 1584)) and cmh["strata"] == 3
    assert cmh["strata_by"] == "seed" and "optimistic" in cmh["note"]
    # Mantel-Haenszel: sum a d / n = (12 + 15 + 16) / 12, sum b c / n = (6 + 3 + 4) / 12 -> 43 / 13.
    assert cmh["common_odds_ratio"] == pytest.approx(43 / 13)
    # Not the old "CMH" with one stratum per (seed, image) pair, which was McNemar on pooled counts, (2 - 7)^2 / 9.
    assert cmh["statistic"] != pytest.approx(25 / 9)
    # Seed-level t-interval of the per-seed differences 1/6, 2/6, 2/6: 5/18 ± t(0.975, 2) * (1/18).
    half = scipy_stats.t.ppf(0.975, 2) / 18
    assert (result["seed_level"]["low"], result["seed_level"]["high"]) == pytest.approx((5 / 18 - half, 5 / 18 + half))
    assert result["hierarchical"]["estimate"] == pytest.approx(5 / 18)
    assert result["conditional_odds_ratio"]["estimate"] == 5 and result["equivalence"]["unit"] == "seed"
    assert [row["difference"] for row in result["per_seed"]] == pytest.approx([1 / 6, 2 / 6, 2 / 6])
    assert not result["supports_difference"]


def test_pooled_over_seeds_with_their_own_test_sets():
    result = pooled.pooled_comparison(by_seed(SEEDS_A, False), by_seed(SEEDS_B, False), ("A", "B"), n_resamples=999)
    assert not result["shared_test_set"] and result["difference"]["resampled"] == "test images within each seed"
    assert result["difference"]["estimate"] == pytest.approx(5 / 18)
    assert result["difference"]["low"] <= 5 / 18 <= result["difference"]["high"]
    assert (result["test"]["b"], result["test"]["c"]) == (2, 7)
    assert result["test"]["p_value"] == pytest.approx(scipy_stats.binomtest(2, 9).pvalue)
    assert result["cmh"]["note"] == ""  # independent test sets: the CMH strata are independent
    assert result["hierarchical"]["n_distinct_images"] == 18


def test_pooled_with_one_seed_is_the_exact_mcnemar_of_that_seed():
    a, b = by_seed({0: SEEDS_A[0]}), by_seed({0: SEEDS_B[0]})
    result = pooled.pooled_comparison(a, b, ("A", "B"), n_resamples=999)
    single = stats.mcnemar(a[0], b[0])
    assert result["test"]["p_value"] == single["p_value"] and result["test"]["mid_p_value"] == single["mid_p_value"]
    assert result["difference"]["estimate"] == pytest.approx(stats.difference_ci(a[0], b[0])["estimate"])
    assert result["cmh"]["note"] == "" and result["equivalence"]["unit"] == "image"
    assert "2 seeds" in result["seed_level"]["note"]


def test_pooled_refuses_different_seeds_and_names():
    with pytest.raises(UserError, match="different seeds"):
        pooled.pooled_comparison(by_seed(SEEDS_A), by_seed({0: SEEDS_B[0]}), ("A", "B"))
    with pytest.raises(ValueError, match="two different"):
        pooled.pooled_comparison(by_seed(SEEDS_A), by_seed(SEEDS_B), ("A", "A"))


def test_pooled_sentence_states_the_direction_and_both_tests():
    result = pooled.pooled_comparison(by_seed(SEEDS_A), by_seed(SEEDS_B), ("VGG16", "ResNet50"), n_resamples=999)
    sentence = verdicts.pooled_sentence(result)
    assert sentence.startswith("Pooled over 3 seeds on the same 6 test images, mean test accuracy was VGG16 44.4% "
                               "and ResNet50 72.2%; ResNet50 − VGG16 = +27.8 points")
    assert "6 images favour one model, 5 ResNet50 and 1 VGG16: exact test p = 0.22, mid-p = 0.12" in sentence  # mid-p 8/64
    # CMH is now stratified by seed (p = 0.10); the old one-stratum-per-pair value, McNemar's p = 0.096, is gone.
    assert "Cochran–Mantel–Haenszel" in sentence and "(optimistic: the seeds share the images)" in sentence
    assert "p = 0.096" not in sentence
    assert verdicts.sign_convention(("VGG16", "ResNet50")) == ("Differences are ResNet50 − VGG16 throughout: "
                                                               "positive favours ResNet50.")


def test_every_difference_is_b_minus_a():
    a, b = scored([1, 0, 0, 1, 0]), scored([1, 1, 1, 1, 0])
    assert stats.difference_ci(a, b, n_resamples=99)["estimate"] == pytest.approx(0.4)
    comparison = stats.compare_models(a, b, ("VGG16", "ResNet50"), n_resamples=99)
    assert comparison["accuracy_difference"]["estimate"] == pytest.approx(0.4)
    assert comparison["direction"] == comparison["accuracy_difference"]["direction"] == "ResNet50 − VGG16"


# ---------------------------------------------------------------- calibration


def test_a_confidence_on_a_bin_edge_lands_in_the_bin_it_opens():
    edges = [k / 10 for k in range(10)]
    assert list(calibration.bin_index(numpy.array([0.3, *edges, 1.0]))) == [3, *range(10), 9]
    table = calibration.reliability_table([0.3, 0.3, 0.7], [1, 0, 1])
    assert table.loc[3, "count"] == 2 and table.loc[2, "count"] == 0 and table.loc[7, "count"] == 1


def test_ece_ci_brackets_its_debiased_estimate_and_carries_the_plotted_ece():
    rng = numpy.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 150)
    correct = rng.random(150) < confidence - 0.1
    ece = stats.expected_calibration_error(confidence, correct)
    rows = numpy.stack([confidence, confidence[::-1]])
    assert list(calibration.debiased_ece(rows, numpy.stack([correct, correct[::-1]]))) == pytest.approx(
        [calibration.debiased_ece(confidence, correct)] * 2)
    assert calibration.debiased_ece(confidence, correct) < ece  # the noise bias is removed, never added
    frame = pandas.DataFrame({"path": [f"i/{k}" for k in range(150)], "sha256": [f"{k:064x}" for k in range(150)],
                              "label": ["batman" if right else "not_a_hero" for right in correct],
                              "predicted": "batman", "prob_batman": confidence, "prob_not_a_hero": 1 - confidence})
    predictions = load_predictions(frame)
    interval = stats.ece_ci(predictions, n_resamples=999)
    assert interval["plug_in"] == pytest.approx(ece)
    assert interval["low"] < interval["estimate"] < interval["high"] and interval["n_resamples"] == 999


def test_headline_metrics_carry_ece_and_macro_f1_cis_with_9999_resamples():
    headline = stats.headline_metrics(scored([1, 0, 1, 1, 0, 1, 1, 1]))
    assert headline["macro_f1_ci"]["n_resamples"] == 9999 and headline["ece_ci"]["n_resamples"] == 9999


# ---------------------------------------------------------------- overfitting, measured


def measured_history(train_accuracy, val_accuracy, train_loss, val_loss):
    return pandas.DataFrame({"epoch": range(1, len(val_loss) + 1), "train_eval_accuracy": train_accuracy,
                             "val_accuracy": val_accuracy, "train_eval_loss": train_loss, "val_loss": val_loss})


def test_measured_gap_by_hand():
    history = measured_history([0.5, 0.7, 0.9], [0.45, 0.6, 0.7], [1.0, 0.6, 0.3], [1.1, 0.8, 0.9])
    gap = overfitting.measured_gap(history)
    assert list(gap["accuracy_gap"]) == pytest.approx([0.05, 0.1, 0.2])
    assert list(gap["loss_gap"]) == pytest.approx([0.1, 0.2, 0.6])
    assert overfitting.best_validation_epoch(history) == 2
    with pytest.raises(UserError, match="TrainSetEvaluation"):
        overfitting.measured_gap(history.drop(columns=["train_eval_accuracy"]))


def falling(gap, seed):
    """A run whose validation loss still falls at its last epoch, with last-epoch accuracy gap ``gap``."""
    return measured_history([0.5, 0.6 + gap], [0.5, 0.6], [1.0, 0.8 - seed / 100], [1.1, 0.9])


def test_no_run_past_its_best_epoch_is_not_assessable():
    histories = {(name, seed): falling(0.1 if name == "VGG16" else 0.05, seed)
                 for name in ("VGG16", "ResNet50") for seed in range(3)}
    assessment = overfitting.overfitting_assessment(overfitting.measured_gap_frame(histories), ("VGG16", "ResNet50"))
    assert not assessment["assessable"] and assessment["reason"] == overfitting.NOT_ASSESSABLE
    assert assessment["passed_best"] == {"VGG16": [0, 3], "ResNet50": [0, 3]}
    sentence = verdicts.overfitting_sentence(assessment, 150, weights_random=True)
    assert sentence.startswith("Overfitting not assessable: validation loss still falling at the last epoch in all "
                               "6 runs")
    assert "say nothing about the study's ImageNet-trained models" in sentence and "impression" not in sentence


def past_best(gap, seed):
    """A run whose validation loss rose after epoch 2, with last-epoch accuracy gap ``gap``."""
    return measured_history([0.5, 0.7, 0.7 + gap], [0.5, 0.65, 0.7], [1.0, 0.7, 0.5 - seed / 100], [1.1, 0.8, 0.9])


@pytest.mark.parametrize("seeds, p_value, call", [(3, 0.25, "not evidence"), (6, 2 / 64, "evidence that ResNet50's")])
def test_sign_test_over_seeds_agrees_with_binomtest_and_says_no_more(seeds, p_value, call):
    histories = {(name, seed): past_best(0.05 if name == "VGG16" else 0.1 + seed / 100, seed)
                 for name in ("VGG16", "ResNet50") for seed in range(seeds)}
    assessment = overfitting.overfitting_assessment(overfitting.measured_gap_frame(histories), ("VGG16", "ResNet50"))
    test = assessment["sign_test"]
    assert assessment["assessable"] and test["larger"] == seeds
    assert test["p_value"] == pytest.approx(p_value) == pytest.approx(scipy_stats.binomtest(seeds, seeds).pvalue)
    assert test["smallest_possible_p"] == pytest.approx(2 / 2**seeds)
    sentence = verdicts.overfitting_sentence(assessment, 150)
    assert f"bottomed out before the last epoch in {2 * seeds} of {2 * seeds} runs" in sentence and call in sentence
    assert ("no outcome can reach p < 0.05" in sentence) == (seeds == 3)


def test_train_set_evaluation_logs_end_of_epoch_scores():
    keras.utils.set_random_seed(0)
    rng = numpy.random.default_rng(0)
    x, x_val = rng.normal(size=(40, 5)).astype("float32"), rng.normal(size=(10, 5)).astype("float32")
    y, y_val = (x[:, 0] > 0).astype("int64"), (x_val[:, 0] > 0).astype("int64")
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    callback = TrainSetEvaluation(lambda indices: x[indices], y, batch_size=8)
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=2, batch_size=8, callbacks=[callback],
                        verbose=0, shuffle=False).history
    assert len(history["train_eval_loss"]) == 2 and len(history["train_eval_accuracy"]) == 2
    final = model.evaluate(x, y, verbose=0, return_dict=True)  # last epoch's end weights are the final weights
    assert history["train_eval_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    assert history["train_eval_accuracy"][-1] == pytest.approx(final["accuracy"])
    assert history["val_loss"][-1] == pytest.approx(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"],
                                                    rel=1e-5)
    as_array = TrainSetEvaluation(x, y, batch_size=8)
    as_array.set_model(model)
    assert as_array.evaluate() == pytest.approx(callback.evaluate())
    with pytest.raises(ValueError, match="40 inputs but 3 labels"):
        TrainSetEvaluation(x, y[:3])



def test_a_run_scores_a_fixed_draw_of_its_training_images_when_it_has_more_than_the_limit():
    drawn = train_evaluation.scored_images(1158, 300, seed=4)
    assert len(drawn) == 300 and len(set(drawn)) == 300 and list(drawn) == sorted(drawn) and drawn.max() < 1158
    numpy.testing.assert_array_equal(drawn, train_evaluation.scored_images(1158, 300, seed=4))
    assert not numpy.array_equal(drawn, train_evaluation.scored_images(1158, 300, seed=5))
    numpy.testing.assert_array_equal(train_evaluation.scored_images(40, 300, seed=4), numpy.arange(40))
    numpy.testing.assert_array_equal(train_evaluation.scored_images(40, 0, seed=4), numpy.arange(40))

    rng = numpy.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 2, 40)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    config = TrainConfig(seed=2, score_train_images=10)
    (callback,) = train_evaluation.for_run(lambda indices: x[indices], y, config, batch_size=4)
    callback.set_model(model)
    chosen = train_evaluation.scored_images(40, 10, seed=2)
    expected = model.evaluate(x[chosen], y[chosen], verbose=0, return_dict=True)
    assert callback.evaluate()["train_eval_loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert train_evaluation.for_run(lambda indices: x[indices], y, TrainConfig(score_train_set=False), 4) == ()

# ---------------------------------------------------------------- run card


def git(root, *arguments):
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *arguments], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def repository(tmp_path):
    for folder in ("heroes", "notebooks", "reports"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "file.txt").write_text("one\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_run_card_names_the_commit_and_a_dirty_tree(repository):
    card = run_card.run_card([0, 1, 2], wall_time_s=12.5, command="make reproduce SEEDS=3", root=repository)
    assert len(card["commit"]) == 40 and card["dirty"] is False and card["seeds"] == [0, 1, 2]
    assert card["command"] == "make reproduce SEEDS=3" and "bf16_native" in card["hardware"]
    (repository / "reports" / "file.txt").write_text("two\n")  # reports are outputs: not a dirty tree
    assert run_card.git_state(repository)["dirty"] is False
    (repository / "heroes" / "file.txt").write_text("two\n")
    state = run_card.git_state(repository)
    assert state["dirty"] is True and state["dirty_paths"] == ["heroes/file.txt"]


def test_check_reports_says_when_code_changed_after_the_card_commit(repository):
    commit = run_card.git_state(repository)["commit"]
    metrics = repository / "reports" / "metrics"
    metrics.mkdir()
    (metrics / "04-vgg-vs-resnet.json").write_text(f'{{"run_card": {{"commit": "{commit}"}}}}')
    assert run_card.check_reports(repository / "reports", repository) == []
    (repository / "notebooks" / "file.txt").write_text("two\n")
    git(repository, "commit", "-q", "-am", "second")
    problems = run_card.check_reports(repository / "reports", repository)
    assert len(problems) == 1 and "notebooks/file.txt" in problems[0] and commit[:12] in problems[0]
    assert "names no commit" in run_card.changed_since(None, repository)
    assert "cannot compare" in run_card.changed_since("0" * 40, repository)
