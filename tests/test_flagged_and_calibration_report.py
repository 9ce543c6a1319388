"""Notebook 04's two added reports: the test split scored with and without flagged images, and proper scores."""

import numpy
import pandas

from heroes.evaluation import calibration, flagged, grid
from heroes.evaluation.predictions import load_predictions
from heroes.reporting import verdicts


def _predictions(paths, correct, classes=("a", "b")):
    probability = numpy.where(numpy.asarray(correct), 0.8, 0.3)
    return pandas.DataFrame({"path": paths, "sha256": [f"sha-{path}" for path in paths],
                             "label": ["a"] * len(paths), "predicted": ["a" if ok else "b" for ok in correct],
                             "correct": correct, "prob_a": probability, "prob_b": 1 - probability})


def test_flagged_test_effect_scores_every_image_and_then_without_the_flagged_ones():
    splits = pandas.DataFrame({"path": ["p0", "p1", "p2", "p3"], "sha256": ["sha-p0", "sha-p1", "sha-p2", "sha-p3"],
                               "split": ["test"] * 4, "pending_review": [False, True, False, True]})
    frames = {0: _predictions(["p0", "p1", "p2", "p3"], [True, False, True, False]),
              1: _predictions(["p0", "p1", "p2", "p3"], [True, True, False, False])}
    model = {seed: load_predictions(frame) for seed, frame in frames.items()}
    effect = grid.flagged_test_effect({"Net": model}, {0: splits, 1: splits}).iloc[0]
    assert effect["images"] == 8 and effect["flagged"] == 4
    assert effect["accuracy_all"] == 4 / 8 and effect["accuracy_unflagged"] == 3 / 4  # p0 twice, p2 once
    runs = [flagged.score_both_ways(frame, splits) for frame in frames.values()]  # one run, as `train` scores it
    assert runs[0] == flagged.BothWays(images=4, flagged=2, correct=2, correct_unflagged=2)
    assert (runs[0] + runs[1]).row() == {key: effect[key] for key in ("images", "flagged", "accuracy_all",
                                                                      "accuracy_unflagged")}
    sentence = verdicts.flagged_test_sentence(grid.flagged_test_effect({"Net": model}, {0: splits, 1: splits}))
    assert "Net 50.0% → 75.0% (+25.0 points)" in sentence and "4 of the 8" in sentence


def test_no_flagged_image_means_one_score():
    splits = pandas.DataFrame({"path": ["p0"], "sha256": ["sha-p0"], "split": ["test"], "pending_review": [False]})
    effect = grid.flagged_test_effect({"Net": {0: load_predictions(_predictions(["p0"], [True]))}}, {0: splits})
    assert verdicts.flagged_test_sentence(effect).startswith("No test image waits for review")


def test_calibration_sentence_calls_a_difference_only_when_its_interval_excludes_zero():
    paths = [f"p{index}" for index in range(60)]
    sharp = load_predictions(_predictions(paths, [True] * 60))
    vague = load_predictions(_predictions(paths, [True] * 60).assign(prob_a=0.55, prob_b=0.45))  # right as often, far less sure: worse Brier and log loss
    result = calibration.compare_calibration(vague, sharp, ("Vague", "Sharp"), n_resamples=199)
    sentence = verdicts.calibration_sentence(result, "seed 0")
    assert "Sharp is better calibrated by this score" in sentence and "(seed 0)" in sentence
    assert "Sharp − Vague = −0.325 (95% CI −0.325 to −0.325)" in sentence and "-0." not in sentence  # typeset minus
    same = calibration.compare_calibration(sharp, sharp, ("A", "B"), n_resamples=199)
    assert verdicts.calibration_sentence(same).count("no evidence of a difference") == 2
    assert "B − A = 0.000 (95% CI 0.000 to 0.000)" in verdicts.calibration_sentence(same)  # zero has no sign
