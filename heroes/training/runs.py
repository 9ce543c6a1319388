"""Run directories: what one training run writes (config, history, metrics, predictions, model) and reads back.

Layout of ``models/<name>-<backbone>-<policy>-s<seed>/``::

    config.json        the final TrainConfig, data sizes, class names, manifest hash, weights source
    history.csv        one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds
    metrics.json       test accuracy/loss/n, weights source, best epoch, timings, feature-cache use
    predictions.csv    the test set in a fixed order: path, sha256, label, predicted, correct, prob_<class>...
    model.keras        the trained model (best validation loss), raw 0-255 RGB in
    model.class_names.json   its class names in output order (heroes.models.saving.save_model)
    versions.json      python, tensorflow, keras, numpy... versions
"""

import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy
import pandas

from heroes import paths
from heroes.config import TrainConfig
from heroes.errors import UserError
from heroes.io import write_csv, write_json

CONFIG, HISTORY, METRICS, PREDICTIONS, MODEL, VERSIONS = (
    "config.json", "history.csv", "metrics.json", "predictions.csv", "model.keras", "versions.json",
)


PROBABILITY_PREFIX = "prob_"


@dataclass
class RunResult:
    """Everything one run produced: ``record`` is config.json; ``model`` is None when read back without loading it."""

    run_dir: Path
    config: TrainConfig
    history: pandas.DataFrame
    metrics: dict
    predictions: pandas.DataFrame
    model: object = None
    record: dict = field(default_factory=dict)


def default_run_dir(name: str, config, root=None) -> Path:
    """``models/<name>-<backbone>-<policy>-s<seed>``."""
    return Path(root or paths.MODELS) / f"{name}-{config.backbone}-{config.policy}-s{config.seed}"


def library_versions() -> dict:
    """Versions that change numbers: python, tensorflow, keras, numpy, pandas, and the machine."""
    import keras
    import tensorflow

    return {
        "python": sys.version.split()[0], "tensorflow": tensorflow.__version__, "keras": keras.__version__,
        "numpy": numpy.__version__, "pandas": pandas.__version__, "platform": platform.platform(),
        "machine": platform.machine(),
    }


def probability_columns(class_names) -> list:
    """``prob_<class>`` column of each class, in output order."""
    return [f"{PROBABILITY_PREFIX}{name}" for name in class_names]


def predictions_frame(image_set, probabilities: numpy.ndarray) -> pandas.DataFrame:
    """One row per test image in the set's fixed order, with every class probability."""
    class_names = list(image_set.class_names)
    predicted = probabilities.argmax(axis=1)
    frame = pandas.DataFrame({
        "path": list(image_set.paths),
        "sha256": list(image_set.sha256),
        "label": [class_names[index] for index in image_set.labels],
        "predicted": [class_names[index] for index in predicted],
        "correct": predicted == image_set.labels,
    })
    probability = pandas.DataFrame(probabilities.astype("float64"), columns=probability_columns(class_names))
    return pandas.concat([frame, probability], axis=1)


def score_test_set(image_set, probabilities: numpy.ndarray) -> dict:
    """Accuracy, mean cross-entropy (probabilities clipped like Keras) and counts on the test set."""
    if len(image_set) == 0:
        return {"test_n": 0, "test_correct": 0, "test_accuracy": None, "test_loss": None}
    true = probabilities[numpy.arange(len(image_set)), image_set.labels].astype("float64")
    correct = int((probabilities.argmax(axis=1) == image_set.labels).sum())
    return {
        "test_n": len(image_set), "test_correct": correct, "test_accuracy": correct / len(image_set),
        "test_loss": float(-numpy.log(numpy.clip(true, 1e-7, 1.0)).mean()),
    }


def write_run(run_dir, record: dict, history, metrics, predictions, model, class_names) -> Path:
    """Write every file of a run directory; the model (unless None) last, so a present model means a finished run."""
    from heroes.models import saving

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MODEL).unlink(missing_ok=True)  # a model left by an earlier run here must not pass for this one's
    write_json(run_dir / CONFIG, record)
    write_csv(history, run_dir / HISTORY)
    write_json(run_dir / METRICS, metrics)
    write_csv(predictions, run_dir / PREDICTIONS)
    write_json(run_dir / VERSIONS, library_versions())
    if model is not None:
        saving.save_model(model, run_dir / MODEL, class_names)
    return run_dir


def read_run(run_dir, load_model=False) -> RunResult:
    """Read a run directory back (``load_model=True`` also loads the ``.keras`` model)."""
    run_dir = Path(run_dir)
    missing = [name for name in (CONFIG, HISTORY, METRICS, PREDICTIONS) if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a finished run directory: missing {', '.join(missing)}")
    model = None
    if load_model:
        from heroes.models import saving

        model, _ = saving.load_model(run_dir / MODEL)
    record = json.loads((run_dir / CONFIG).read_text())
    return RunResult(
        run_dir=run_dir,
        config=TrainConfig(**record["config"]),
        record=record,
        history=pandas.read_csv(run_dir / HISTORY),
        metrics=json.loads((run_dir / METRICS).read_text()),
        predictions=pandas.read_csv(run_dir / PREDICTIONS, keep_default_na=False),
        model=model,
    )
