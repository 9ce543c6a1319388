"""Run directories: what one training run writes (config, history, metrics, predictions, model) and reads back.

Layout of ``models/<name>-<backbone>-<policy>-s<seed>/``::

    config.json        the final TrainConfig, data sizes, class names, manifest hash, weights source
    history.csv        one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, seconds
    metrics.json       ``RunMetrics`` (schema 1): test accuracy/loss/n, weights, classes, best epoch, the path's details
    predictions.csv    the test set in a fixed order: path, sha256, label, predicted, correct, prob_<class>...
    model.keras        the trained model (best validation loss), raw 0-255 RGB in
    model.class_names.json   its class names in output order (heroes.models.saving.save_model)
    versions.json      python, tensorflow, keras, numpy... versions
"""

import json
import platform
import sys
from dataclasses import dataclass, field, fields
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
METRICS_SCHEMA = 1  # metrics.json without "schema" was written before schema 1 and loads as schema 0


@dataclass(frozen=True)
class RunMetrics:
    """metrics.json, written once per run by ``write_run``: the fields every run has, then ``details``, what its
    recipe and entry point add (timings, cache use, the request), flattened into the same JSON object."""

    backbone: str
    policy: str
    seed: int
    weights: str
    weights_random: bool
    weights_note: str
    classes: list
    test_n: int
    test_correct: int
    test_accuracy: float | None
    test_loss: float | None
    best_epoch: int | None
    epochs_run: int
    best_val_loss: float | None
    best_val_accuracy: float | None
    details: dict = field(default_factory=dict)
    schema: int = METRICS_SCHEMA

    @classmethod
    def of_run(cls, backbone, policy, seed, choice, test_set, probabilities, history, best_epoch, details):
        """The metrics of a finished run: its test-set score and its best epoch's validation numbers."""
        def at_best(column):
            return None if best_epoch is None else float(history[column].iloc[best_epoch - 1])

        return cls(backbone=backbone, policy=policy, seed=seed, weights=choice.source, weights_random=choice.random,
                   weights_note=choice.note, classes=list(test_set.class_names),
                   **score_test_set(test_set, probabilities), best_epoch=best_epoch, epochs_run=len(history),
                   best_val_loss=at_best("val_loss"), best_val_accuracy=at_best("val_accuracy"), details=details)

    def with_details(self, **details) -> "RunMetrics":
        """These metrics with more details (what the entry point knows: data folder, request, commit)."""
        return RunMetrics(**{**{f.name: getattr(self, f.name) for f in fields(self)},
                             "details": {**self.details, **details}})

    def to_json(self) -> dict:
        """The JSON object of metrics.json: schema first, the fields, ``class_names`` (= classes), the details."""
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("details", "schema")}
        return {"schema": self.schema, **named, "class_names": list(self.classes), **self.details}

    @classmethod
    def from_json(cls, data: dict, source="metrics.json") -> "RunMetrics":
        """Read metrics.json back; one clear ``UserError`` for a schema newer than this code reads."""
        schema = data.get("schema", 0)
        if not isinstance(schema, int) or schema > METRICS_SCHEMA:
            raise UserError(f"{source} has schema {schema!r}; this heroes reads up to schema {METRICS_SCHEMA}: "
                            f"update heroes to read it")
        names = {f.name for f in fields(cls)} - {"details", "schema"}
        values = {name: data.get(name) for name in names}
        values["classes"] = data.get("classes") or data.get("class_names") or []
        details = {key: value for key, value in data.items() if key not in names | {"schema", "class_names"}}
        return cls(**values, details=details, schema=schema)


@dataclass
class RunResult:
    """Everything one run produced: ``record`` is config.json; ``model`` is None when read back without loading it."""

    run_dir: Path
    config: TrainConfig
    history: pandas.DataFrame
    metrics: dict  # ``RunMetrics.to_json()``
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


def write_run(run_dir, record: dict, history, metrics: RunMetrics, predictions, model, class_names) -> Path:
    """Write every file of a run directory; the model (unless None) last, so a present model means a finished run."""
    from heroes.models import saving

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MODEL).unlink(missing_ok=True)  # a model left by an earlier run here must not pass for this one's
    write_json(run_dir / CONFIG, record)
    write_csv(history, run_dir / HISTORY)
    write_json(run_dir / METRICS, metrics.to_json())
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
        config=config_of(record["config"]),
        record=record,
        history=pandas.read_csv(run_dir / HISTORY),
        metrics=read_metrics(run_dir).to_json(),
        predictions=pandas.read_csv(run_dir / PREDICTIONS, keep_default_na=False),
        model=model,
    )


def read_metrics(run_dir) -> RunMetrics:
    """A run's metrics.json; a ``UserError`` naming the file when it is unreadable or from a newer schema."""
    path = Path(run_dir) / METRICS
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object")
    return RunMetrics.from_json(data, source=str(path))


def config_of(recorded: dict) -> TrainConfig:
    """The ``TrainConfig`` a config.json records (its weights choice rebuilt; fields it lacks take defaults)."""
    from heroes.models.weights import WeightsChoice

    known = {f.name for f in fields(TrainConfig)}
    values = {key: value for key, value in recorded.items() if key in known}
    choice = values.get("weights_choice")
    if isinstance(choice, dict):
        values["weights_choice"] = WeightsChoice(**{**choice, "path": None if choice.get("path") is None
                                                    else Path(choice["path"])})
    return TrainConfig(**values)
