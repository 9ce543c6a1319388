"""`make reproduce` argument checks: bad overrides fail before any notebook runs, with one clear line."""

import pandas
import pytest

from heroes import cli
from heroes.reporting import reproduce as pipeline
from heroes.data import sizing
from heroes.errors import UserError


def test_overrides_map_make_variables_to_notebook_parameters():
    assert pipeline.overrides(seeds=3, size=96, per_class=60, epochs=2) == {
        "seeds": [0, 1, 2], "image_size": 96, "per_class": 60, "epochs": 2,
        "train_count": 48, "val_count": 6, "test_count": 6}  # the study's 200/25/25 proportions
    assert pipeline.overrides(per_class=250)["train_count"] == 200
    assert pipeline.overrides() == {}
    with pytest.raises(UserError, match=r"SEEDS \(--seeds\) must be a whole number from 1 to 100, got 0"):
        pipeline.overrides(seeds=0)
    with pytest.raises(UserError, match="PER_CLASS=3 leaves no training images"):
        pipeline.overrides(per_class=3)


@pytest.mark.parametrize("name, option, value", [
    ("EPOCHS", "--epochs", 0), ("EPOCHS", "--epochs", 1001), ("SEEDS", "--seeds", -1), ("SEEDS", "--seeds", 101),
    ("SIZE", "--image-size", 31), ("SIZE", "--image-size", 100000), ("PER_CLASS", "--per-class", 0),
    ("PER_CLASS", "--per-class", 10**9)])
def test_reproduce_refuses_a_number_out_of_its_range_before_any_notebook(monkeypatch, capsys, name, option, value):
    ran = []
    monkeypatch.setattr(pipeline, "run_notebooks", lambda *args, **kwargs: ran.append(args) or [])
    assert cli.main(["reproduce", option, str(value)]) == 2 and not ran
    low, high = pipeline.RANGES[name]
    expected = f"error: {name} ({option}) must be a whole number from {low} to {high}, got {value}\n"
    assert capsys.readouterr().err == expected


def test_a_size_below_the_tiny_threshold_is_refused_before_drawing(monkeypatch):
    ran = []
    monkeypatch.setattr(pipeline.sources, "has_images", lambda folder: False)
    monkeypatch.setattr(pipeline, "run_notebooks", lambda *args, **kwargs: ran.append(args) or [])
    with pytest.raises(UserError, match="SIZE=32 .* below the 64 px"):
        pipeline.reproduce(size=32)
    assert not ran


def test_an_all_flagged_manifest_is_explained_not_a_nan_error():
    flagged = pandas.DataFrame({"label": ["batman"], "role": ["data"], "status": ["rejected"]}).iloc[:0]
    with pytest.raises(UserError, match="cleaning left no images"):
        sizing.fitting_counts(flagged, 200, 25, 25)
