"""Metrics, confidence intervals and paired tests over stored predictions; pure functions, no TensorFlow."""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas
from scipy import stats
from sklearn import metrics as skmetrics

from heroes.config import DISPLAY_NAMES
from heroes.errors import UserError

PROB_PREFIX = "prob_"
REQUIRED_COLUMNS = ("path", "sha256", "label", "predicted")
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
# Below this many discordant pairs the chi-square approximation of McNemar's test is poor (Rosner; statsmodels).
EXACT_MCNEMAR_BELOW = 25
# A softmax written to CSV as float32 text sums to 1 only to about 1e-6; anything further off is not a probability.
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Predictions:
    """One run's predictions on a fixed, ordered test set: row i of every array is the same image."""

    paths: np.ndarray  # (N,) str
    sha256: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int, index into class_names
    probabilities: np.ndarray  # (N, K) float, rows sum to 1
    class_names: tuple  # K names, in the column order of the table
    source: str = "predictions"

    def __len__(self):
        return len(self.labels)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def confidence(self) -> np.ndarray:
        """Top-label probability: what the model claims about the class it picked."""
        return self.probabilities.max(axis=1)

    def take(self, order) -> "Predictions":
        """The same predictions with rows reordered (or subset) by ``order``."""
        return Predictions(self.paths[order], self.sha256[order], self.labels[order],
                           self.probabilities[order], self.class_names, self.source)


# ---------------------------------------------------------------- loading


def _read_table(source):
    """A DataFrame and a description of where it came from; a run directory means its predictions.csv."""
    if isinstance(source, pandas.DataFrame):
        return source.copy(), "predictions table"
    path = Path(source)
    if path.is_dir():
        if not (path / "predictions.csv").is_file():
            raise UserError(f"run directory {path} has no predictions.csv: re-run training for this run")
        path = path / "predictions.csv"
    if not path.is_file():
        raise UserError(f"predictions file {path} not found: re-run training, which writes it beside the model")
    try:
        return pandas.read_csv(path, dtype={"path": str, "sha256": str, "label": str, "predicted": str},
                               keep_default_na=False), str(path)
    except (pandas.errors.ParserError, pandas.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"predictions file {path} is not a readable CSV: {error}") from None


def _class_index(class_names):
    """Map every spelling of a class (folder name or display name) to its column index."""
    index = {}
    display_to_folder = {display: folder for folder, display in DISPLAY_NAMES.items()}
    for position, name in enumerate(class_names):
        for alias in (name, DISPLAY_NAMES.get(name), display_to_folder.get(name)):
            if alias is not None:
                index.setdefault(alias, position)
    return index


def _encode(values, class_names, column, origin):
    """Class names (or integer indices) in ``column`` as integer indices into ``class_names``."""
    index = _class_index(class_names)
    values = [str(value) for value in values]
    if all(value.lstrip("-").isdigit() for value in values) and not any(value in index for value in values):
        codes = np.array([int(value) for value in values])
        if codes.min() < 0 or codes.max() >= len(class_names):
            raise UserError(f"{origin}: column {column!r} has class indices outside 0..{len(class_names) - 1}")
        return codes
    unknown = sorted({value for value in values if value not in index})
    if unknown:
        raise UserError(f"{origin}: column {column!r} has classes with no probability column: "
                        f"{', '.join(unknown[:5])} (columns: {', '.join(class_names)})")
    return np.array([index[value] for value in values])


def _probabilities(frame, columns, origin):
    """The probability block as floats, checked to be finite rows of probabilities, renormalised."""
    try:
        block = frame[columns].astype(float).to_numpy()
    except ValueError as error:
        raise UserError(f"{origin}: probability columns are not all numbers ({error})") from None
    if not np.isfinite(block).all() or (block < 0).any():
        raise UserError(f"{origin}: probabilities must be finite and non-negative")
    sums = block.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
    if bad.size:
        raise UserError(f"{origin}: probabilities of {bad.size} row(s) do not sum to 1 "
                        f"(row {bad[0]} sums to {sums[bad[0]]:.4f}): store softmax outputs, not logits")
    return block / sums[:, None]


def _check_predicted(predicted, probabilities, paths, origin):
    """Refuse a table whose ``predicted`` column disagrees with its own probabilities (ties excepted)."""
    rows = np.arange(len(predicted))
    off = np.flatnonzero(probabilities[rows, predicted] < probabilities.max(axis=1) - 1e-6)
    if off.size:
        raise UserError(f"{origin}: column 'predicted' disagrees with the most probable class on {off.size} "
                        f"row(s), first {paths[off[0]]}: the table was not written by one model")


def load_predictions(source) -> Predictions:
    """Read and validate a predictions table (run directory, CSV path or DataFrame) into ``Predictions``."""
    frame, origin = _read_table(source)
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    prob_columns = [column for column in frame.columns if str(column).startswith(PROB_PREFIX)]
    if len(prob_columns) < 2:
        missing.append(f"{PROB_PREFIX}<class> (one per class, at least 2)")
    if missing:
        raise UserError(f"{origin} lacks required column(s): {', '.join(missing)}")
    if frame.empty:
        raise UserError(f"{origin} has no rows: the test set was empty")
    duplicated = frame["path"][frame["path"].duplicated()]
    if not duplicated.empty:
        raise UserError(f"{origin}: path {duplicated.iloc[0]} appears more than once")
    class_names = tuple(column[len(PROB_PREFIX):] for column in prob_columns)
    probabilities = _probabilities(frame, prob_columns, origin)
    labels = _encode(frame["label"], class_names, "label", origin)
    paths = frame["path"].astype(str).to_numpy()
    _check_predicted(_encode(frame["predicted"], class_names, "predicted", origin), probabilities, paths, origin)
    return Predictions(paths, frame["sha256"].astype(str).to_numpy(), labels, probabilities, class_names, origin)


# ---------------------------------------------------------------- calibration


def reliability_table(confidence, correct, n_bins=10) -> pandas.DataFrame:
    """Per equal-width confidence bin on [0, 1]: count, mean confidence and accuracy (NaN when empty).

    Bins are [lo, hi) except the last, which is [0.9, 1.0] with ten bins (``scipy.stats.binned_statistic``).
    """
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = stats.binned_statistic(confidence, correct, "count", bins=edges).statistic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty bins: mean of nothing is NaN, which we want
        mean_confidence = stats.binned_statistic(confidence, confidence, "mean", bins=edges).statistic
        accuracy = stats.binned_statistic(confidence, correct, "mean", bins=edges).statistic
    return pandas.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": count.astype(int),
                             "confidence": mean_confidence, "accuracy": accuracy})


def expected_calibration_error(confidence, correct, n_bins=10) -> float:
    """Top-label ECE: sum over bins of (bin share of images) x |accuracy - mean confidence|.

    Written here because sklearn only has binary ``calibration_curve`` and no ECE; torchmetrics and netcal
    would pull in heavy dependencies for one weighted average (Guo et al., 2017, equation 3).
    """
    table = reliability_table(confidence, correct, n_bins)
    used = table[table["count"] > 0]
    return float((used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum() / table["count"].sum())


# ---------------------------------------------------------------- point metrics


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
    return np.unique(predictions.labels)


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
        "roc_auc_ovr_macro": float(np.nanmean(auc)) if not np.isnan(auc).all() else math.nan,
        "log_loss": float(skmetrics.log_loss(labels, predictions.probabilities, labels=every)),
        "ece": expected_calibration_error(predictions.confidence, predictions.correct, n_bins),
        "n_bins": n_bins,
        "reliability": table.to_dict(orient="list"),
        "notes": notes,
    }


def per_class_frame(metrics) -> pandas.DataFrame:
    """The ``per_class`` part of ``classification_metrics`` as a table, one row per class."""
    return pandas.DataFrame.from_dict(metrics["per_class"], orient="index").rename_axis("class").reset_index()


# ---------------------------------------------------------------- confidence intervals


def clopper_pearson(successes, n, confidence_level=0.95) -> tuple:
    """Exact binomial CI of a proportion; unlike the bootstrap it stays honest at 0% or 100%."""
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level, method="exact")
    return float(interval.low), float(interval.high)


def _macro_f1_vectorised(y_true, y_pred, classes, axis=-1):
    """Macro-F1 along ``axis`` for many bootstrap resamples at once; equals sklearn's with zero_division=0."""
    scores = []
    for k in classes:
        truth, guess = y_true == k, y_pred == k
        tp = np.sum(truth & guess, axis=axis)
        denominator = 2 * tp + np.sum(truth ^ guess, axis=axis)  # 2TP + FP + FN
        scores.append(np.divide(2 * tp, denominator, out=np.zeros(np.shape(tp)), where=denominator > 0))
    return np.mean(scores, axis=0)


def bootstrap_ci(statistic, data, *, n_resamples=9999, confidence_level=0.95, seed=0, method="BCa") -> dict:
    """Paired bootstrap CI with ``scipy.stats.bootstrap``: rows of every array in ``data`` are resampled together.

    BCa by default (better coverage than percentile for skewed statistics such as accuracy near 100%). BCa is
    undefined when every resample gives the same value (e.g. all predictions correct); then the percentile
    interval is used, which collapses to a point, and ``note`` says so.
    """
    data = tuple(np.asarray(array) for array in data)
    if len(data[0]) < 2:
        raise UserError(f"a bootstrap needs at least 2 test images, got {len(data[0])}")
    estimate = float(statistic(*data, axis=-1))

    def run(how):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degeneracy is detected from the NaN result below, then explained
            result = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence_level,
                                     method=how, paired=True, vectorized=True, rng=np.random.default_rng(seed))
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high, note = *run(method), ""
    if method == "BCa" and not (np.isfinite(low) and np.isfinite(high)):
        low, high, method = *run("percentile"), "percentile"
        note = ("BCa undefined because every resample gives the same value; percentile interval used, and it "
                "collapses to a point: see the exact binomial interval for accuracy")
    return {"estimate": estimate, "low": low, "high": high, "method": method, "confidence_level": confidence_level,
            "n_resamples": n_resamples, "seed": seed, "note": note}


def _mean(values, axis=-1):
    return np.mean(values, axis=axis)


def accuracy_ci(predictions, **options) -> dict:
    """Bootstrap CI of accuracy (see ``bootstrap_ci`` for options); add ``clopper_pearson`` for the exact one."""
    return bootstrap_ci(_mean, (predictions.correct.astype(float),), **options)


def macro_f1_ci(predictions, **options) -> dict:
    """Bootstrap CI of macro-F1, resampling images (label and prediction together)."""
    classes = _present_classes(predictions)
    return bootstrap_ci(lambda y, p, axis=-1: _macro_f1_vectorised(y, p, classes, axis),
                        (predictions.labels, predictions.predicted), **options)


def difference_ci(predictions_a, predictions_b, metric="accuracy", **options) -> dict:
    """Paired bootstrap CI of metric(A) - metric(B) on the same test images, resampled jointly."""
    a, b = align(predictions_a, predictions_b)
    if metric == "accuracy":
        return bootstrap_ci(lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                            (a.correct.astype(float), b.correct.astype(float)), **options)
    if metric == "macro_f1":
        classes = _present_classes(a)
        return bootstrap_ci(lambda y, p, q, axis=-1: _macro_f1_vectorised(y, p, classes, axis)
                            - _macro_f1_vectorised(y, q, classes, axis), (a.labels, a.predicted, b.predicted),
                            **options)
    raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")


# ---------------------------------------------------------------- paired comparison


def _keys(predictions):
    """Image identity: sha256 when every row has a distinct one, else the path."""
    sha = predictions.sha256
    if all(sha) and len(set(sha)) == len(sha):
        return sha, "sha256"
    return predictions.paths, "path"


def _same_classes(a, b):
    """B's probability columns in A's class order; refuse when the two models know different classes."""
    if set(a.class_names) != set(b.class_names):
        raise UserError(f"cannot compare {a.source} and {b.source}: different classes "
                        f"({', '.join(a.class_names)} vs {', '.join(b.class_names)})")
    columns = [b.class_names.index(name) for name in a.class_names]
    remap = np.argsort(columns)  # old index in b -> new index in a's order
    return Predictions(b.paths, b.sha256, remap[b.labels], b.probabilities[:, columns], a.class_names, b.source)


def align(predictions_a, predictions_b) -> tuple:
    """The two predictions on the same images in A's order; ``UserError`` when the test sets differ."""
    a, b = predictions_a, _same_classes(predictions_a, predictions_b)
    (keys_a, kind_a), (keys_b, kind_b) = _keys(a), _keys(b)
    if kind_a != kind_b:
        keys_a, keys_b, kind_a = a.paths, b.paths, "path"
    if set(keys_a) != set(keys_b) or len(keys_a) != len(keys_b):
        only_a, only_b = len(set(keys_a) - set(keys_b)), len(set(keys_b) - set(keys_a))
        raise UserError(f"refusing to compare {a.source} and {b.source}: they were evaluated on different test "
                        f"sets ({len(a)} vs {len(b)} images; {only_a} only in the first, {only_b} only in the "
                        f"second, matched by {kind_a}); a paired comparison needs the same images")
    position = {key: row for row, key in enumerate(keys_b)}
    b = b.take(np.array([position[key] for key in keys_a]))
    differ = np.flatnonzero(a.labels != b.labels)
    if differ.size:
        raise UserError(f"refusing to compare {a.source} and {b.source}: {differ.size} image(s) carry different "
                        f"labels, first {a.paths[differ[0]]}; the test sets were labelled differently")
    return a, b


def mcnemar(predictions_a, predictions_b, exact_below=EXACT_MCNEMAR_BELOW) -> dict:
    """McNemar's test on discordant pairs: exact binomial when fewer than ``exact_below``, else chi-square (CC).

    b counts images A gets right and B wrong; c the reverse. Two-sided.
    """
    a, b = align(predictions_a, predictions_b)
    only_a = int(np.sum(a.correct & ~b.correct))
    only_b = int(np.sum(~a.correct & b.correct))
    discordant = only_a + only_b
    if discordant == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact",
                "note": "no discordant pairs: the two models err on exactly the same images"}
    if discordant < exact_below:
        p_value = stats.binomtest(only_a, discordant, 0.5).pvalue
        return {"b": only_a, "c": only_b, "statistic": float(min(only_a, only_b)), "p_value": float(p_value),
                "method": "exact", "note": ""}
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant  # Edwards' continuity correction
    return {"b": only_a, "c": only_b, "statistic": float(statistic), "p_value": float(stats.chi2.sf(statistic, 1)),
            "method": "chi-square, continuity-corrected", "note": ""}


def _model_summary(predictions, options):
    correct = int(predictions.correct.sum())
    return {"accuracy": correct / len(predictions), "correct": correct,
            "accuracy_ci_exact": clopper_pearson(correct, len(predictions)),
            "accuracy_ci_bootstrap": accuracy_ci(predictions, **options),
            "macro_f1": macro_f1(predictions), "macro_f1_ci": macro_f1_ci(predictions, **options)}


def compare_models(predictions_a, predictions_b, names=("model A", "model B"), **options) -> dict:
    """Both models' accuracy and macro-F1 with CIs, paired bootstrap CIs of A - B, McNemar, and the verdict.

    ``options`` go to ``bootstrap_ci`` (n_resamples, confidence_level, seed, method).
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different model names, got {names!r}")
    a, b = align(predictions_a, predictions_b)
    difference = difference_ci(a, b, "accuracy", **options)
    test = mcnemar(a, b)
    comparison = {
        "n": len(a), "names": list(names),
        "models": {names[0]: _model_summary(a, options), names[1]: _model_summary(b, options)},
        "accuracy_difference": difference,
        "macro_f1_difference": difference_ci(a, b, "macro_f1", **options),
        "mcnemar": test,
        "supports_difference": bool((difference["low"] > 0 or difference["high"] < 0) and test["p_value"] < 0.05),
    }
    comparison["verdict"] = verdict_sentence(comparison)
    return comparison


def _percent(value):
    return f"{100 * value:.1f}"


def _signed(value):
    """Percentage points with a real minus sign, as typeset; a bound that rounds to zero is "0.0", not "−0.0"."""
    text = f"{100 * value:.1f}"
    return "0.0" if float(text) == 0 else text.replace("-", "−")


def _p(value):
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def _difference_clause(comparison):
    """'the difference of X points in L's favour (95% CI lo to hi; test p)', oriented leader minus the other."""
    difference, test = comparison["accuracy_difference"], comparison["mcnemar"]
    sign = -1 if difference["estimate"] < 0 else 1
    leader = comparison["names"][0] if sign > 0 else comparison["names"][1]
    low, high = sorted((sign * difference["low"], sign * difference["high"]))
    favour = f" in {leader}'s favour" if difference["estimate"] != 0 else ""
    test_name = "exact McNemar" if test["method"] == "exact" else "McNemar chi-square"
    return (f"the difference of {_percent(abs(difference['estimate']))} points{favour} "
            f"({100 * difference['confidence_level']:.0f}% CI {_signed(low)} to {_signed(high)}; "
            f"{test_name} {_p(test['p_value'])})"), leader


def verdict_sentence(comparison) -> str:
    """One plain sentence from ``compare_models``: accuracies with exact 95% CIs, the paired difference, the call."""
    (name_a, name_b), models, test = comparison["names"], comparison["models"], comparison["mcnemar"]
    scored = [f"{_percent(models[name]['accuracy'])}% [{_percent(models[name]['accuracy_ci_exact'][0])}, "
              f"{_percent(models[name]['accuracy_ci_exact'][1])}]" for name in (name_a, name_b)]
    clause, leader = _difference_clause(comparison)
    difference = comparison["accuracy_difference"]
    excludes_zero = difference["low"] > 0 or difference["high"] < 0
    if test["b"] + test["c"] == 0:  # a bootstrap interval of [0, 0] would read as certainty; say what it means
        clause = "both models are right and wrong on exactly the same images (no discordant pairs, p = 1), so"
        call = "these data cannot tell them apart"
    elif comparison["supports_difference"]:
        call = f"is evidence that {leader} is more accurate than {name_b if leader == name_a else name_a}"
    elif excludes_zero or test["p_value"] < 0.05:
        call = "is not clear evidence of a real difference: the bootstrap interval and McNemar's test disagree"
    else:
        call = "is not evidence of a real difference"
    return f"On {comparison['n']} test images {name_a} scored {scored[0]} and {name_b} {scored[1]}; {clause} {call}."


# ---------------------------------------------------------------- seeds, overfitting, tables


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
    return {"n_seeds": len(values), "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)),
            "values": values, "note": ""}


def overfitting_gap(history_frame) -> pandas.DataFrame:
    """Per epoch: train minus validation accuracy (positive = overfitting) and loss (negative = overfitting).

    Extra columns (run, seed, model...) are kept so several runs can share one frame.
    """
    missing = [column for column in HISTORY_COLUMNS if column not in history_frame.columns]
    if missing:
        raise UserError(f"training history lacks column(s) {', '.join(missing)}: was it fitted with "
                        "validation_data and metrics=['accuracy']?")
    gap = history_frame.drop(columns=["loss", "accuracy", "val_loss", "val_accuracy"]).copy()
    gap["train_minus_val_accuracy"] = history_frame["accuracy"] - history_frame["val_accuracy"]
    gap["train_minus_val_loss"] = history_frame["loss"] - history_frame["val_loss"]
    return gap


def _interval(pair):
    if pair is None or len(pair) != 2 or any(value is None or np.isnan(value) for value in pair):
        return ""
    return f"[{_percent(pair[0])}, {_percent(pair[1])}]"


def _get(run, key):
    """``run[key]``, where ``key`` may be dotted into a nested dict (``model.total_parameters``); None if absent."""
    for part in key.split("."):
        if not isinstance(run, dict) or run.get(part) is None:
            return None
        run = run[part]
    return run


def _number(run, keys, scale=1.0):
    """The first of ``keys`` present in ``run`` as a float times ``scale``; NaN when none is."""
    for key in keys:
        value = _get(run, key)
        if value is not None:
            return float(value) * scale
    return math.nan


# Column -> keys tried in order. Names follow heroes.train's metrics.json (test_n, train_time_s...) and config.json
# ("model": describe_model); latency and size on disk are measured by whoever builds the table and merged in.
TABLE_FIELDS = {
    "macro-F1": ("macro_f1",), "ECE": ("ece",),
    "parameters": ("total_parameters", "model.total_parameters"),
    "trainable": ("trainable_parameters", "model.trainable_parameters"),
    "feature extraction (s)": ("feature_time_s",), "training time (s)": ("train_time_s",),
    "latency (ms/image)": ("latency_ms_per_image",),
}


def _accuracy_text(run):
    accuracy = _get(run, "test_accuracy")
    if accuracy is None:
        return ""
    text = f"{_percent(accuracy)}%"
    if (_get(run, "n_seeds") or 1) >= 2 and _get(run, "test_accuracy_std") is not None:
        text += f" ± {_percent(run['test_accuracy_std'])} ({run['n_seeds']} seeds)"
    return text


def comparison_table(runs) -> pandas.DataFrame:
    """One row per model from ``{model name: merged metrics dict}``; formats, measures nothing.

    Reads ``test_n``, ``test_accuracy``, ``test_accuracy_ci`` ([low, high] as fractions; ``headline_metrics``
    gives the exact one), optional ``test_accuracy_std`` with ``n_seeds`` (shown as ± over seeds when >= 2),
    ``model_bytes`` and the keys of ``TABLE_FIELDS``. Missing values show as NaN / <NA>, never as zero.
    """
    rows = []
    for name, run in runs.items():
        row = {"model": name, "test images": _get(run, "test_n"), "test accuracy": _accuracy_text(run),
               "95% CI": _interval(_get(run, "test_accuracy_ci"))}
        row.update({column: _number(run, keys) for column, keys in TABLE_FIELDS.items()})
        row["size on disk (MB)"] = _number(run, ("model_bytes",), 1e-6)
        rows.append(row)
    table = pandas.DataFrame(rows)
    for column in ("test images", "parameters", "trainable"):
        table[column] = pandas.to_numeric(table[column]).astype("Int64")  # counts, not floats; NaN stays <NA>
    return table.round({"macro-F1": 3, "ECE": 3, "feature extraction (s)": 1, "training time (s)": 1,
                        "latency (ms/image)": 2, "size on disk (MB)": 1})


def headline_metrics(predictions, n_bins=10, **options) -> dict:
    """Numbers to merge into a run's metrics for ``comparison_table``; the accuracy CI is the exact binomial one."""
    point = classification_metrics(predictions, n_bins)
    return {"test_n": point["n"], "test_accuracy": point["accuracy"],
            "test_accuracy_ci": list(clopper_pearson(int(predictions.correct.sum()), len(predictions))),
            "test_accuracy_ci_method": "Clopper-Pearson exact binomial",
            "macro_f1": point["macro_f1"], "macro_f1_ci": macro_f1_ci(predictions, **options),
            "ece": point["ece"], "ece_bins": n_bins, "log_loss": point["log_loss"],
            "roc_auc_ovr_macro": point["roc_auc_ovr_macro"]}


def jsonable(value):
    """``value`` with numpy scalars made Python and NaN made None, so ``json.dump`` writes strict JSON."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
