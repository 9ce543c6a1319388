"""`heroes train`: a folder of class folders in, a trained and evaluated model out (scan, clean, split, train, report)."""

import dataclasses
import math
import os
import shlex
import shutil
from datetime import datetime, timezone
from pathlib import Path

from heroes.errors import UserError
from heroes.training.spec import ResolvedTrain, TrainSpec

RUN_FILES = ("manifest.csv", "flags.csv", "splits.csv", "summary.md")


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


def cache_root(cache_dir=None) -> Path:
    """Where decoded images and features are cached: ``cache_dir``, else ``$HEROES_CACHE_DIR``, else the user's cache
    folder (platformdirs), so `train` writes nothing inside the project or beside the user's data."""
    import os

    import platformdirs

    chosen = cache_dir or os.environ.get("HEROES_CACHE_DIR") or platformdirs.user_cache_dir("heroes")
    return Path(chosen).expanduser().resolve()


def prepare(data_dir, seed: int = 0, split=(0.8, 0.1, 0.1), image_size: int = 224, cache_dir=None,
            progress: bool = True) -> dict:
    """`heroes train`'s call of the one data preparation (``heroes.data.prepare.prepare``): scan (read-only), clean
    (only sure defects dropped), split by fractions and decode at ``image_size``, arrays cached under
    ``cache_root(cache_dir)``: {manifest, cleaned, splits, sets, ...}; the real-photo benchmarks call it too."""
    from heroes.data.prepare import prepare as prepare_data

    return prepare_data(data_dir, split=tuple(split), seed=seed, image_size=image_size,
                        cache_dir=cache_root(cache_dir) / "arrays", progress=progress)


def flagged_test_count(splits) -> int:
    """Test images waiting for review: kept in the test split (no review flag chooses it), scored both ways."""
    from heroes.data.split import pending_mask

    return int((pending_mask(splits) & (splits["split"] == "test")).sum())


def scored_both_ways(predictions, splits) -> str:
    """The run's test accuracy both ways: on every test image, and on those that wait for no review
    (``heroes.evaluation.flagged.score_both_ways``)."""
    from heroes.evaluation.flagged import score_both_ways

    scores = score_both_ways(predictions, splits)

    def accuracy(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"  # NaN: no image to score

    if not scores.flagged:
        return f"Test accuracy {accuracy(scores.accuracy_all)}; no test image waits for review."
    return (f"Test accuracy {accuracy(scores.accuracy_all)} on all {scores.images} test images, "
            f"{accuracy(scores.accuracy_unflagged)} on the {scores.unflagged} not flagged for review "
            f"({scores.flagged} flagged image(s) kept in the test split).")


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


def _fine_tune_run(resolved: ResolvedTrain, sets, run_dir: Path, details: dict, progress: bool):
    """Train with the fine_tune recipe and write the run's config, history, metrics, predictions and model."""
    import keras

    from heroes.config import TrainConfig, to_dict
    from heroes.models import build
    from heroes.training import finetune, runs

    spec, recipe, choice, size = resolved.spec, resolved.settings, resolved.weights, resolved.image_size
    class_names = list(sets["train"].class_names)
    board = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False, profile_batch=0)
    if progress:
        sizes = ", ".join(f"{len(sets[name])} {name}" for name in ("train", "val", "test"))
        print(f"fine_tune: {spec.backbone} seed {spec.seed}, {sizes}; weights: {choice.source}")
    outcome = finetune.fine_tune(spec.backbone, choice, sets, recipe, spec.seed, size, progress, (board,))
    probabilities = finetune.probabilities(outcome["model"], sets["test"].images, recipe.tta)
    history = outcome["history"]
    config = TrainConfig(backbone=spec.backbone, policy="fine_tune", image_size=size, weights=spec.weights,
                         weights_choice=choice, epochs=recipe.epochs, batch_size=recipe.batch_size,
                         learning_rate=recipe.learning_rate, seed=spec.seed, augment=recipe.augment,
                         optimizer="adamw", use_cache=True)
    details = {"head_val_accuracy": outcome["head_val_accuracy"], "precision": outcome["precision"],
               "step_seconds": {step: round(value, 3) for step, value in outcome["steps"].items()},
               "train_time_s": sum(outcome["steps"].values()), **details}
    metrics = runs.RunMetrics.of_run(spec.backbone, "fine_tune", spec.seed, choice, sets["test"], probabilities,
                                     history, outcome["best_epoch"], details)
    record = {"name": "train", "config": to_dict(config), "recipe": dataclasses.asdict(recipe),
              "class_names": class_names, "weights": choice.source, "weights_note": choice.note,
              "model": build.describe_model(outcome["model"])}
    predictions = runs.predictions_frame(sets["test"], probabilities)
    runs.write_run(run_dir, record, history, metrics, predictions, outcome["model"], class_names)
    return metrics.to_json(), predictions, history


def _study_run(resolved: ResolvedTrain, sets, run_dir: Path, cache: Path, details: dict, progress: bool):
    """Train with the study's recipe (its policy on cached features) and write the run's files."""
    from heroes.training import train

    result = train.train_run(resolved.settings, sets, name="train", run_dir=run_dir, cache_dir=cache / "features",
                             progress=progress, save_model=True, details=details)
    return result.metrics, result.predictions, result.history


def train_folder(spec: TrainSpec | ResolvedTrain, out_dir, force: bool = False, progress: bool = True) -> dict:
    """Scan (read-only), clean (only sure defects dropped; review items listed), split, train, evaluate, report.

    ``spec`` is resolved here unless the entry point resolved it already (``TrainSpec.resolve``: once per entry).
    The run is built in a hidden sibling of ``out_dir`` and renamed into place only when every file is written, so
    a failed or interrupted run leaves no folder that `predict` or `export` would take for a finished one.
    """
    from heroes.config import to_dict
    from heroes.data import scan
    from heroes.io import write_csv
    from heroes.reporting import run_card, run_report

    resolved = spec if isinstance(spec, ResolvedTrain) else spec.resolve()
    spec = resolved.spec
    data, out = check_places(spec.data_dir, out_dir, force)
    cache = cache_root(spec.cache_dir)
    staging = _staging(out)
    try:
        prepared = prepare(data, spec.seed, spec.split, resolved.image_size, cache, progress)
        sets, manifest, cleaned = prepared["sets"], prepared["manifest"], prepared["cleaned"]
        details = {"data_dir": str(data), "recipe": spec.recipe, "recipe_settings": to_dict(resolved.settings),
                   "request": to_dict(spec), "manifest_hash": scan.manifest_hash(manifest),
                   "test_flagged_n": flagged_test_count(prepared["splits"]),  # kept in test, scored both ways
                   "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "commit": run_card.git_state()["commit"]}  # the code that trained it (None outside a checkout)
        if spec.recipe == "fine_tune":
            metrics, predictions, history = _fine_tune_run(resolved, sets, staging, details, progress)
        else:
            metrics, predictions, history = _study_run(resolved, sets, staging, cache, details, progress)
        scan.write_manifest(manifest, staging / "manifest.csv")
        write_csv(cleaned.flags, staging / "flags.csv", for_people=True)
        write_csv(prepared["splits"], staging / "splits.csv")
        notes = [f"Recipe **{spec.recipe}**; weights: {metrics['weights']}. Best epoch {metrics['best_epoch']} "
                 f"of {metrics['epochs_run']}. Split fractions {spec.split}, seed {spec.seed}.",
                 f"Classes: {', '.join(metrics['class_names'])}.",
                 f"Images waiting for review (see flags.csv): {len(cleaned.pending)}; doubtful labels and cross-class "
                 f"copies among them are never trained or validated on.",
                 scored_both_ways(predictions, prepared["splits"])]
        run_report.write_summary(staging, metrics, predictions, history, notes)
        _publish(staging, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when published
    return {"run_dir": out, "metrics": metrics, "predictions": predictions, "summary": out / "summary.md",
            "pending": len(cleaned.pending), "test_scores": notes[-1]}


def describe(outcome: dict) -> str:
    """What a person reads at the end of `heroes train`: the headline, per-class table, confused pairs, next steps."""
    from heroes.io import printable
    from heroes.reporting import run_report

    metrics, run_dir = outcome["metrics"], outcome["run_dir"]
    return (f"{metrics['backbone']} ({metrics['weights']}), recipe {metrics['recipe']}\n"
            f"{run_report.terminal_text(metrics, outcome['predictions'])}\n\n"
            f"run: {printable(str(run_dir))}  (summary.md, metrics.json, predictions.csv, model.keras, tensorboard/)\n"
            f"{outcome['pending']} image(s) wait for review (flags.csv); {outcome['test_scores']}\n"
            f"predict: python -m heroes predict IMAGE_OR_DIR --model {printable(shlex.quote(str(run_dir)))}")
