"""One `heroes train` resolves its spec, weights and study config once, and writes metrics.json once, with a schema."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from heroes import cli, io
from heroes.config import FinalConfig
from heroes.errors import UserError
from heroes.models import weights
from heroes.training import runs, spec
from tests.test_own_photographs import draw_named

NAMES = {"batman": "Batman", "not_a_hero": "Not a hero", "wonder_woman": "Wonder Woman"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return draw_named(tmp_path_factory.mktemp("once"), per_class=10, size=64, names=NAMES)


@pytest.fixture
def counted(monkeypatch):
    """Counts of every resolution and of every JSON file written, by file name."""
    calls = Counter()

    def count(name, function, only=lambda *args, **kwargs: True):
        def wrapper(*args, **kwargs):
            if only(*args, **kwargs):
                calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    def everywhere(original, replacement):  # in every heroes module that imported the function by name
        for module in list(sys.modules.values()):
            if (getattr(module, "__name__", "") or "").startswith("heroes"):
                for name, value in list(vars(module).items()):
                    if value is original:
                        monkeypatch.setattr(module, name, replacement)

    monkeypatch.setattr(spec.TrainSpec, "resolve", count("spec", spec.TrainSpec.resolve))
    # a choice passed through is not a resolution; a name or a path is
    everywhere(weights.resolve_weights, count(
        "weights", weights.resolve_weights, lambda backbone, chosen, **_: not isinstance(chosen, weights.WeightsChoice)))
    everywhere(spec.final_config, count(
        "study config", spec.final_config, lambda config: not isinstance(config, FinalConfig)))

    original = io.write_json

    def write_json(path, *args, **kwargs):
        calls[f"wrote {Path(path).name}"] += 1
        return original(path, *args, **kwargs)

    everywhere(original, write_json)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fine_tune", "study"])
def test_one_train_resolves_once_and_writes_metrics_once(photos, tmp_path, counted, recipe, capsys):
    out = tmp_path / "run"
    status = cli.main(["train", str(photos), "--out", str(out), "--recipe", recipe, "--epochs", "1",
                       "--image-size", "64", "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert status == 0, capsys.readouterr().err
    assert counted["spec"] == 1 and counted["weights"] == 1
    assert counted["study config"] == (1 if recipe == "study" else 0)
    assert counted["wrote metrics.json"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == runs.METRICS_SCHEMA
    assert {"test_accuracy", "test_n", "backbone", "weights", "classes", "recipe"} <= set(metrics)
    assert sorted(metrics["classes"]) == sorted(NAMES.values()) and metrics["recipe"] == recipe


def test_cli_defaults_are_the_spec_defaults(monkeypatch, tmp_path):
    seen = []

    def resolve(self):
        seen.append(self)
        raise UserError("stop before any data is read")

    monkeypatch.setattr(spec.TrainSpec, "resolve", resolve)
    assert cli.main(["train", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert seen == [spec.TrainSpec(str(tmp_path))]
    cli.main(["train", str(tmp_path), "--out", str(tmp_path / "run"), "--lr", "0.01", "--split", "0.6,0.2,0.2"])
    assert seen[-1] == spec.TrainSpec(str(tmp_path), learning_rate=0.01, split=(0.6, 0.2, 0.2))


def test_metrics_of_an_old_run_load_and_a_newer_schema_gets_one_line(tmp_path):
    old = {"backbone": "vgg16", "policy": "study", "seed": 0, "weights": "random", "weights_random": True,
           "weights_note": "", "class_names": ["a", "b"], "test_n": 2, "test_correct": 1, "test_accuracy": 0.5,
           "test_loss": 0.7, "best_epoch": 1, "epochs_run": 1, "best_val_loss": 0.6, "best_val_accuracy": 0.5,
           "train_time_s": 1.0}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    read = runs.read_metrics(tmp_path)
    assert read.schema == 0 and read.classes == ["a", "b"] and read.details == {"train_time_s": 1.0}
    assert read.to_json()["test_accuracy"] == 0.5
    (tmp_path / "metrics.json").write_text(json.dumps({**old, "schema": runs.METRICS_SCHEMA + 1}))
    with pytest.raises(UserError, match=f"schema {runs.METRICS_SCHEMA + 1}; this heroes reads up to"):
        runs.read_metrics(tmp_path)
