"""Committed reports carry the predictions behind them, with paths that hold in any clone."""

import pandas

from heroes import paths
from heroes.reporting import published, study_metrics


def six_class(run_dirs) -> study_metrics.SixClass:
    return study_metrics.SixClass(notebook="03-six-class", title="VGG16 fine-tuned on 6 classes", weights={}, data={},
                                  config={}, models={}, verdict="", run_dirs=run_dirs, chance=1 / 6, model_path=None)


def test_portable_paths_are_relative_inside_the_project_and_absolute_outside(tmp_path):
    inside = paths.MODELS / "compare-vgg16-study-s0"
    assert paths.portable(inside) == "models/compare-vgg16-study-s0"
    assert paths.resolve(paths.portable(inside)) == inside
    assert paths.portable(tmp_path / "run") == str((tmp_path / "run").resolve())
    assert paths.resolve(str(tmp_path / "run")) == tmp_path / "run"


def test_run_dirs_are_the_files_run_dirs_in_order_once_each(tmp_path):
    study_metrics.write_study_metrics(tmp_path / "metrics" / "03-a.json", six_class(["models/one", "models/two"]))
    study_metrics.write_study_metrics(tmp_path / "metrics" / "03-b.json", six_class(["models/two", "models/three"]))
    (tmp_path / "metrics" / "c.json").write_text("{not json")
    assert published.run_dirs(tmp_path / "metrics") == ["models/one", "models/two", "models/three"]


def test_predictions_are_copied_with_project_paths_made_relative(tmp_path):
    run_dir = tmp_path / "models" / "03-six-class-vgg16-study-s0"
    run_dir.mkdir(parents=True)
    image = paths.RAW / "superheroes" / "Not a hero" / "0001.png"
    frame = pandas.DataFrame({"path": [str(image), "/elsewhere/b.png"], "label": ["not_a_hero", "batman"],
                              "prob_batman": [0.1234567890123, 0.9]})
    frame.to_csv(run_dir / "predictions.csv", index=False)
    gone = tmp_path / "models" / "gone"
    metrics_file = tmp_path / "reports" / "metrics" / "03-six-class.json"
    study_metrics.write_study_metrics(metrics_file, six_class([run_dir, gone]))
    earlier = tmp_path / "reports" / "predictions" / "gone.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("kept")
    written = published.publish_predictions(tmp_path / "reports")
    assert [path.name for path in written] == ["03-six-class-vgg16-study-s0.csv"]
    copy = pandas.read_csv(written[0], keep_default_na=False)
    assert copy["path"].tolist() == ["data/raw/superheroes/Not a hero/0001.png", "/elsewhere/b.png"]
    assert copy["prob_batman"].tolist() == frame["prob_batman"].tolist()  # probabilities exact
    assert earlier.read_text() == "kept"  # a run folder that is gone leaves its earlier copy alone
