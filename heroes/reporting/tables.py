"""Tables of the study: per-model numbers, comparison and per-seed tables, probe tables, and the Markdown writer."""

import math

import numpy
import pandas

from heroes import paths
from heroes.config import CLASS_DISPLAY_NAMES
from heroes.data.sources import ordered_labels
from heroes.evaluation.predictions import load_predictions
from heroes.evaluation.stats import classification_metrics, clopper_pearson, headline_metrics, seed_spread
from heroes.models import build
from heroes.reporting.verdicts import percent, spread_text


def display_class(name: str) -> str:
    """``not_a_hero`` -> ``Not a hero``; unknown names unchanged."""
    return CLASS_DISPLAY_NAMES.get(name, name)


def weights_choices(backbones, weights, image_size) -> dict:
    """``{backbone: WeightsChoice}`` as training will resolve them (``"auto"`` may fall back to random)."""
    return {name: build.choose_weights(name, weights, image_size) for name in backbones}


def probe_titles(predictions_by_model: dict) -> pandas.Series:
    """One title per image, ``"VGG16: Not a hero 0.83 | ResNet50: Batman 0.61"`` (models in the dict's order),
    indexed 0..n-1 like ``probe_rows``, so a mask over the probes selects their titles."""
    frames = list(predictions_by_model.items())
    if not frames:
        raise ValueError("probe_titles needs at least one model's predictions")
    count = len(frames[0][1])
    if any(len(frame) != count for _, frame in frames):
        raise ValueError("every model must predict the same images")
    return pandas.Series([" | ".join(f"{name}: {display_class(frame['predicted'].iloc[row])} "
                                     f"{frame['probability'].iloc[row]:.2f}" for name, frame in frames)
                          for row in range(count)], dtype=object)


def probe_records(predictions_by_model: dict) -> dict:
    """``{model: [{path, predicted, probability}]}`` for the metrics file, image paths relative to the project root
    where they lie inside it (``paths.portable``), so committed reports name no temporary clone."""
    return {name: [{"path": paths.portable(row.path), "predicted": row.predicted, "probability": float(row.probability)}
                   for row in frame[["path", "predicted", "probability"]].itertuples(index=False)]
            for name, frame in predictions_by_model.items()}


def probe_table(probes: pandas.DataFrame, predictions_by_model: dict) -> pandas.DataFrame:
    """Per probe class (rows) and model: how many probes, and the share each model calls ``Not a hero`` or the
    probe's own class (the study's claim: unmasked Batman is recognised as a human)."""
    columns = ["probes"] + [f"{name}: {what}" for name in predictions_by_model for what in ("Not a hero", "own class")]
    if probes.empty:
        return pandas.DataFrame(columns=columns).rename_axis("probe class")
    rows = []
    for label in ordered_labels(probes["label"]):
        chosen = (probes["label"] == label).to_numpy()
        row = {"probe class": display_class(label), "probes": int(chosen.sum())}
        for name, frame in predictions_by_model.items():
            predicted = frame["predicted"].to_numpy()[chosen]
            row[f"{name}: Not a hero"] = float(numpy.mean(predicted == "not_a_hero"))
            row[f"{name}: own class"] = float(numpy.mean(predicted == label))
        rows.append(row)
    return pandas.DataFrame(rows).set_index("probe class")


def run_summary(result) -> dict:
    """One run's test numbers for a metrics file: accuracy with its exact 95% CI, per-class scores, confusion."""
    predictions = load_predictions(result.predictions)
    scores = classification_metrics(predictions)
    correct = int(predictions.correct.sum())
    metrics = result.metrics
    return {
        "run_dir": paths.portable(result.run_dir), "backbone": metrics["backbone"], "policy": metrics["policy"],
        "seed": metrics["seed"], "weights": metrics["weights"], "weights_random": metrics["weights_random"],
        "test_n": len(predictions), "test_correct": correct, "test_accuracy": correct / len(predictions),
        "test_accuracy_ci": list(clopper_pearson(correct, len(predictions))),
        "test_accuracy_ci_method": "Clopper-Pearson exact binomial, 95%",
        "macro_f1": scores["macro_f1"], "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"], "class_names": scores["class_names"],
        "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
        "best_val_accuracy": metrics["best_val_accuracy"], "train_path": metrics["train_path"],
        "feature_dtype": metrics["feature_dtype"],
        "trainable_parameters": result.record["model"]["trainable_parameters"],
        "wall_time_s": metrics["wall_time_s"],
    }


def backbone_summary(results_by_seed: dict, predictions_by_seed: dict, first_seed, latency=None, size=None,
                     n_resamples=9999) -> dict:
    """One model's row for ``evaluate.comparison_table`` plus its per-seed numbers, JSON-ready.

    Accuracy, CI, macro-F1 and ECE are the first seed's run (the one the paired test uses); the spread over seeds is
    beside them. Training time is the mean per run; feature extraction the total this notebook spent, with how many
    (image, view) features it computed and how many it found cached (by an earlier seed or notebook).
    """
    per_seed = {}
    for seed, result in results_by_seed.items():
        headline = headline_metrics(predictions_by_seed[seed], n_resamples=n_resamples)
        per_seed[seed] = {**headline, "train_time_s": result.metrics["train_time_s"],
                          "feature_time_s": result.metrics.get("feature_time_s", 0.0),
                          "best_epoch": result.metrics.get("best_epoch"), "run_dir": paths.portable(result.run_dir),
                          "feature_cache": result.metrics.get("feature_cache")}
    first = per_seed[first_seed]
    spread = seed_spread({seed: values["test_accuracy"] for seed, values in per_seed.items()})
    model = results_by_seed[first_seed].record["model"]
    row = {key: first[key] for key in ("test_n", "test_accuracy", "test_accuracy_ci", "macro_f1", "macro_f1_ci", "ece",
                                       "ece_ci")}
    row |= {"total_parameters": model["total_parameters"], "trainable_parameters": model["trainable_parameters"],
            "train_time_s": float(numpy.mean([values["train_time_s"] for values in per_seed.values()])),
            "feature_time_s": float(sum(values["feature_time_s"] for values in per_seed.values())),
            "features_computed": sum((values["feature_cache"] or {}).get("computed", 0) for values in per_seed.values()),
            "features_reused": sum((values["feature_cache"] or {}).get("reused", 0) for values in per_seed.values()),
            "model_bytes": size, **(latency or {})}
    return {**row, "seed_spread": spread, "per_seed": {str(seed): values for seed, values in per_seed.items()}}


def baseline_summary(predictions, n_resamples=9999, by_seed=None) -> dict:
    """A baseline's row for ``table``: the same numbers and CIs as a network's (``headline_metrics``) for
    ``predictions`` (the first seed's fit); with ``by_seed`` ({seed: Predictions}, one fit per seed's split) also
    its accuracy spread over seeds."""
    row = {**headline_metrics(predictions, n_resamples=n_resamples), "kind": "baseline"}
    if by_seed:
        row["seed_spread"] = seed_spread({seed: float(numpy.mean(frame.correct)) for seed, frame in by_seed.items()})
    return row


def table(summaries: dict, first_seed, baselines=None) -> pandas.DataFrame:
    """``comparison_table`` with the mean ± sd over seeds beside the first seed's accuracy and CI; ``baselines``
    ({name: ``baseline_summary``}) join as rows of the same table, on the same test images."""
    summaries = {**summaries, **(baselines or {})}
    frame = comparison_table(summaries)
    frame.insert(frame.columns.get_loc("95% CI") + 1, "mean ± sd over seeds",
                 [spread_text(summary["seed_spread"]) if summary.get("seed_spread") else "baseline (one fit)"
                  for summary in summaries.values()])
    frame.insert(frame.columns.get_loc("feature extraction (s)") + 1, "features computed / reused",
                 [f"{summary.get('features_computed', 0)} / {summary.get('features_reused', 0)}"
                  if "features_computed" in summary else None for summary in summaries.values()])
    return frame.rename(columns={"test accuracy": f"test accuracy (seed {first_seed})"})


def pooled_table(pooled: dict) -> pandas.DataFrame:
    """The per-seed rows of ``pooled_comparison`` (B − A per seed, its CI, counts, exact McNemar) and a last row
    pooling every seed (the pooled bootstrap CI and the pooled exact test): one table for the headline."""
    frame = pandas.DataFrame(pooled["per_seed"])
    difference, names = pooled.get("hierarchical") or pooled["difference"], pooled["names"]
    pooled_row = {"seed": "pooled", "n": sum(pooled["n_images"]) if not pooled["shared_test_set"] else
                  pooled["n_images"][0], **{f"{name} accuracy": pooled["accuracy"][name] for name in names},
                  "difference": difference["estimate"], "CI low": difference["low"], "CI high": difference["high"],
                  "exact p": pooled["test"]["p_value"], "mid-p": pooled["test"]["mid_p_value"]}
    if "seed_level" in difference:  # the hierarchical interval (seeds, then images) with the seed-level one beside
        pooled_row |= {"seed-level CI low": difference["seed_level"]["low"],
                       "seed-level CI high": difference["seed_level"]["high"]}
    counts = [column for column in frame.columns if column.startswith("only ") or column.startswith("both ")]
    frame = pandas.concat([frame, pandas.DataFrame([pooled_row])], ignore_index=True)
    frame[counts] = frame[counts].astype("Int64")  # counts stay integers; the pooled row has none (<NA>)
    frame["seed"] = frame["seed"].astype(str)
    return frame


def baseline_test_table(tests: dict) -> pandas.DataFrame:
    """One row per (network, baseline) from ``heroes.evaluation.grid.baseline_tests``: mean accuracies over seeds,
    network − baseline pooled with its CI, the pooled exact paired test, and in how many seeds the network was ahead."""
    rows = []
    for network, against in tests.items():
        for baseline, pooled in against.items():
            difference, test = pooled["difference"], pooled["test"]
            ahead = sum(row["difference"] > 0 for row in pooled["per_seed"])
            rows.append({"network": network, "baseline": baseline, "seeds": pooled["n_seeds"],
                         "network accuracy": pooled["accuracy"][network],
                         "baseline accuracy": pooled["accuracy"][baseline], "difference": difference["estimate"],
                         "CI low": difference["low"], "CI high": difference["high"], "exact p": test["p_value"],
                         "network ahead in": f"{ahead} of {pooled['n_seeds']} seeds"})
    return pandas.DataFrame(rows)


def convergence_table(convergence: dict, names=None) -> pandas.DataFrame:
    """Per model: runs, how many had their best validation epoch as their last, the best epochs and epochs run."""
    names = names or {}
    return pandas.DataFrame([{"model": names.get(backbone, backbone), "runs": entry["runs"],
                              "best epoch = last epoch": entry["best_is_last"],
                              "best epochs": ", ".join("—" if value is None else str(value)
                                                       for value in entry["best_epochs"]),
                              "epochs run": ", ".join(map(str, entry["epochs_run"])),
                              "maximum epochs": entry["max_epochs"]}
                             for backbone, entry in convergence.items()])


def overfitting_table(assessment: dict) -> pandas.DataFrame:
    """Per run: best validation epoch, whether training went past it, and the measured gaps (points)."""
    frame = pandas.DataFrame(assessment["runs"])
    frame["passed best"] = frame["passed best"].map({True: "yes", False: "no"})
    return frame


TABLE_FORMATS = {"parameters": "{:,}", "trainable": "{:,}", "macro-F1": "{:.3f}", "ECE": "{:.3f}",
                 "feature extraction (s)": "{:.1f}", "training time (s)": "{:.1f}", "latency (ms/image)": "{:.1f}",
                 "size on disk (MB)": "{:.1f}"}
BASELINE_TEST_FORMATS = {"network accuracy": "{:.3f}", "baseline accuracy": "{:.3f}", "difference": "{:+.3f}",
                         "CI low": "{:+.3f}", "CI high": "{:+.3f}", "exact p": "{:.3g}"}
FLAGGED_FORMATS = {"accuracy_all": "{:.3f}", "accuracy_unflagged": "{:.3f}"}
PER_SEED_FORMATS = {"difference": "{:+.3f}", "CI low": "{:+.3f}", "CI high": "{:+.3f}",
                    "seed-level CI low": "{:+.3f}", "seed-level CI high": "{:+.3f}", "McNemar p": "{:.3g}",
                    "mid-p": "{:.3g}", "exact p": "{:.3g}", "accuracy": "{:.3f}"}
OVERFITTING_FORMATS = {"accuracy gap at best": "{:+.3f}", "accuracy gap at last": "{:+.3f}",
                       "loss gap at last": "{:+.3f}"}


def table_block(frame: pandas.DataFrame, formats=None) -> dict:
    """{columns, rows} of display strings for ``heroes.reporting.summary``: ``formats`` maps a column to a format string."""
    formats = formats or {}

    def shown(column, value):
        if value is None or value is pandas.NA or (isinstance(value, float) and numpy.isnan(value)):
            return None
        suffixed = (formats[key] for key in formats if str(column).endswith(f" {key}"))  # "VGG16 accuracy"
        pattern = formats.get(column) or next(suffixed, None)
        return pattern.format(value).replace("-", "−") if pattern else str(value)

    return {"columns": [str(column) for column in frame.columns],
            "rows": [[shown(column, value) for column, value in zip(frame.columns, row)]
                     for row in frame.itertuples(index=False)]}


def markdown_cell(value) -> str:
    """One cell of a Markdown table: "—" for a missing value, pipes escaped, newlines joined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns, rows) -> list:
    """Lines of a GitHub-flavoured Markdown table: the one writer of a run's summary.md and the study's summary."""
    lines = ["| " + " | ".join(markdown_cell(column) for column in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    return lines + ["| " + " | ".join(markdown_cell(value) for value in row) + " |" for row in rows]


def _interval(pair):
    if pair is None or len(pair) != 2 or any(value is None or numpy.isnan(value) for value in pair):
        return ""
    return f"[{percent(pair[0])}, {percent(pair[1])}]"


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


# Column -> keys tried in order. Names follow heroes.training.train's metrics.json (test_n, train_time_s...) and config.json
# ("model": describe_model); latency and size on disk are measured by whoever builds the table and merged in.
TABLE_FIELDS = {
    "macro-F1": ("macro_f1",), "ECE": ("ece",),
    "parameters": ("total_parameters", "model.total_parameters"),
    "trainable": ("trainable_parameters", "model.trainable_parameters"),
    "feature extraction (s)": ("feature_time_s",), "training time (s)": ("train_time_s",),
    "latency (ms/image)": ("latency_ms_per_image",),
}


BOOTSTRAP_CIS = {"macro-F1": "macro_f1_ci", "ECE": "ece_ci"}


def _bootstrap_interval(interval) -> str:
    """'[0.612, 0.771]' from a ``bootstrap_ci`` dict; '' when absent."""
    if not isinstance(interval, dict) or interval.get("low") is None or interval.get("high") is None:
        return ""
    return f"[{interval['low']:.3f}, {interval['high']:.3f}]"


def _accuracy_text(run):
    accuracy = _get(run, "test_accuracy")
    if accuracy is None:
        return ""
    text = f"{percent(accuracy)}%"
    if (_get(run, "n_seeds") or 1) >= 2 and _get(run, "test_accuracy_std") is not None:
        text += f" ± {percent(run['test_accuracy_std'])} ({run['n_seeds']} seeds)"
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
        for column, keys in TABLE_FIELDS.items():
            row[column] = _number(run, keys)
            if column in BOOTSTRAP_CIS:  # ECE and macro-F1 move between resamples: never shown without their CI
                row[f"{column} 95% CI"] = _bootstrap_interval(_get(run, BOOTSTRAP_CIS[column]))
        row["size on disk (MB)"] = _number(run, ("model_bytes",), 1e-6)
        rows.append(row)
    table = pandas.DataFrame(rows)
    for column in ("test images", "parameters", "trainable"):
        table[column] = pandas.to_numeric(table[column]).astype("Int64")  # counts, not floats; NaN stays <NA>
    return table.round({"macro-F1": 3, "ECE": 3, "feature extraction (s)": 1, "training time (s)": 1,
                        "latency (ms/image)": 2, "size on disk (MB)": 1})
