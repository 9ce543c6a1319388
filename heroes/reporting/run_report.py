"""What one `heroes train` run tells a person: accuracy with its exact CI, a per-class table, the most-confused
pairs, learning curves and the worst test errors, in the terminal and in the run's summary.md."""

from pathlib import Path

import pandas

from heroes.io import printable
from heroes.reporting.tables import markdown_table

WORST_ERRORS = 12


def per_class_table(predictions) -> pandas.DataFrame:
    """One row per class: precision, recall and test images (n), in the model's class order."""
    from heroes.evaluation.stats import classification_metrics

    scores = classification_metrics(predictions)["per_class"]
    return pandas.DataFrame([{"class": name, "precision": row["precision"], "recall": row["recall"],
                              "n": row["support"]} for name, row in scores.items()])


def headline(metrics: dict) -> str:
    """``Test accuracy 94.5% (exact 95% CI 89.1-97.8%) on 128 images; chance 25.0%.``"""
    from heroes.evaluation.stats import clopper_pearson

    low, high = clopper_pearson(metrics["test_correct"], metrics["test_n"])
    return (f"Test accuracy {100 * metrics['test_accuracy']:.1f}% (exact 95% CI {100 * low:.1f}-{100 * high:.1f}%) "
            f"on {metrics['test_n']} images; chance {100 / len(metrics['class_names']):.1f}%.")


def _percents(frame: pandas.DataFrame) -> pandas.DataFrame:
    """The table with its shares (precision, recall, share_of_true) as percentages, for the terminal and summary.md."""
    shown = frame.copy()
    for column in ("precision", "recall", "share_of_true"):
        if column in shown:
            shown[column] = shown[column].map(lambda value: f"{100 * value:.1f}%")
    return shown


def _table_text(frame: pandas.DataFrame) -> str:
    shown = _percents(frame)
    for column in ("class", "true", "predicted"):
        if column in shown:
            shown[column] = shown[column].map(printable)
    return shown.to_string(index=False)


def terminal_text(metrics: dict, predictions_table: pandas.DataFrame, top_pairs: int = 5) -> str:
    """Accuracy with its CI, the per-class table and the most-confused pairs, as printed at the end of `train`."""
    from heroes.evaluation.explain import most_confused
    from heroes.evaluation.predictions import load_predictions

    predictions = load_predictions(predictions_table)
    confused = most_confused(predictions).head(top_pairs)
    lines = [headline(metrics), "", _table_text(per_class_table(predictions)), ""]
    lines += ["Most confused (true -> predicted):", _table_text(confused)] if len(confused) else ["No test errors."]
    return "\n".join(lines)


def _markdown(frame: pandas.DataFrame) -> str:
    return "\n".join(markdown_table(frame.columns, _percents(frame).itertuples(index=False)))


def write_summary(run_dir, metrics: dict, predictions_table: pandas.DataFrame, history: pandas.DataFrame,
                  notes=()) -> Path:
    """summary.md with the headline, per-class table, confused pairs, learning curves and worst errors (PNGs)."""
    from heroes.evaluation.explain import most_confused
    from heroes.evaluation.predictions import load_predictions
    from heroes.reporting.plots.gradcam import top_losses_grid
    from heroes.reporting.plots.scores import confusion_matrices, learning_curves

    run_dir = Path(run_dir)
    predictions = load_predictions(predictions_table)
    name = metrics["backbone"]
    confusion = confusion_matrices({name: predictions}, run_dir / "confusion-matrix.png")
    curves = learning_curves({name: history}, run_dir / "learning-curves.png")
    worst = top_losses_grid(predictions, run_dir / "worst-errors.png", k=min(WORST_ERRORS, len(predictions)),
                            title="Worst test errors: image, true class, predicted class and its probability")
    confused = most_confused(predictions).head(10)
    lines = [f"# {name} on {metrics['test_n']} test images", "", f"**{headline(metrics)}**", "", *notes, "",
             "## Per class", "", _markdown(per_class_table(predictions)), "",
             "## Most confused pairs", "", _markdown(confused) if len(confused) else "No test errors.", "",
             f"![confusion matrix]({Path(confusion.path).name})", "",
             "## Learning curves", "", f"![learning curves]({Path(curves.path).name})", "",
             "## Worst test errors", "", f"![worst test errors]({Path(worst.path).name})", ""]
    path = run_dir / "summary.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
