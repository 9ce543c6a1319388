"""The Python API a notebook uses: train in three lines, read the metrics, predict, inspect; UserError on bad input."""

import pandas
import pytest

import heroes
from heroes.errors import UserError
from tests.test_own_photographs import draw_named

NAMES = {"batman": "Batman", "not_a_hero": "Not a hero", "wonder_woman": "Wonder Woman"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return draw_named(tmp_path_factory.mktemp("api"), per_class=10, size=64, names=NAMES)


@pytest.mark.slow
def test_train_in_three_lines_then_read_predict_and_inspect(photos, tmp_path):
    run = heroes.train(photos, out=tmp_path / "run", epochs=1, image_size=64, lr=0.001, progress=False)
    accuracy = run.metrics["test_accuracy"]
    predicted = run.predict(sorted((photos / "Wonder Woman").iterdir())[:3])

    assert 0 <= accuracy <= 1 and run.metrics["recipe_settings"]["learning_rate"] == 0.001
    assert list(predicted.columns[:3]) == ["path", "predicted", "probability"] and len(predicted) == 3
    assert set(predicted["predicted"]) <= set(NAMES.values())
    assert predicted.filter(like="prob_").sum(axis=1).round(5).eq(1).all()
    matrix = run.confusion_matrix()
    assert list(matrix.index) == list(run.metrics["class_names"]) and matrix.to_numpy().sum() == run.metrics["test_n"]
    assert int(matrix.to_numpy().trace()) == run.metrics["test_correct"]
    assert len(run.top_losses(2)) == 2 and isinstance(run.predictions, pandas.DataFrame)
    assert run.plot_learning_curves().get_axes()
    again = heroes.load_run(tmp_path / "run")
    assert again.metrics == run.metrics and "test accuracy" in repr(again)


def test_bad_input_raises_the_cli_one_line_errors(photos, tmp_path):
    with pytest.raises(UserError, match="--lr must be in"):
        heroes.train(photos, out=tmp_path / "run", lr=-1)
    with pytest.raises(UserError, match="data folder not found"):
        heroes.train(tmp_path / "nowhere", out=tmp_path / "run")
    with pytest.raises(UserError, match="not a finished run"):
        heroes.load_run(tmp_path)
    assert not (tmp_path / "run").exists()


def test_scan_and_clean_are_the_data_steps_alone(photos):
    manifest = heroes.scan(photos, progress=False)
    assert set(manifest["label"]) == set(NAMES.values()) and (manifest["status"] == "ok").all()
    cleaned = heroes.clean(manifest, progress=False)
    assert len(cleaned.manifest) <= len(manifest) and {"path", "flag", "action"} <= set(cleaned.flags.columns)
