"""Study metrics files: written once with a schema version, read back by field, older files still load."""

import json

import pytest

from heroes import paths
from heroes.reporting import metrics_files, study_metrics


def batman_vs_human(**changes) -> study_metrics.BatmanVsHuman:
    fields = {"notebook": "02-batman-vs-human", "title": "Batman vs Not a hero",
              "weights": {"vgg16": {"source": "imagenet", "random": False, "note": ""}},
              "data": {"source": "embedded"}, "config": {"image_size": 224, "seeds": [0]},
              "models": {"VGG16": {"test_n": 50, "test_accuracy": 0.9}}, "verdict": "VGG16: 45/50 correct",
              "run_dirs": [], "study_claim": {"accuracy_ci": [0.93, 1.0]}, "probe_summary": {}, "probes": {}}
    return study_metrics.BatmanVsHuman(**{**fields, **changes})


def test_the_writer_puts_schema_1_and_the_kind_first_and_the_reader_gives_the_dataclass_back(tmp_path):
    reports = tmp_path / "reports"
    inside = paths.MODELS / "02-batman-vs-human-vgg16-study-s0"
    metrics = batman_vs_human(run_dirs=[inside, tmp_path / "run", inside],
                              figures={"Curves": reports / "figures" / "02-learning-curves.png",
                                       "Elsewhere": tmp_path / "other.png"})
    path = study_metrics.write_study_metrics(reports / "metrics" / "02-batman-vs-human.json", metrics)
    record = json.loads(path.read_text())
    assert list(record)[:3] == ["schema", "kind", "notebook"]
    assert record["schema"] == 1 and record["kind"] == "batman-vs-human"
    assert record["run_dirs"] == ["models/02-batman-vs-human-vgg16-study-s0", str((tmp_path / "run").resolve())]
    assert record["figures"] == {"Curves": "figures/02-learning-curves.png",
                                 "Elsewhere": str((tmp_path / "other.png").resolve())}
    back = study_metrics.read_study_metrics(record)
    assert isinstance(back, study_metrics.BatmanVsHuman) and back.models == metrics.models
    assert back.study_claim == metrics.study_claim and not back.weights_random and back.embedded


def test_a_file_without_a_schema_or_from_a_later_one_gets_one_clear_line():
    record = json.loads(json.dumps({"schema": 1, "kind": "batman-vs-human", **vars(batman_vs_human())}))
    with pytest.raises(ValueError, match=r"^`x.json` has no schema version \(written before schema 1\): "
                                         r"regenerate it with `make reproduce`$"):
        study_metrics.read_study_metrics({key: value for key, value in record.items() if key != "schema"}, "x.json")
    with pytest.raises(ValueError, match=r"^`x.json` has schema 2, newer than this heroes reads \(1\): update heroes"):
        study_metrics.read_study_metrics({**record, "schema": 2}, "x.json")
    with pytest.raises(ValueError, match="has kind 'poem', not one of batman-vs-human, six-class, comparison"):
        study_metrics.read_study_metrics({**record, "kind": "poem"}, "x.json")
    with pytest.raises(ValueError, match="does not match schema 1 'batman-vs-human'.*probes"):
        study_metrics.read_study_metrics({key: value for key, value in record.items() if key != "probes"}, "x.json")


def test_a_folder_of_metrics_files_reads_new_old_and_broken_files(tmp_path):
    metrics_dir = tmp_path / "metrics"
    study_metrics.write_study_metrics(metrics_dir / "02-batman-vs-human.json", batman_vs_human())
    (metrics_dir / "03-six-class.json").write_text(json.dumps({"backbone": "vgg16", "test_accuracy": 0.66,
                                                               "weights": "random (ImageNet unavailable)",
                                                               "run_dir": "models/03-six-class-vgg16-study-s0"}))
    (metrics_dir / "05-later.json").write_text(json.dumps({"schema": 7, "kind": "six-class"}))
    (metrics_dir / "reproduce.json").write_text(json.dumps({"total_s": 12.0}))
    studies, reproduce, problems = metrics_files.read_studies(metrics_dir)
    assert list(studies) == ["02-batman-vs-human", "03-six-class"] and reproduce == {"total_s": 12.0}
    old = studies["03-six-class"]
    assert isinstance(old, study_metrics.SixClass) and old.models["VGG16"]["test_accuracy"] == 0.66
    assert old.weights_random and old.run_dirs == ["models/03-six-class-vgg16-study-s0"]
    assert problems == [
        "`03-six-class.json` has no schema version (written before schema 1): read through its old layout; "
        "`make reproduce` rewrites it",
        "`05-later.json` has schema 7, newer than this heroes reads (1): update heroes, or regenerate it with "
        "`make reproduce`; left out"]


def test_the_committed_reports_load():
    studies, _, problems = metrics_files.read_studies(paths.METRICS)
    assert {"02-batman-vs-human", "03-six-class", "04-vgg-vs-resnet"} <= set(studies)
    assert not [problem for problem in problems if "left out" in problem]
    comparison = studies["04-vgg-vs-resnet"]
    assert isinstance(comparison, study_metrics.Comparison) and comparison.verdict and comparison.run_card
    assert all(study.run_dirs and study.models for study in studies.values())
