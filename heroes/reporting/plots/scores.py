"""Evaluation figures (learning curves, confusion matrices, reliability diagrams, per-class scores) as PNGs."""

import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy
import pandas
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from heroes.config import CLASS_DISPLAY_NAMES
from heroes.evaluation import stats
from heroes.io import atomic_path

# Figures are built on matplotlib.figure.Figure (rendered by Agg when saved to PNG), never through pyplot:
# no global backend switch in the notebook kernel and no figure kept alive in pyplot's registry.
DPI = 100
PANEL = 4.2  # inches per panel side
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


class Saved(NamedTuple):
    """A written PNG and its Figure; a notebook shows ``saved.figure`` (or the PNG) as the cell's output."""

    path: Path
    figure: Figure


def save_figure(figure, out_png) -> Saved:
    """Write ``figure`` as a PNG, every text in it literal: a class folder called ``a$^$b`` is a name, not TeX."""
    for text in figure.findobj(Text):
        text.set_parse_math(False)
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return Saved(Path(out_png), figure)


def wrapped_label(name, width=10):
    """A class name as people write it, wrapped at spaces so long names do not collide."""
    return "\n".join(textwrap.wrap(CLASS_DISPLAY_NAMES.get(name, name).replace("_", " "), width)) or name


def _check(items, what):
    items = dict(items)
    if not items:
        raise ValueError(f"{what} needs at least one model")
    return items


def _panels(count, height=PANEL, width=PANEL):
    figure = Figure(figsize=(width * count, height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    return figure, axes


def learning_curves(histories, out_png) -> Saved:
    """Loss and accuracy per epoch of several runs overlaid: solid training, dashed validation, one colour per run."""
    histories = _check(histories, "learning_curves")
    figure, (loss_axis, accuracy_axis) = _panels(2, height=4.0, width=5.2)
    colours = dict(zip(histories, COLOURS * len(histories)))
    for name, history in histories.items():
        for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            axis.plot(history["epoch"], history[metric], color=colours[name])
            axis.plot(history["epoch"], history[f"val_{metric}"], color=colours[name], linestyle="--")
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    accuracy_axis.set(title="Accuracy", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    # One legend entry per run plus two for the line styles: 2 x runs entries would crowd out the curves.
    handles = [Line2D([], [], color=colour) for colour in colours.values()]
    handles += [Line2D([], [], color="black"), Line2D([], [], color="black", linestyle="--")]
    figure.legend(handles, [*histories, "training", "validation"], loc="outside lower center",
                  ncols=min(len(handles), 6), fontsize=8)
    figure.suptitle(f"Learning curves: {', '.join(histories)}")
    return save_figure(figure, out_png)


def _confusion_panel(axis, predictions, name):
    """Colour by row share (recall per true class) so classes of different sizes compare; text gives counts."""
    matrix = numpy.asarray(stats.classification_metrics(predictions)["confusion_matrix"])
    shares = matrix / numpy.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in numpy.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=9,
                  color="white" if shares[row, column] > 0.6 else "black")
    ticks = range(len(predictions.class_names))
    # Wrapped at spaces (narrower under columns) so they fit unrotated; rotated multi-line labels collide.
    axis.set_xticks(ticks, [wrapped_label(name, 8) for name in predictions.class_names], fontsize=8)
    axis.set_yticks(ticks, [wrapped_label(name) for name in predictions.class_names], fontsize=8)
    axis.set(xlabel="predicted", ylabel="true",
             title=f"{name}: accuracy {100 * predictions.correct.mean():.1f}% (n={len(predictions)})")
    return image


def confusion_matrices(predictions_by_model, out_png) -> Saved:
    """Confusion matrices side by side: counts written in, colour = share of the true class's images."""
    models = _check(predictions_by_model, "confusion_matrices")
    figure, axes = _panels(len(models), height=PANEL + 0.6, width=PANEL + 0.8)
    for axis, (name, predictions) in zip(axes, models.items()):
        image = _confusion_panel(axis, predictions, name)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="share of true class")
    return save_figure(figure, out_png)


def _reliability_panel(axis, predictions, name, n_bins):
    """Bars: accuracy per bin; hatched: the gap to the bin's mean confidence; numbers: images in the bin."""
    table = stats.reliability_table(predictions.confidence, predictions.correct, n_bins)
    ece = stats.expected_calibration_error(predictions.confidence, predictions.correct, n_bins)
    used = table[table["count"] > 0]
    width = 1.0 / n_bins
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    axis.bar(used["bin_lower"], used["accuracy"], width=width, align="edge", color="#1f77b4", alpha=0.85,
             edgecolor="white", label="accuracy in bin")
    # Hatching without fill reads the same over the blue bar (over-confident) and over white (under-confident).
    axis.bar(used["bin_lower"], used["confidence"] - used["accuracy"], bottom=used["accuracy"], width=width,
             align="edge", facecolor="none", edgecolor="#d62728", hatch="///", linewidth=1,
             label="gap to mean confidence")
    for lower, count, top in zip(used["bin_lower"], used["count"], used[["accuracy", "confidence"]].max(axis=1)):
        axis.text(lower + width / 2, min(top, 1.0) + 0.01, str(int(count)), ha="center", va="bottom", fontsize=7)
    axis.set(xlim=(0, 1), ylim=(0, 1.06), xlabel="confidence (top-class probability)", ylabel="accuracy",
             title=f"{name}: ECE {100 * ece:.1f}% (n={len(predictions)}, {n_bins} bins)")
    axis.grid(alpha=0.3)


def reliability_diagrams(predictions_by_model, out_png, n_bins=10) -> Saved:
    """Reliability diagrams side by side; the number over each bin is how many test images fall in it."""
    models = _check(predictions_by_model, "reliability_diagrams")
    figure, axes = _panels(len(models), height=PANEL + 0.5)
    for axis, (name, predictions) in zip(axes, models.items()):
        _reliability_panel(axis, predictions, name, n_bins)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    return save_figure(figure, out_png)


def per_class_scores(predictions_by_model, out_png) -> Saved:
    """Precision, recall and F1 per class, one panel per model; tick labels carry each class's test support."""
    models = _check(predictions_by_model, "per_class_scores")
    count = len(next(iter(models.values())).class_names)
    figure, axes = _panels(len(models), height=3.8, width=max(PANEL, 0.75 * count + 1.5))
    for axis, (name, predictions) in zip(axes, models.items()):
        frame = stats.per_class_frame(stats.classification_metrics(predictions))
        positions = numpy.arange(len(frame))
        for offset, (metric, colour) in enumerate(zip(("precision", "recall", "f1"), COLOURS)):
            axis.bar(positions + (offset - 1) * 0.27, frame[metric], width=0.27, color=colour,
                     label=metric if metric != "f1" else "F1")
        labels = [f"{wrapped_label(row['class'])}\n(n={row['support']})" for _, row in frame.iterrows()]
        axis.set_xticks(positions, labels, fontsize=8)
        axis.set(ylim=(0, 1.02), ylabel="score", title=f"{name}: macro-F1 {stats.macro_f1(predictions):.3f}")
        axis.grid(axis="y", alpha=0.3)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    return save_figure(figure, out_png)


def measured_gap_figure(gaps: pandas.DataFrame, out_png) -> Saved:
    """Measured gaps per epoch (``heroes.evaluation.overfitting.measured_gap_frame``): train − validation accuracy
    and validation − train loss, both above 0 when the model does better on its training images; one colour per
    model, one line per seed, a ring on each run's best validation epoch (training past it is where overfitting
    would show)."""
    figure = Figure(figsize=(10.4, 4.0), dpi=DPI, layout="constrained")
    accuracy_axis, loss_axis = figure.subplots(1, 2)
    colours = dict(zip(gaps["model"].unique(), COLOURS))
    for (name, seed), run in gaps.groupby(["model", "seed"], sort=False):
        run = run.sort_values("epoch")
        best = run.iloc[[int(run["val_loss"].to_numpy().argmin())]]
        style = {"color": colours[name], "alpha": 0.8, "marker": "o", "markersize": 3, "label": f"{name} seed {seed}"}
        for axis, column in ((accuracy_axis, "accuracy_gap"), (loss_axis, "loss_gap")):
            axis.plot(run["epoch"], run[column], **style)
            axis.plot(best["epoch"], best[column], marker="o", markersize=9, markerfacecolor="none",
                      color=colours[name], linestyle="none")
    accuracy_axis.set(title="Train − validation accuracy (measured)", xlabel="epoch", ylabel="gap")
    loss_axis.set(title="Validation − train loss (measured)", xlabel="epoch", ylabel="gap")
    for axis in (accuracy_axis, loss_axis):
        axis.axhline(0, color="grey", linewidth=1)
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = accuracy_axis.get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", marker="o", markersize=9, markerfacecolor="none", linestyle="none"))
    figure.legend(handles, [*labels, "best validation epoch"], loc="outside lower center", ncols=6, fontsize=8)
    figure.suptitle("Training images re-scored with end-of-epoch weights, against validation")
    return save_figure(figure, out_png)
