"""Committed reports carry the predictions behind them, with paths that hold in any clone."""

import json

import pandas

from heroes import paths
from heroes.reporting import published


def test_portable_paths_are_relative_inside_the_project_and_absolute_outside(tmp_path):
    inside = paths.MODELS / "compare-vgg16-study-s0"
    assert paths.portable(inside) == "models/compare-vgg16-study-s0"
    assert paths.resolve(paths.portable(inside)) == inside
    assert paths.portable(tmp_path / "run") == str((tmp_path / "run").resolve())
    assert paths.resolve(str(tmp_path / "run")) == tmp_path / "run"


def test_run_dirs_are_found_at_any_depth_once_each_in_order(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text(json.dumps(
        {"models": {"VGG16": {"run_dir": "models/one", "per_seed": {"1": {"run_dir": "models/two"}}}},
         "runs": [{"run_dir": "models/one"}, {"run_dir": 3}]}))
    (tmp_path / "metrics" / "b.json").write_text("{not json")
    assert published.run_dirs(tmp_path / "metrics") == ["models/one", "models/two"]


def test_predictions_are_copied_with_project_paths_made_relative(tmp_path):
    run_dir = tmp_path / "models" / "03-six-class-vgg16-study-s0"
    run_dir.mkdir(parents=True)
    image = paths.RAW / "superheroes" / "Not a hero" / "0001.png"
    frame = pandas.DataFrame({"path": [str(image), "/elsewhere/b.png"], "label": ["not_a_hero", "batman"],
                              "prob_batman": [0.1234567890123, 0.9]})
    frame.to_csv(run_dir / "predictions.csv", index=False)
    gone = tmp_path / "models" / "gone"
    (tmp_path / "reports" / "metrics").mkdir(parents=True)
    (tmp_path / "reports" / "metrics" / "03.json").write_text(json.dumps({"run_dir": str(run_dir),
                                                                          "other": {"run_dir": str(gone)}}))
    earlier = tmp_path / "reports" / "predictions" / "gone.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("kept")
    written = published.publish_predictions(tmp_path / "reports")
    assert [path.name for path in written] == ["03-six-class-vgg16-study-s0.csv"]
    copy = pandas.read_csv(written[0], keep_default_na=False)
    assert copy["path"].tolist() == ["data/raw/superheroes/Not a hero/0001.png", "/elsewhere/b.png"]
    assert copy["prob_batman"].tolist() == frame["prob_batman"].tolist()  # probabilities exact
    assert earlier.read_text() == "kept"  # a run folder that is gone leaves its earlier copy alone
