"""`heroes train`: a folder of class folders in, a trained and evaluated model out (scan, clean, split, train, report)."""

import dataclasses
import os
import shlex
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas

from heroes.errors import UserError

# EfficientNet-Lite0 is the one backbone with ImageNet weights offline. The default recipe, fine_tune, was chosen on
# validation splits of real photos (benchmarks/recipe_search.py); `study` is the study's SGD recipe under a freeze
# policy, on cached features (the recipe the notebooks reproduce).
DEFAULT_BACKBONE = "efficientnet_lite0"
RECIPES = ("fine_tune", "study")
DEFAULT_RECIPE = "fine_tune"
STUDY_EPOCHS = 10
MAX_IMAGE_SIZE = 1024  # a 1024 px float32 batch of 32 is 400 MB; beyond that a 2-core machine only swaps
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_EPOCHS = 1000
MAX_BATCH = 4096
RUN_FILES = ("manifest.csv", "flags.csv", "splits.csv", "summary.md")


@dataclass(frozen=True)
class FolderRun:
    """What `heroes train` was asked for; None means the recipe's own default. Saved in the run's metrics."""

    data_dir: str
    recipe: str = DEFAULT_RECIPE
    backbone: str = DEFAULT_BACKBONE
    policy: str | None = None  # study recipe only: study, linear_probe or full (default study)
    weights: str = "auto"
    epochs: int | None = None
    image_size: int | None = None  # None: the backbone's default size
    seed: int = 0
    split: tuple = (0.8, 0.1, 0.1)  # train, validation, test fractions of every class
    learning_rate: float | None = None
    batch_size: int | None = None
    label_smoothing: float | None = None  # fine_tune only
    augment: bool | None = None
    tta: bool | None = None  # fine_tune only
    cache_dir: str | None = None  # decoded images and features; default $HEROES_CACHE_DIR or the user cache folder

    def check(self) -> "FolderRun":
        """This request, or a one-line ``UserError`` for the first value out of range: before anything is read."""
        from heroes.models import backbones, build

        if self.recipe not in RECIPES:
            raise UserError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        spec = backbones.get_backbone(self.backbone)
        numbers = (("--seed", self.seed, 0, MAX_SEED), ("--epochs", self.epochs, 1, MAX_EPOCHS),
                   ("--batch-size", self.batch_size, 1, MAX_BATCH),
                   ("--image-size", self.image_size, spec.min_size, MAX_IMAGE_SIZE))
        for flag, value, low, high in numbers:
            if value is not None and not low <= value <= high:
                raise UserError(f"{flag} must be a whole number from {low} to {high}, got {value}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise UserError(f"--lr must be in (0, 1], got {self.learning_rate}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        only_fine_tune = {"--label-smoothing": self.label_smoothing, "--tta/--no-tta": self.tta}
        only_study = {"--policy": self.policy}
        unused = only_fine_tune if self.recipe == "study" else only_study
        for flag, value in unused.items():
            if value is not None:
                raise UserError(f"{flag} does not apply to --recipe {self.recipe}")
        if self.policy is not None and self.policy not in build.POLICIES:
            raise UserError(f"unknown policy {self.policy!r}; known: {', '.join(build.POLICIES)}")
        build.choose_weights(self.backbone, self.weights, self.image_size)  # a missing weights file: refused now
        self.recipe_settings()
        return self

    def recipe_settings(self):
        """The ``FineTune`` or ``TrainConfig`` this request runs, every default filled in and checked."""
        from heroes.config import TrainConfig
        from heroes.models import backbones
        from heroes.training import finetune, train

        overrides = {"epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                     "augment": self.augment}
        if self.recipe == "fine_tune":
            overrides |= {"label_smoothing": self.label_smoothing, "tta": self.tta}
            chosen = {key: value for key, value in overrides.items() if value is not None}
            return dataclasses.replace(finetune.FineTune(), **chosen).check()
        chosen = {key: value for key, value in overrides.items() if value is not None}
        size = self.image_size or backbones.get_backbone(self.backbone).default_size
        config = TrainConfig(backbone=self.backbone, policy=self.policy or "study", weights=self.weights,
                             epochs=STUDY_EPOCHS, image_size=size, seed=self.seed)
        return train.final_config(dataclasses.replace(config, **chosen))


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


def cache_root(cache_dir=None) -> Path:
    """Where decoded images and features are cached: ``cache_dir``, else ``$HEROES_CACHE_DIR``, else the user's cache
    folder (platformdirs), so `train` writes nothing inside the project or beside the user's data."""
    import os

    import platformdirs

    chosen = cache_dir or os.environ.get("HEROES_CACHE_DIR") or platformdirs.user_cache_dir("heroes")
    return Path(chosen).expanduser().resolve()


def prepare(data_dir, seed: int = 0, split=(0.8, 0.1, 0.1), image_size: int = 224, cache_dir=None,
            progress: bool = True) -> dict:
    """Scan (read-only), clean (only sure defects dropped), split and decode a folder of class folders:
    {manifest, cleaned, splits, sets}, the one data preparation of `heroes train` and the real-photo benchmarks."""
    from heroes.cleaning import flags
    from heroes.data import arrays, scan

    manifest = scan.scan(Path(data_dir), progress=progress)
    if not (manifest["status"] == "ok").any():
        raise UserError(f"no readable images under {data_dir} (expected one sub-folder per class)")
    cleaned = flags.clean(manifest, progress=progress)
    splits = _split(cleaned.manifest, tuple(split), seed)
    sets = arrays.load_split_arrays(splits, image_size, cache_dir=cache_root(cache_dir) / "arrays", progress=progress)
    return {"manifest": manifest, "cleaned": cleaned, "splits": splits, "sets": sets}


def _staging(out: Path) -> Path:
    """A fresh hidden sibling of ``out`` where the run is built; creating it proves ``--out`` writable up front."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".partial-{out.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as error:
        raise UserError(f"cannot write the run folder {out}: {error.strerror or error}") from None
    return staging


def _publish(staging: Path, out: Path, force: bool) -> None:
    """Move the finished run into place in one rename; a replaced run (``force``) is removed only afterwards."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    replaced = None
    if out.exists():
        if not force:
            raise UserError(f"--out {out} was filled by another run meanwhile; pass --force to replace it")
        replaced = out.parent / f".replaced-{out.name}-{os.getpid()}"
        out.rename(replaced)
    try:
        staging.rename(out)  # fails, leaving no mix, if another run took ``out`` since
    except OSError as error:
        raise UserError(f"cannot move the finished run into {out}: {error.strerror or error}") from None
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


def _fine_tune_run(request: FolderRun, recipe, sets, run_dir: Path, choice, progress: bool):
    """Train with the fine_tune recipe and write the run's config, history, metrics, predictions and model."""
    import keras

    from heroes.config import TrainConfig, to_dict
    from heroes.models import build
    from heroes.training import finetune, runs

    size = sets["train"].images.shape[1]
    class_names = list(sets["train"].class_names)
    board = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False, profile_batch=0)
    if progress:
        sizes = ", ".join(f"{len(sets[name])} {name}" for name in ("train", "val", "test"))
        print(f"fine_tune: {request.backbone} seed {request.seed}, {sizes}; weights: {choice.source}")
    outcome = finetune.fine_tune(request.backbone, choice, sets, recipe, request.seed, size, progress, (board,))
    probabilities = finetune.probabilities(outcome["model"], sets["test"].images, recipe.tta)
    history, best = outcome["history"], outcome["best_epoch"]
    config = TrainConfig(backbone=request.backbone, policy="fine_tune", image_size=size, weights=request.weights,
                         epochs=recipe.epochs, batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
                         seed=request.seed, augment=recipe.augment, optimizer="adamw", use_cache=True)
    metrics = {
        "backbone": request.backbone, "policy": "fine_tune", "seed": request.seed, "weights": choice.source,
        "weights_random": choice.random, "weights_note": choice.note, **runs.score_test_set(sets["test"], probabilities),
        "best_epoch": best, "epochs_run": len(history),
        "best_val_loss": None if best is None else float(history["val_loss"].iloc[best - 1]),
        "best_val_accuracy": None if best is None else float(history["val_accuracy"].iloc[best - 1]),
        "head_val_accuracy": outcome["head_val_accuracy"], "precision": outcome["precision"],
        "step_seconds": {step: round(value, 3) for step, value in outcome["steps"].items()},
        "train_time_s": sum(outcome["steps"].values()), "class_names": class_names,
    }
    record = {"name": "train", "config": to_dict(config), "recipe": dataclasses.asdict(recipe),
              "class_names": class_names, "weights": choice.source, "weights_note": choice.note,
              "model": build.describe_model(outcome["model"])}
    predictions = runs.predictions_frame(sets["test"], probabilities)
    runs.write_run(run_dir, record, history, metrics, predictions, outcome["model"], class_names)
    return metrics, predictions, history


def _study_run(request: FolderRun, config, sets, run_dir: Path, cache: Path, progress: bool):
    """Train with the study's recipe (``config.policy`` on cached features) and write the run's files."""
    from heroes.training import train

    result = train.train_run(config, sets, name="train", run_dir=run_dir, cache_dir=cache / "features",
                             progress=progress, save_model=True)
    return result.metrics, result.predictions, result.history


def train_folder(request: FolderRun, out_dir, force: bool = False, progress: bool = True) -> dict:
    """Scan (read-only), clean (only sure defects dropped; review items listed), split, train, evaluate, report.

    The run is built in a hidden sibling of ``out_dir`` and renamed into place only when every file is written, so
    a failed or interrupted run leaves no folder that `predict` or `export` would take for a finished one.
    """
    from heroes.data import scan
    from heroes.io import write_csv, write_json
    from heroes.models import backbones, build
    from heroes.reporting import run_card, run_report

    request.check()
    data, out = check_places(request.data_dir, out_dir, force)
    settings = request.recipe_settings()
    size = request.image_size or backbones.get_backbone(request.backbone).default_size
    choice = build.choose_weights(request.backbone, request.weights, size)
    cache = cache_root(request.cache_dir)
    staging = _staging(out)
    try:
        prepared = prepare(data, request.seed, request.split, size, cache, progress)
        sets = prepared["sets"]
        if request.recipe == "fine_tune":
            metrics, predictions, history = _fine_tune_run(request, settings, sets, staging, choice, progress)
        else:
            metrics, predictions, history = _study_run(request, settings, sets, staging, cache, progress)
        manifest, cleaned = prepared["manifest"], prepared["cleaned"]
        scan.write_manifest(manifest, staging / "manifest.csv")
        write_csv(cleaned.flags, staging / "flags.csv", for_people=True)
        write_csv(prepared["splits"], staging / "splits.csv")
        metrics = {**metrics, "classes": list(metrics["class_names"]), "data_dir": str(data),
                   "recipe": request.recipe, "recipe_settings": dataclasses.asdict(settings),
                   "request": dataclasses.asdict(request), "manifest_hash": scan.manifest_hash(manifest),
                   "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "commit": run_card.git_state()["commit"]}  # the code that trained it (None outside a checkout)
        write_json(staging / "metrics.json", metrics)
        notes = [f"Recipe **{request.recipe}**; weights: {metrics['weights']}. Best epoch {metrics['best_epoch']} "
                 f"of {metrics['epochs_run']}. Split fractions {request.split}, seed {request.seed}.",
                 f"Classes: {', '.join(metrics['class_names'])}.",
                 f"Images waiting for review (kept out of this run, see flags.csv): {len(cleaned.pending)}."]
        run_report.write_summary(staging, metrics, predictions, history, notes)
        _publish(staging, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when published
    return {"run_dir": out, "metrics": metrics, "predictions": predictions, "summary": out / "summary.md",
            "pending": len(cleaned.pending)}


def describe(outcome: dict) -> str:
    """What a person reads at the end of `heroes train`: the headline, per-class table, confused pairs, next steps."""
    from heroes.io import printable
    from heroes.reporting import run_report

    metrics, run_dir = outcome["metrics"], outcome["run_dir"]
    return (f"{metrics['backbone']} ({metrics['weights']}), recipe {metrics['recipe']}\n"
            f"{run_report.terminal_text(metrics, outcome['predictions'])}\n\n"
            f"run: {printable(str(run_dir))}  (summary.md, metrics.json, predictions.csv, model.keras, tensorboard/)\n"
            f"{outcome['pending']} image(s) wait for review (flags.csv)\n"
            f"predict: python -m heroes predict IMAGE_OR_DIR --model {printable(shlex.quote(str(run_dir)))}")
