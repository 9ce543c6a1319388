"""Notebook helpers for the study's runs (02, 03): notebook 01's split, honest banners, probe predictions, summaries."""

from pathlib import Path

import numpy
import pandas

from heroes import data, datasets, evaluate, models, runs, split
from heroes.config import CLASSES, DISPLAY_NAMES
from heroes.decode import decode_image, fit_and_crop
from heroes.errors import UserError
from heroes.io_utils import atomic_path
from heroes.weights import RANDOM_UNAVAILABLE

CLEAN_MANIFEST = "clean_manifest.csv"
SPLITS = "splits.csv"
DATA_NOTEBOOK = "notebooks/01-data-cleaning.ipynb"
NOT_THE_STUDY = "these numbers are NOT the study's"
BACKBONE_NAMES = {
    "vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50", "resnet50v2": "ResNet50V2",
    "mobilenetv2": "MobileNetV2", "efficientnetb0": "EfficientNetB0",
}
GRID_CELL = 2.2  # inches per image of the probe grid
GRID_PIXELS = 160  # side of each probe image as drawn


# ---------------------------------------------------------------- names


def display_backbone(name: str) -> str:
    """``vgg16`` -> ``VGG16``, ``resnet50`` -> ``ResNet50``; unknown names unchanged."""
    return BACKBONE_NAMES.get(name, name)


def display_class(name: str) -> str:
    """``not_a_hero`` -> ``Not a hero``; unknown names unchanged."""
    return DISPLAY_NAMES.get(name, name)


# ---------------------------------------------------------------- notebook 01's outputs


def interim_file(data_dir, name: str) -> Path:
    """``<data_dir>/interim/<name>``, or a ``UserError`` saying to run notebook 01 first when it is missing."""
    path = Path(data_dir) / "interim" / name
    if not path.is_file():
        raise UserError(f"{path} not found: run {DATA_NOTEBOOK} first with the same data_dir; it cleans the "
                        f"images and writes {CLEAN_MANIFEST} and {SPLITS} to {path.parent}")
    return path


def _ordered(labels) -> list:
    known = {name: index for index, name in enumerate(CLASSES)}
    return sorted(set(labels), key=lambda label: (known.get(label, len(known)), label))


def load_split(data_dir, classes=None) -> pandas.DataFrame:
    """Notebook 01's split (``<data_dir>/interim/splits.csv``), restricted to ``classes`` when given."""
    splits = split.read_splits(interim_file(data_dir, SPLITS))
    if classes is None:
        return splits
    classes = list(classes)
    missing = [name for name in classes if name not in set(splits["label"])]
    if missing:
        known = ", ".join(_ordered(splits["label"]))
        raise UserError(f"class(es) {', '.join(missing)} not in the split; it has {known}")
    if len(set(classes)) < 2:
        raise UserError(f"need at least two distinct classes, got {classes}")
    return splits[splits["label"].isin(classes)].reset_index(drop=True)


def split_counts(splits: pandas.DataFrame) -> pandas.DataFrame:
    """Images per class (rows, in the study's order) and split (train, val, test), with a total row."""
    used = splits[splits["split"].isin(split.SPLITS)]
    table = (pandas.crosstab(used["label"], used["split"])
             .reindex(index=_ordered(used["label"]), columns=list(split.SPLITS), fill_value=0))
    table.loc["total"] = table.sum()
    table.index.name, table.columns.name = "class", None
    return table


def read_clean_manifest(data_dir) -> pandas.DataFrame:
    """Notebook 01's cleaned manifest."""
    return data.read_manifest(interim_file(data_dir, CLEAN_MANIFEST))


def probe_rows(manifest: pandas.DataFrame, classes=None) -> pandas.DataFrame:
    """Decodable unmasked-hero probes (``role == "probe"``), in the study's class order then path.

    ``classes`` keeps only probes of those labels (probes of heroes the model was not trained on are still
    informative: the model must call them something).
    """
    if "role" not in manifest.columns:
        return manifest.iloc[:0].copy()
    probes = manifest[(manifest["role"] == "probe") & (manifest["status"] == "ok")]
    if classes is not None:
        probes = probes[probes["label"].isin(list(classes))]
    order = {label: index for index, label in enumerate(_ordered(probes["label"]))}
    return (probes.assign(_order=probes["label"].map(order)).sort_values(["_order", "path"])
            .drop(columns="_order").reset_index(drop=True))


# ---------------------------------------------------------------- what the numbers are


def weights_choices(backbones, weights, image_size) -> dict:
    """``{backbone: WeightsChoice}`` as training will resolve them (``"auto"`` may fall back to random)."""
    return {name: models.choose_weights(name, weights, image_size) for name in backbones}


def weights_warning(choices: dict) -> str | None:
    """The plain warning when any backbone starts from random weights, else None."""
    if not any(choice.random for choice in choices.values()):
        return None
    if all(choice.source == RANDOM_UNAVAILABLE for choice in choices.values()):
        return f"weights: {RANDOM_UNAVAILABLE} — {NOT_THE_STUDY}"
    sources = "; ".join(f"{display_backbone(name)}: {choice.source}" for name, choice in choices.items())
    return f"weights: random for at least one backbone ({sources}) — {NOT_THE_STUDY}"


def weights_lines(choices: dict) -> str:
    """One line per backbone saying where its starting weights come from, then the warning when random."""
    lines = [f"{display_backbone(name)} weights: {choice.source}" + (f"; {choice.note}" if choice.note else "")
             for name, choice in choices.items()]
    warning = weights_warning(choices)
    return "\n".join(([warning] if warning else []) + lines)


def data_note(data_dir) -> str:
    """Whether the images are the embedded synthetic set (with its settings) or the user's."""
    settings = datasets.embedded_settings(data_dir)
    if settings is None:
        return f"data: your images in {datasets.raw_images_dir(data_dir)}"
    return f"data: THE {datasets.EMBEDDED_NOTE.upper()}, drawn with {settings}"


# ---------------------------------------------------------------- predictions


def predict_images(model, class_names, image_paths, image_size: int, batch_size: int = 32) -> pandas.DataFrame:
    """Probabilities of ``model`` on image files, decoded and resized exactly as training and ``predict`` do.

    Columns ``path``, ``predicted``, ``probability`` (of the predicted class) and ``prob_<class>``; the rows keep
    the order of ``image_paths``. An undecodable file is a ``UserError`` naming it (the scan accepted it).
    """
    image_paths = [str(path) for path in image_paths]
    class_names = [str(name) for name in class_names]
    if len(class_names) != model.output_shape[-1]:
        raise UserError(f"{len(class_names)} class names for a model with {model.output_shape[-1]} outputs")
    columns = ["path", "predicted", "probability", *runs.probability_columns(class_names)]
    if not image_paths:
        return pandas.DataFrame(columns=columns)
    pixels = []
    for path in image_paths:
        try:
            pixels.append(fit_and_crop(decode_image(path), image_size))
        except Exception as error:  # DecodeError, OSError: either way the file changed since the scan
            raise UserError(f"cannot decode {path} ({error}); re-run {DATA_NOTEBOOK}, the data changed") from None
    batch = numpy.stack(pixels).astype("float32")
    probabilities = numpy.asarray(model.predict(batch, batch_size=batch_size, verbose=0), dtype="float64")
    best = probabilities.argmax(axis=1)
    frame = pandas.DataFrame({
        "path": image_paths,
        "predicted": [class_names[index] for index in best],
        "probability": probabilities[numpy.arange(len(best)), best],
    })
    return pandas.concat([frame, pandas.DataFrame(probabilities, columns=columns[3:])], axis=1)


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


def probe_table(probes: pandas.DataFrame, predictions_by_model: dict) -> pandas.DataFrame:
    """Per probe class (rows) and model: how many probes, and the share each model calls ``Not a hero`` or the
    probe's own class (the study's claim: unmasked Batman is recognised as a human)."""
    columns = ["probes"] + [f"{name}: {what}" for name in predictions_by_model for what in ("Not a hero", "own class")]
    if probes.empty:
        return pandas.DataFrame(columns=columns).rename_axis("probe class")
    rows = []
    for label in _ordered(probes["label"]):
        chosen = (probes["label"] == label).to_numpy()
        row = {"probe class": display_class(label), "probes": int(chosen.sum())}
        for name, frame in predictions_by_model.items():
            predicted = frame["predicted"].to_numpy()[chosen]
            row[f"{name}: Not a hero"] = float(numpy.mean(predicted == "not_a_hero"))
            row[f"{name}: own class"] = float(numpy.mean(predicted == label))
        rows.append(row)
    return pandas.DataFrame(rows).set_index("probe class")


def probe_grid(image_paths, titles, out_png, columns: int = 5, headings=None, title: str = ""):
    """The images in a grid, each under its title (split at ``" | "`` onto separate lines) and optional heading;
    ``title`` above the grid. Returns ``heroes.plots_evaluation.Saved``."""
    from matplotlib.figure import Figure

    from heroes.plots_evaluation import DPI, Saved

    image_paths, titles = [str(path) for path in image_paths], [str(title) for title in titles]
    if len(image_paths) != len(titles) or not image_paths:
        raise ValueError(f"need one title per image and at least one image, got {len(image_paths)} and {len(titles)}")
    headings = [""] * len(image_paths) if headings is None else [str(text) for text in headings]
    columns = max(1, min(columns, len(image_paths)))
    rows = -(-len(image_paths) // columns)
    lines = max(title.count(" | ") + 1 for title in titles) + any(headings)
    figure = Figure(figsize=(GRID_CELL * columns, (GRID_CELL + 0.18 * lines) * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes:
        axis.set_axis_off()
    for axis, path, caption, heading in zip(axes, image_paths, titles, headings):
        try:
            axis.imshow(fit_and_crop(decode_image(path), GRID_PIXELS))
        except Exception:  # a figure must never fail on one bad file: show the gap instead
            axis.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=axis.transAxes)
        axis.set_title("\n".join(([heading] if heading else []) + caption.split(" | ")), fontsize=8)
    if title:
        figure.suptitle(title)
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return Saved(Path(out_png), figure)


# ---------------------------------------------------------------- summaries


def model_summary(result) -> dict:
    """One run's test numbers for a metrics file: accuracy with its exact 95% CI, per-class scores, confusion."""
    predictions = evaluate.load_predictions(result.predictions)
    scores = evaluate.classification_metrics(predictions)
    correct = int(predictions.correct.sum())
    metrics = result.metrics
    return {
        "run_dir": str(result.run_dir), "backbone": metrics["backbone"], "policy": metrics["policy"],
        "seed": metrics["seed"], "weights": metrics["weights"], "weights_random": metrics["weights_random"],
        "test_n": len(predictions), "test_correct": correct, "test_accuracy": correct / len(predictions),
        "test_accuracy_ci": list(evaluate.clopper_pearson(correct, len(predictions))),
        "test_accuracy_ci_method": "Clopper-Pearson exact binomial, 95%",
        "macro_f1": scores["macro_f1"], "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"], "class_names": scores["class_names"],
        "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
        "best_val_accuracy": metrics["best_val_accuracy"], "train_path": metrics["train_path"],
        "feature_dtype": metrics["feature_dtype"],
        "trainable_parameters": result.record["model"]["trainable_parameters"],
        "wall_time_s": metrics["wall_time_s"],
    }


def percent_interval(interval) -> str:
    """``[0.929, 1.0]`` -> ``"[92.9%, 100.0%]"``."""
    low, high = interval
    return f"[{100 * low:.1f}%, {100 * high:.1f}%]"


def accuracy_line(name: str, summary: dict) -> str:
    """``"VGG16: 48/50 correct = 96.0%, exact 95% CI [86.3%, 99.5%]"``."""
    return (f"{name}: {summary['test_correct']}/{summary['test_n']} correct = {100 * summary['test_accuracy']:.1f}%, "
            f"exact 95% CI {percent_interval(summary['test_accuracy_ci'])}")


def write_metrics(path, summary: dict) -> Path:
    """Strict JSON (NaN as null), written atomically."""
    return runs.write_json(path, evaluate.jsonable(summary))
