"""Read a reports folder's metrics files: schema 1 through its dataclasses, older files mapped onto the same fields."""

import json
from dataclasses import fields
from pathlib import Path

from heroes.models.backbones import display_name
from heroes.reporting.study_metrics import (SCHEMA, BatmanVsHuman, Comparison, SixClass, read_study_metrics,
                                            schema_said)

REPRODUCE_FILE = "reproduce.json"  # make reproduce's timings (heroes.reporting.reproduce): not a notebook's metrics
LEGACY = {"02": BatmanVsHuman, "03": SixClass, "04": Comparison}  # notebook number -> what it wrote before schema 1
LEGACY_TITLES = {"02": "Batman vs Not a hero", "03": "Six-class VGG16 fine-tune", "04": "VGG16 vs ResNet50"}


def read_json_files(metrics_dir) -> tuple:
    """({file stem: parsed JSON object}, [problems]) for every ``*.json`` in ``metrics_dir``; unreadable files named."""
    found, problems = {}, []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append(f"`{path.name}` could not be read ({error.__class__.__name__}: {error}); left out")
            continue
        if not isinstance(value, dict):
            problems.append(f"`{path.name}` is not a JSON object; left out")
            continue
        found[path.stem] = value
    return found, problems


def read_studies(metrics_dir) -> tuple:
    """({file stem: StudyMetrics}, reproduce.json's record or {}, [problems]): one line for each file left out, and
    for each file read through the layout from before schema 1."""
    records, problems = read_json_files(metrics_dir)
    reproduce = records.pop(Path(REPRODUCE_FILE).stem, {})
    studies = {}
    for stem, record in records.items():
        try:
            if isinstance(record.get("schema"), int):
                studies[stem] = read_study_metrics(record, f"{stem}.json")
                continue
            studies[stem] = legacy_study(stem, record, Path(metrics_dir).parent)
            problems.append(f"`{stem}.json` has {schema_said(record)} (written before schema {SCHEMA}): read "
                            "through its old layout; `make reproduce` rewrites it")
        except ValueError as error:
            problems.append(f"{error}; left out")
    return studies, reproduce, problems


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _weights(record: dict) -> dict:
    """{backbone: {source, random, note}} from 04's dicts, 02's {model: source} or 03's one source and backbone."""
    weights = record.get("weights")
    if isinstance(weights, str):
        weights = {record.get("backbone") or "vgg16": weights}
    return {name: value if isinstance(value, dict) else
            {"source": str(value), "random": str(value).lower().startswith("random"), "note": ""}
            for name, value in _dict(weights).items()}


def _data(data) -> dict:
    """04's data dict as it is; 02's and 03's sentence ("data: THE EMBEDDED SYNTHETIC DATASET ...") as its source."""
    if isinstance(data, dict):
        return data
    return {"source": "embedded" if "embedded synthetic" in str(data).lower() else "user", "note": str(data or "")}


def _run_dirs(models: dict) -> list:
    """The run folders named by each model (02, 03) or each model's seeds (04)."""
    named = []
    for numbers in map(_dict, models.values()):
        named.append(numbers.get("run_dir"))
        named += [_dict(seed).get("run_dir") for seed in _dict(numbers.get("per_seed")).values()]
    return [run_dir for run_dir in named if isinstance(run_dir, str)]


def _figures_by_prefix(number: str, reports_dir: Path) -> dict:
    """{file name: relative path} of ``figures/NN-*.png``: 02 and 03 named no figures before schema 1."""
    return {path.name: f"figures/{path.name}" for path in sorted((reports_dir / "figures").glob(f"{number}-*.png"))}


def legacy_study(stem: str, record: dict, reports_dir: Path):
    """A metrics file of notebook 02, 03 or 04 written before schema 1, as the dataclass its notebook writes now
    (03 kept one model's numbers at the top level; 02 and 03 wrote a ``summary`` sentence and no figures)."""
    number = stem.split("-", 1)[0]
    kind = LEGACY.get(number)
    if kind is None:
        raise ValueError(f"`{stem}.json` has {schema_said(record)} (written before schema {SCHEMA}) and is no "
                         "notebook's known layout: regenerate it with `make reproduce`")
    models = _dict(record.get("models"))
    if kind is SixClass and not models:
        models = {display_name(record.get("backbone") or "vgg16"): record}
    config = _dict(record.get("config")) or {key: record[key] for key in ("image_size", "epochs", "seed")
                                              if key in record}
    values = {"notebook": record.get("notebook") or stem, "title": record.get("title") or LEGACY_TITLES[number],
              "weights": _weights(record), "data": _data(record.get("data")), "config": config, "models": models,
              "verdict": record.get("verdict") or record.get("summary") or "", "run_dirs": _run_dirs(models),
              "figures": _dict(record.get("figures")) or _figures_by_prefix(number, reports_dir),
              "created": record.get("created") or "", "study_claim": record.get("study_claim_100_percent_of_50")}
    return kind(**{item.name: _or_empty(values.get(item.name, record.get(item.name)), item.type)
                   for item in fields(kind)})


def _or_empty(value, annotation):
    """``value``, or an empty dict or string for a field of that type that the old file did not have."""
    if value is not None:
        return value
    return {dict: {}, str: ""}.get(annotation)
