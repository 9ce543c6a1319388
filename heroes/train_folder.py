"""`heroes train`: a folder of class folders in, a trained and evaluated model out (scan, clean, split, train, report)."""

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas

from heroes import paths
from heroes.errors import UserError

# EfficientNet-Lite0 is the one backbone with ImageNet weights offline; its `study` policy (last stage + head
# convolution) scored 99.3% vs 98.7% for a linear probe on the embedded set (benchmarks/transfer_benchmark.py), and
# fine-tuning the last stage is what adapts ImageNet features to a new domain on real photos. SGD lr 0.001 with
# momentum 0.9 for 10 epochs is the study's recipe and converged there; the best-validation-loss epoch is kept.
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_POLICY = "study"
DEFAULT_EPOCHS = 10
RUN_FILES = ("manifest.csv", "flags.csv", "splits.csv", "summary.md")


@dataclass(frozen=True)
class FolderRun:
    """What `heroes train` was asked for; saved beside the run as part of its config."""

    data_dir: str
    backbone: str = DEFAULT_BACKBONE
    policy: str = DEFAULT_POLICY
    weights: str = "auto"
    epochs: int = DEFAULT_EPOCHS
    image_size: int | None = None  # None: the backbone's default size
    seed: int = 0
    split: tuple = (0.8, 0.1, 0.1)  # train, validation, test fractions of every class


def parse_split(text: str) -> tuple:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1); ``UserError`` unless three positive fractions summing to at most 1."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--split must be three fractions like 0.8,0.1,0.1, not {text!r}") from None
    if len(values) != 3 or not all(0 < value < 1 for value in values) or sum(values) > 1 + 1e-9:
        raise UserError(f"--split must be three fractions in (0, 1) adding up to at most 1, not {text!r}")
    return values


def check_places(data_dir, out_dir, force: bool) -> tuple:
    """(data folder, run folder) after every check that needs no reading: nothing is written before these pass."""
    data, out = Path(data_dir).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if not data.exists():
        raise UserError(f"data folder not found: {data_dir}")
    if not data.is_dir():
        raise UserError(f"{data_dir} is a file: give the folder that holds one sub-folder per class")
    if out == data or data in out.parents:
        raise UserError(f"--out {out_dir} is inside the data folder {data_dir}: the data is only ever read")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a run folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out_dir} already holds files (a run?); pass --force to replace the run there")
    return data, out


def _split(manifest: pandas.DataFrame, fractions: tuple, seed: int) -> pandas.DataFrame:
    """Group-aware split by fractions; small classes (fractions would leave a split empty) get counts instead."""
    from heroes.cleaning.flags import data_rows
    from heroes.cleaning.report import fitting_counts
    from heroes.data import split

    sizes = manifest[data_rows(manifest)].groupby("label").size()
    if len(sizes) < 2:
        found = ", ".join(sizes.index) or "none"
        raise UserError(f"need at least two classes with usable images, found {len(sizes)} ({found})")
    if sizes.min() * min(fractions[1:]) >= 1:
        return split.make_splits(manifest, *fractions, seed=seed)
    scale = 1000  # counts in the requested proportions, then lowered to what the smallest class holds
    counts = fitting_counts(manifest, *(round(value * scale) for value in fractions))
    return split.make_splits(manifest, *counts, seed=seed)


def _report(out: Path, result, pending: int, fractions) -> Path:
    """summary.md with the accuracy and its exact CI, and the confusion matrix and learning curves as PNGs."""
    from heroes.evaluation.predictions import load_predictions
    from heroes.evaluation.stats import clopper_pearson
    from heroes.reporting.plots.scores import confusion_matrices, learning_curves

    metrics = result.metrics
    low, high = clopper_pearson(metrics["test_correct"], metrics["test_n"])
    name = metrics["backbone"]
    confusion = confusion_matrices({name: load_predictions(out / "predictions.csv")}, out / "confusion-matrix.png")
    curves = learning_curves({name: result.history}, out / "learning-curves.png")
    lines = [
        f"# {name} on {metrics['test_n']} test images",
        "",
        f"Test accuracy **{100 * metrics['test_accuracy']:.1f}%** (exact 95% CI {100 * low:.1f}–{100 * high:.1f}%), "
        f"chance {100 / len(metrics['class_names']):.1f}%.",
        f"Weights: {metrics['weights']}. Policy: {metrics['policy']}. Best epoch {metrics['best_epoch']} of "
        f"{metrics['epochs_run']}. Split fractions {fractions}, seed {metrics['seed']}.",
        f"Classes: {', '.join(metrics['class_names'])}.",
        f"Images waiting for review (kept out of this run, see flags.csv): {pending}.",
        "",
        f"![confusion matrix]({Path(confusion.path).name})",
        f"![learning curves]({Path(curves.path).name})",
        "",
    ]
    path = out / "summary.md"
    path.write_text("\n".join(lines))
    return path


def train_folder(request: FolderRun, out_dir, force: bool = False, progress: bool = True) -> dict:
    """Scan (read-only), clean (only sure defects dropped; review items listed), split, train, evaluate, report."""
    from heroes.cleaning import flags
    from heroes.config import TrainConfig
    from heroes.data import arrays, scan
    from heroes.io import write_csv, write_json
    from heroes.modeling import backbones, build, train

    data, out = check_places(request.data_dir, out_dir, force)
    spec = backbones.get_backbone(request.backbone)
    size = request.image_size or spec.default_size
    config = TrainConfig(backbone=request.backbone, policy=request.policy, weights=request.weights,
                         epochs=request.epochs, image_size=size, seed=request.seed)
    train.final_config(config)  # bad epochs, policy, size or weights: refused before anything is read or written
    build.choose_weights(config.backbone, config.weights, size)
    if config.policy not in build.POLICIES:
        raise UserError(f"unknown policy {config.policy!r}; known: {', '.join(build.POLICIES)}")
    manifest = scan.scan(data, progress=progress)
    if not (manifest["status"] == "ok").any():
        raise UserError(f"no readable images under {request.data_dir} (expected one sub-folder per class)")
    cleaned = flags.clean(manifest, progress=progress)
    splits = _split(cleaned.manifest, request.split, request.seed)
    sets = arrays.load_split_arrays(splits, size, cache_dir=paths.PROCESSED, progress=progress)
    result = train.train_run(config, sets, name="train", run_dir=out, manifest_hash=scan.manifest_hash(manifest),
                             cache_dir=paths.PROCESSED / "features", progress=progress, save_model=True)
    scan.write_manifest(manifest, out / "manifest.csv")
    write_csv(cleaned.flags, out / "flags.csv", for_people=True)
    write_csv(splits, out / "splits.csv")
    metrics = {**result.metrics, "classes": list(result.metrics["class_names"]), "data_dir": str(data),
               "request": dataclasses.asdict(request)}
    write_json(out / "metrics.json", metrics)
    summary = _report(out, result, len(cleaned.pending), request.split)
    return {"run_dir": out, "metrics": metrics, "summary": summary, "pending": len(cleaned.pending)}


def describe(outcome: dict) -> str:
    """What a person reads at the end of `heroes train`."""
    metrics = outcome["metrics"]
    return (f"{metrics['backbone']} ({metrics['weights']}): test accuracy {100 * metrics['test_accuracy']:.1f}% on "
            f"{metrics['test_n']} images, {len(metrics['classes'])} classes\n"
            f"run: {outcome['run_dir']}  (summary.md, metrics.json, predictions.csv, model.keras, tensorboard/)\n"
            f"{outcome['pending']} image(s) wait for review (flags.csv)\n"
            f"predict: python -m heroes predict IMAGE_OR_DIR --model {shlex.quote(str(outcome['run_dir']))}")
