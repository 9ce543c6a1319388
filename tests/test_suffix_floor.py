"""The suffix-floor benchmark: the training budget the 15x target leaves, read from the study benchmark's file."""

import json

import pytest
from benchmark_scripts import load_script

from heroes import paths


@pytest.fixture(scope="module")
def floor():
    return load_script("suffix_floor")


def test_the_budget_is_naive_over_target_less_everything_but_training_per_epoch(floor, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "PROJ_ROOT", tmp_path)
    latest = tmp_path / "latest.json"
    latest.write_text(json.dumps({"settings": {"epochs": 10}, "git": {"commit": "abc"},
                                  "vgg16": {"naive": {"wall_s": 966.0},
                                            "cached": {"wall_s": 80.0, "steps_s": {"fit": 24.0}}}}))
    budget = floor.training_budget(latest)
    assert budget["cached_wall_s_without_training"] == 56.0
    assert budget["training_s_per_epoch_left"] == round((966.0 / 15 - 56.0) / 10, 2)  # 0.84 s
    assert budget["from"] == "latest.json" and budget["commit"] == "abc"
    assert floor.training_budget(tmp_path / "missing.json") is None


def test_the_fc2_parts_are_timed_with_and_without_xla(floor):
    parts = floor.fc2_parts(steps=2)
    assert set(parts) == {"forward x.W", "input gradient d.W^T", "update (x^T d, momentum, weights)"}
    assert all(times["xla"] > 0 and times["no_xla"] > 0 for times in parts.values())
