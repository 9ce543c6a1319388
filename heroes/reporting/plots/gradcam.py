"""Explanation figures (Grad-CAM side by side across models, top-losses grid) as PNGs."""

import math
from pathlib import Path

import numpy
from matplotlib import cm, colors
from matplotlib.figure import Figure

from heroes import paths
from heroes.data.decode import DecodeError, decode_image, fit_and_crop
from heroes.errors import UserError
from heroes.evaluation import explain
from heroes.reporting.plots.scores import DPI, Saved, save_figure, wrapped_label

CELL = 2.3  # inches per image panel: six models' columns still fit a notebook's width at two or three


RIGHT, WRONG = "#2ca02c", "#d62728"


COLORMAP = "jet"
DISPLAY_SIZE = 160  # top-losses panels: large enough to recognise a costume, small enough for a 3 x 3 grid


def _resolve(path, image_root=None) -> Path:
    """A stored path as it can be opened: under ``image_root`` when relative, else as is, else under the project."""
    path = Path(path)
    if path.is_absolute():
        return path
    candidates = ([Path(image_root) / path] if image_root is not None else []) + [path, paths.PROJ_ROOT / path]
    return next((candidate for candidate in candidates if candidate.is_file()), candidates[0])


def _grid(rows, columns, extra_height=0.0):
    figure = Figure(figsize=(CELL * columns, CELL * rows + extra_height), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    return figure, axes


def _short_name(path, width=26):
    name = Path(path).name
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _model_size(model) -> int:
    height, width = model.input_shape[1:3]
    if height is None or height != width:
        raise ValueError(f"gradcam_grid needs square model inputs, {model.name} takes {height}x{width}")
    return int(height)


def _check_models(models, class_names, image_size):
    models = dict(models)
    if not models:
        raise ValueError("gradcam_grid needs at least one model")
    for name, model in models.items():
        if model.output_shape[-1] != len(class_names):
            raise ValueError(f"{name} predicts {model.output_shape[-1]} classes, not the {len(class_names)} named")
        if _model_size(model) != image_size:
            raise ValueError(f"{name} takes {_model_size(model)} px images, not image_size={image_size}")
    return models


def _load(image_paths, image_size, image_root=None):
    """Decoded and centre-cropped like evaluation images; an unreadable file is the caller's mistake here."""
    images = []
    for path in image_paths:
        try:
            images.append(fit_and_crop(decode_image(_resolve(path, image_root)), image_size))
        except DecodeError as error:
            raise UserError(f"cannot explain {path}: {error.reason}") from None
    return numpy.stack(images)


def gradcam_grid(models, image_paths, image_size, out_png, class_names, true_labels=None, alpha=0.4,
                 image_root=None) -> Saved:
    """The same images in rows; first column the image, then one Grad-CAM overlay per model, side by side.

    ``models``: {display name: heroes model}, all taking ``image_size`` px images and predicting ``class_names``.
    Each overlay explains that model's own predicted class, named with its probability in the panel title;
    with ``true_labels`` (one class name per image) titles are green when right and red when wrong.
    """
    class_names = [str(name) for name in class_names]
    models = _check_models(models, class_names, image_size)
    image_paths = list(image_paths)
    if not image_paths:
        raise ValueError("gradcam_grid needs at least one image")
    if true_labels is not None and len(true_labels) != len(image_paths):
        raise ValueError(f"{len(true_labels)} true labels for {len(image_paths)} images")
    images = _load(image_paths, image_size, image_root)
    figure, axes = _grid(len(images), 1 + len(models), extra_height=0.5)
    for row, (image, path) in enumerate(zip(images, image_paths)):
        axes[row, 0].imshow(image)
        truth = "" if true_labels is None else f"\ntrue: {wrapped_label(true_labels[row], 30)}"
        axes[row, 0].set_title(f"{_short_name(path)}{truth}", fontsize=8)
    for column, (name, model) in enumerate(models.items(), start=1):
        heatmaps, probabilities = explain.gradcam_and_probabilities(model, images)
        for row, (image, heatmap, probability) in enumerate(zip(images, heatmaps, probabilities)):
            predicted = class_names[int(probability.argmax())]
            axis = axes[row, column]
            axis.imshow(explain.overlay(image, heatmap, alpha, COLORMAP))
            colour = "black" if true_labels is None else (RIGHT if predicted == true_labels[row] else WRONG)
            axis.set_title(f"{name}\n{wrapped_label(predicted, 30)} {probability.max():.2f}", fontsize=8, color=colour)
    scale = cm.ScalarMappable(colors.Normalize(0, 1), COLORMAP)
    figure.colorbar(scale, ax=axes[-1, :], location="bottom", shrink=0.6, aspect=40,
                    label="Grad-CAM, scaled per image (0 no evidence, 1 strongest)")
    figure.suptitle("Grad-CAM: where each model looks for its predicted class", fontsize=10)
    return save_figure(figure, out_png)


def _placeholder(axis, size, reason):
    axis.imshow(numpy.full((size, size, 3), 220, dtype=numpy.uint8))
    axis.text(size / 2, size / 2, f"image unavailable\n{reason}", ha="center", va="center", fontsize=7, wrap=True)


def _loss_panel(axis, row, image_root, size):
    """One image with its true class, predicted class and probabilities; a missing file does not sink the grid."""
    try:
        axis.imshow(fit_and_crop(decode_image(_resolve(row.path, image_root)), size))
    except DecodeError as error:
        _placeholder(axis, size, error.reason)
    colour = RIGHT if row.correct else WRONG
    axis.set_title(
        f"true: {wrapped_label(row.true, 30)}\npredicted: {wrapped_label(row.predicted, 30)} {row.probability:.2f}\n"
        f"p(true) {row.probability_true:.2f}, loss {row.loss:.2f}", fontsize=8, color=colour,
    )
    axis.text(0.5, -0.03, _short_name(row.path), transform=axis.transAxes, ha="center", va="top", fontsize=7)


def top_losses_grid(predictions, out_png, k=9, image_root=None, title=None, image_size=DISPLAY_SIZE) -> Saved:
    """The ``k`` highest-loss test images in a near-square grid: image, true and predicted class, probabilities.

    ``predictions``: ``evaluate.Predictions`` or anything ``load_predictions`` reads; relative paths are opened
    under ``image_root`` when given. Titles are red for a wrong prediction (a right one can still have a high loss).
    """
    losses = explain.top_losses(predictions, k)
    columns = math.ceil(math.sqrt(len(losses)))
    figure, axes = _grid(math.ceil(len(losses) / columns), columns, extra_height=0.4)
    for axis, row in zip(axes.flat, losses.itertuples(index=False)):
        _loss_panel(axis, row, image_root, image_size)
    figure.suptitle(title or f"Top {len(losses)} losses: -log p(true class)", fontsize=10)
    return save_figure(figure, out_png)
