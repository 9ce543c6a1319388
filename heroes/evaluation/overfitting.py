"""Overfitting measured: training-set scores with end-of-epoch weights against validation, per epoch, per seed.

Keras' ``loss``/``accuracy`` in a history are running means over an epoch while the weights change, so they lag
the end-of-epoch weights that ``val_*`` scores; their gap to validation is biased. The gaps here use
``train_eval_loss``/``train_eval_accuracy``: training images (all, or a fixed draw of 300,
``TrainConfig.score_train_images``) re-scored with the end-of-epoch weights
(``heroes.training.train_evaluation.TrainSetEvaluation``). Sign: both gaps are positive when the model does
better on the images it trained on (accuracy: train - validation; loss: validation - train).
"""

import math

import pandas
from scipy import stats

from heroes.errors import UserError

TRAIN_EVAL_COLUMNS = ("train_eval_loss", "train_eval_accuracy")
MEASURED_COLUMNS = ("epoch", *TRAIN_EVAL_COLUMNS, "val_loss", "val_accuracy")
NOT_ASSESSABLE = "not assessable: validation loss still falling at the last epoch"


def measured_gap(history: pandas.DataFrame) -> pandas.DataFrame:
    """Per epoch: ``accuracy_gap`` (train - val accuracy) and ``loss_gap`` (val - train loss), both from the
    training images re-scored with end-of-epoch weights; the history's scores and extra columns are kept."""
    missing = [column for column in MEASURED_COLUMNS if column not in history.columns]
    if missing:
        raise UserError(f"training history lacks column(s) {', '.join(missing)}: train with the "
                        "TrainSetEvaluation callback (heroes.training.train_evaluation), which re-scores the "
                        "training set after each epoch; Keras' running training accuracy is not a measurement")
    gap = history.copy()
    gap["accuracy_gap"] = history["train_eval_accuracy"] - history["val_accuracy"]
    gap["loss_gap"] = history["val_loss"] - history["train_eval_loss"]
    return gap


def measured_gap_frame(histories: dict) -> pandas.DataFrame:
    """``measured_gap`` of every run in one frame with ``model`` and ``seed`` columns; keys are (model, seed)."""
    frames = []
    for (name, seed), history in histories.items():
        gap = measured_gap(history)
        gap.insert(0, "seed", seed)
        gap.insert(0, "model", name)
        frames.append(gap)
    if not frames:
        raise UserError("measured_gap_frame got no runs")
    return pandas.concat(frames, ignore_index=True)


def best_validation_epoch(history: pandas.DataFrame) -> int:
    """The epoch (1-based, as in ``epoch``) of the lowest validation loss; the first one on a tie, as training keeps."""
    return int(history["epoch"].iloc[int(history["val_loss"].to_numpy().argmin())])


def run_table(gaps: pandas.DataFrame) -> pandas.DataFrame:
    """One row per run: best validation epoch, last epoch, whether it passed its best, and the gaps at both."""
    rows = []
    for (name, seed), run in gaps.groupby(["model", "seed"], sort=False):
        run = run.sort_values("epoch")
        best = best_validation_epoch(run)
        at_best, last = run[run["epoch"] == best].iloc[0], run.iloc[-1]
        rows.append({"model": name, "seed": seed, "best epoch": best, "last epoch": int(last["epoch"]),
                     "passed best": bool(best < last["epoch"]), "accuracy gap at best": at_best["accuracy_gap"],
                     "accuracy gap at last": last["accuracy_gap"], "loss gap at last": last["loss_gap"]})
    return pandas.DataFrame(rows)


def sign_test(runs: pandas.DataFrame, names, column="accuracy gap at last") -> dict:
    """Two-sided sign test over seeds of B's gap minus A's (``scipy.stats.binomtest``; ties dropped).

    With n seeds the smallest possible p is 2 / 2^n: three seeds can never give p < 0.05.
    """
    first, second = (runs[runs["model"] == name].set_index("seed")[column] for name in names)
    seeds = [seed for seed in first.index if seed in second.index]
    differences = [float(second[seed] - first[seed]) for seed in seeds]
    larger = sum(value > 0 for value in differences)
    untied = sum(value != 0 for value in differences)
    p_value = float(stats.binomtest(larger, untied, 0.5).pvalue) if untied else 1.0
    return {"seeds": seeds, "differences": differences, "larger": larger, "untied": untied, "p_value": p_value,
            "smallest_possible_p": min(1.0, 2 * 0.5**untied) if untied else 1.0, "column": column}


def overfitting_assessment(gaps: pandas.DataFrame, names) -> dict:
    """Whether the runs can say anything about overfitting, and what: JSON-ready.

    ``gaps``: ``measured_gap_frame``; ``names``: (A, B). ``assessable`` is False when no run passed its best
    validation epoch (validation loss still falling at the last epoch: no run reached the regime where
    overfitting shows); ``sign_test`` compares B's last-epoch accuracy gap with A's, seed by seed.
    """
    runs = run_table(gaps)
    unknown = [name for name in names if name not in set(runs["model"])]
    if unknown:
        raise UserError(f"no runs of {', '.join(unknown)} among the gaps (models: {', '.join(runs['model'].unique())})")
    passed = {name: [int(v) for v in runs[runs["model"] == name]["passed best"]] for name in names}
    assessable = bool(runs["passed best"].any())
    mean_gap = {name: float(runs[runs["model"] == name]["accuracy gap at last"].mean()) for name in names}
    return {"names": list(names), "assessable": assessable, "reason": "" if assessable else NOT_ASSESSABLE,
            "passed_best": {name: [sum(values), len(values)] for name, values in passed.items()},
            "mean_accuracy_gap_at_last": {name: (value if not math.isnan(value) else None)
                                          for name, value in mean_gap.items()},
            "sign_test": sign_test(runs, names), "runs": runs.to_dict(orient="records")}
