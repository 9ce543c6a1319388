"""The study notebooks' metrics files (``reports/metrics/NN-*.json``): one frozen dataclass per notebook, one writer."""

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from heroes import paths
from heroes.data.sources import EMBEDDED_NOTE, split_counts
from heroes.io import write_json
from heroes.reporting.verdicts import equivalence_sentence, pooled_sentence, sign_convention, verdict_sentence

SCHEMA = 1  # a file without an integer "schema" was written before schema 1: heroes.reporting.metrics_files reads it
REMAKE = "regenerate it with `make reproduce`"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True, kw_only=True)
class StudyMetrics:
    """What every study notebook records; ``heroes.reporting.summary`` reads these fields by name."""

    kind: ClassVar[str] = ""
    notebook: str  # the notebook's study name, e.g. "02-batman-vs-human" (also its metrics file's and runs' name)
    title: str  # the summary's heading for this notebook
    weights: dict  # {backbone: {"source", "random", "note"}}: where each model's starting weights came from
    data: dict  # ``data_record``: {"source": "embedded" | "user", "note", "embedded_settings", "manifest_hash", ...}
    config: dict  # the recipe: image_size, epochs, seeds, policy, ... (``recipe_record``)
    models: dict  # {model name: its test numbers (test_n, test_accuracy, test_accuracy_ci, macro_f1, ...)}
    verdict: str  # the notebook's headline, one or two sentences
    run_dirs: list  # every run folder behind the numbers (written project-relative where inside the project)
    figures: dict = field(default_factory=dict)  # {caption: figure path} (written relative to the reports folder)
    created: str = field(default_factory=_now)

    @property
    def weights_random(self) -> bool:
        """True when any model behind these numbers started from random weights."""
        return any(choice.get("random") for choice in self.weights.values())

    @property
    def embedded(self) -> bool:
        """True when the data is the embedded synthetic dataset."""
        return self.data.get("source") == "embedded"


@dataclass(frozen=True, kw_only=True)
class BatmanVsHuman(StudyMetrics):
    """Notebook 02: one run per backbone on two classes, the study's "100% of 50" claim, the unmasked-hero probes."""

    kind: ClassVar[str] = "batman-vs-human"
    study_claim: dict  # the exact 95% CI of 50 correct out of 50: {"accuracy_ci", "method"}
    probe_summary: dict  # {probe class: {"probes": n, "<model>: Not a hero": share, "<model>: own class": share}}
    probes: dict  # {model: [{path, predicted, probability}]}


@dataclass(frozen=True, kw_only=True)
class SixClass(StudyMetrics):
    """Notebook 03: one backbone fine-tuned on every class, against chance, with its saved model."""

    kind: ClassVar[str] = "six-class"
    chance: float  # 1 / number of classes
    model_path: str | None  # the saved model, None when the notebook did not save it


@dataclass(frozen=True, kw_only=True)
class Comparison(StudyMetrics):
    """Notebook 04: backbones over seeds, the paired and pooled tests, baselines, overfitting, costs, the run card."""

    kind: ClassVar[str] = "comparison"
    table: dict  # {columns, rows} of display strings (``heroes.reporting.tables.table_block``); baselines are rows
    table_note: str
    comparison: dict  # ``heroes.evaluation.stats.compare_models`` of the first seed, plus ``pairing``
    first_seed_verdict: str
    per_seed: dict  # {columns, rows}
    sign_convention: str  # every difference is B − A, said once
    pooled: dict | None  # ``heroes.evaluation.pooled.pooled_comparison`` plus its ``table``
    seed_note: str
    baselines: dict  # {name: ``heroes.reporting.tables.baseline_summary``}
    overfitting: dict  # {"sentence", "table", "assessment"}
    run_card: dict  # ``heroes.reporting.run_card.run_card`` (with ``seed_varies``: what one seed changes)
    # Added within schema 1 (files without them still load, with these empty):
    baseline_tests: dict = field(default_factory=dict)  # {"sentence", "table", "tests"}: each network vs each baseline
    convergence: dict = field(default_factory=dict)  # {"sentence", "table", "runs", "patience", "max_epochs"}
    equivalence: str = ""  # the conditional odds ratio and what TOST excludes (``verdicts.equivalence_sentence``)
    calibration: dict = field(default_factory=dict)  # {"sentence", "result"}: Brier and log loss, paired CIs
    flagged_test: dict = field(default_factory=dict)  # {"sentence", "table"}: scored with and without flagged images


KINDS = {kind.kind: kind for kind in (BatmanVsHuman, SixClass, Comparison)}


def weights_record(choices: dict) -> dict:
    """The ``weights`` field from ``{backbone: WeightsChoice}``."""
    return {backbone: {"source": choice.source, "random": choice.random, "note": choice.note}
            for backbone, choice in choices.items()}


def data_record(embedded, manifest_hash: str, splits, sets) -> dict:
    """The ``data`` field: whose images (``embedded``: the embedded set's settings, None for the user's), the manifest
    hash, images per split and per class (``splits``: notebook 01's split), the class names in output order."""
    return {"source": "user" if embedded is None else "embedded", "note": "" if embedded is None else EMBEDDED_NOTE,
            "embedded_settings": embedded, "manifest_hash": manifest_hash,
            "splits": {name: len(sets[name]) for name in ("train", "val", "test")},
            "per_class": split_counts(splits).to_dict(orient="index"), "class_names": list(sets["train"].class_names)}


def recipe_record(config, seeds, **extra) -> dict:
    """The ``config`` field from a ``TrainConfig``, the seeds and anything notebook-specific in ``extra``."""
    return {"image_size": config.image_size, "epochs": config.epochs, "seeds": [int(seed) for seed in seeds],
            "policy": config.policy, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "momentum": config.momentum, "feature_dtype": config.feature_dtype, **extra}


def comparison_metrics(*, comparison, pairing, pooled=None, pooled_table=None, overfitting_sentence,
                       overfitting_table, overfitting=None, **rest) -> Comparison:
    """Notebook 04's metrics: the pooled sentence is the ``verdict`` (the first seed's when nothing was pooled), the
    first seed's stays as ``first_seed_verdict``; the sign convention comes from the compared names."""
    return Comparison(
        comparison={**comparison, "pairing": pairing}, first_seed_verdict=verdict_sentence(comparison),
        verdict=pooled_sentence(pooled) if pooled else verdict_sentence(comparison),
        equivalence=equivalence_sentence(pooled) if pooled else "",
        sign_convention=sign_convention(comparison["names"]),
        pooled=None if pooled is None else {**pooled, "table": pooled_table},
        overfitting={"sentence": overfitting_sentence, "table": overfitting_table, "assessment": overfitting},
        **rest)


def _relative(path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else absolute; a relative ``path`` is kept as given."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.resolve().relative_to(folder))
    except ValueError:
        return str(path.resolve())


def write_study_metrics(path, metrics: StudyMetrics) -> Path:
    """The one writer of a study metrics file: ``schema`` and ``kind`` first, then every field, run folders relative
    to the project and figures to the reports folder (the file's grandparent) where they lie inside them."""
    reports_dir = Path(path).resolve().parent.parent
    values = {item.name: getattr(metrics, item.name) for item in fields(metrics)}
    values["run_dirs"] = list(dict.fromkeys(_relative(run_dir, paths.PROJ_ROOT) for run_dir in metrics.run_dirs))
    values["figures"] = {caption: _relative(figure, reports_dir) for caption, figure in metrics.figures.items()}
    return write_json(path, {"schema": SCHEMA, "kind": metrics.kind, **values})


def schema_said(record: dict) -> str:
    """'no schema version' or 'schema 2': how a file's schema is named in one-line problems."""
    return "no schema version" if record.get("schema") is None else f"schema {record['schema']!r}"


def read_study_metrics(record: dict, name: str = "metrics file") -> StudyMetrics:
    """A schema-1 record back as the dataclass that wrote it; ``ValueError`` with one line saying why it cannot be
    (no schema, a newer schema, an unknown kind, fields that do not match)."""
    schema = record.get("schema")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise ValueError(f"`{name}` has schema {schema}, newer than this heroes reads ({SCHEMA}): update heroes, "
                         f"or {REMAKE}")
    if schema != SCHEMA:
        raise ValueError(f"`{name}` has {schema_said(record)} (written before schema {SCHEMA}): {REMAKE}")
    kind = KINDS.get(record.get("kind"))
    if kind is None:
        raise ValueError(f"`{name}` has kind {record.get('kind')!r}, not one of {', '.join(KINDS)}: {REMAKE}")
    try:
        return kind(**{key: value for key, value in record.items() if key not in ("schema", "kind")})
    except TypeError as error:
        raise ValueError(f"`{name}` does not match schema {SCHEMA} {kind.kind!r} ({error}): {REMAKE}") from None
