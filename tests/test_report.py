"""reports/summary.md from metrics files: random weights said first, the table, the verdict, links, the run card."""

import dataclasses
import json

import pandas
import pytest

from heroes.reporting import study_metrics
from heroes.reporting.metrics_files import REPRODUCE_FILE
from heroes.reporting.summary import COMPARISON_FILE, write_study_summary
from heroes.reporting.tables import markdown_table

VERDICT = ("On 150 test images VGG16 scored 80.0% [72.7, 86.1] and ResNet50 74.7% [66.9, 81.5]; ResNet50 − VGG16 = "
           "−5.3 points (95% CI −13.3 to 2.7; exact McNemar p = 0.21, mid-p = 0.17) is not evidence of a real "
           "difference.")
FIGURES = {"Learning curves": "figures/04-learning-curves.png", "Grad-CAM": "figures/04-gradcam.png",
           "Top losses, ResNet50": "figures/04-top-losses-resnet50.png"}


def comparison(random=True, embedded=True, seeds=(0, 1, 2), **changes) -> study_metrics.Comparison:
    source = "random (ImageNet unavailable)" if random else "imagenet"
    fields = {
        "notebook": "04-vgg-vs-resnet", "title": "VGG16 vs ResNet50",
        "weights": {"vgg16": {"source": source, "random": random, "note": "no internet" if random else ""},
                    "resnet50": {"source": source, "random": random, "note": ""}},
        "data": {"source": "embedded" if embedded else "user",
                 "embedded_settings": {"per_class": 250} if embedded else None,
                 "manifest_hash": "ab" * 32, "splits": {"train": 1200, "val": 150, "test": 150}},
        "config": {"image_size": 224, "epochs": 10, "seeds": list(seeds), "policy": "study", "batch_size": 16,
                   "learning_rate": 0.001, "momentum": 0.9, "feature_dtype": "float32", "shared_backbone_init": True},
        "models": {}, "run_dirs": [],
        "table": {"columns": ["model", "test accuracy (seed 0)", "95% CI", "mean ± sd over seeds"],
                  "rows": [["VGG16", "80.0%", "[72.7, 86.1]", "79.1% ± 1.2 (3 seeds)"],
                           ["ResNet50", "74.7%", "[66.9, 81.5]", None]]},
        "table_note": "Test accuracy: seed 0's runs.",
        "comparison": {"pairing": "seed 0's run of each model, on the same 150 test images"},
        "verdict": VERDICT, "first_seed_verdict": "", "sign_convention": "", "pooled": None, "baselines": {},
        "per_seed": {"columns": ["seed", "difference"], "rows": [["0", "+0.053"], ["1", "−0.010"]]},
        "seed_note": "" if len(seeds) > 1 else "VGG16, ResNet50: a spread over seeds needs at least 2 seeds",
        "overfitting": {"sentence": "At the last epoch the gap averaged 3.0 points for VGG16 and 9.0 for ResNet50.",
                        "table": {"columns": ["model", "seed", "last epoch"], "rows": [["VGG16", "0", "0.030"]]}},
        "figures": FIGURES,
        "run_card": {"versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1"},
                     "hardware": {"cpu": "AMD EPYC", "usable_cpus": 2, "gpus": [], "bf16_native": False,
                                  "load_average": [1.5, 1.2, 1.0]},
                     "wall_time_s": 900.0},
    }
    return study_metrics.Comparison(**{**fields, **changes})


def write(reports_dir, name, value):
    """A metrics file: a study's dataclass through the one writer, anything else as given (old or broken files)."""
    path = reports_dir / "metrics" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, study_metrics.StudyMetrics):
        study_metrics.write_study_metrics(path, value)
    else:
        path.write_text(value if isinstance(value, str) else json.dumps(value))


def six_class(**changes) -> study_metrics.SixClass:
    fields = {"notebook": "03-six-class", "title": "VGG16 fine-tuned on 6 classes",
              "weights": {"vgg16": {"source": "random (ImageNet unavailable)", "random": True, "note": ""}},
              "data": {"source": "embedded"}, "config": {"image_size": 224}, "run_dirs": [],
              "models": {"VGG16": {"test_n": 150, "test_accuracy": 0.8, "macro_f1": 0.79, "ece": 0.05}},
              "verdict": "VGG16: 120/150 correct = 80.0%", "chance": 1 / 6, "model_path": None}
    return study_metrics.SixClass(**{**fields, **changes})


@pytest.fixture
def reports_dir(tmp_path):
    write(tmp_path, COMPARISON_FILE, comparison())
    for relative in list(FIGURES.values())[:2]:  # the top-losses figure is left missing on purpose
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"png")
    return tmp_path


def summary(reports_dir) -> str:
    return write_study_summary(reports_dir).read_text()


def test_random_weights_and_synthetic_data_come_first(reports_dir):
    lines = summary(reports_dir).splitlines()
    assert lines[0].startswith("> **Weights are random** (`random (ImageNet unavailable)`)")
    assert "embedded synthetic dataset" in "\n".join(lines[:4])
    assert (reports_dir / "summary.md").is_file()


def test_real_weights_and_user_data_say_nothing_of_the_kind(tmp_path):
    write(tmp_path, COMPARISON_FILE, comparison(random=False, embedded=False))
    text = summary(tmp_path)
    assert text.startswith("# heroes: results summary")
    assert "Weights are random" not in text and "embedded synthetic" not in text
    assert "your images in data/raw" in text


def test_table_verdict_and_per_seed_rows(reports_dir):
    text = summary(reports_dir)
    assert "| model | test accuracy (seed 0) | 95% CI | mean ± sd over seeds |" in text
    assert "| VGG16 | 80.0% | [72.7, 86.1] | 79.1% ± 1.2 (3 seeds) |" in text
    assert "| ResNet50 | 74.7% | [66.9, 81.5] | — |" in text  # a missing value shows as a dash, never as 0
    assert f"**Verdict.** {VERDICT}" in text
    assert "Paired on: seed 0's run of each model" in text
    assert "| 1 | −0.010 |" in text
    assert "**Overfitting.** At the last epoch" in text


def test_figures_are_linked_relative_to_the_summary(reports_dir):
    text = summary(reports_dir)
    assert "- [Learning curves](figures/04-learning-curves.png)\n" in text
    assert "- [Grad-CAM](figures/04-gradcam.png)\n" in text
    assert "- [Top losses, ResNet50](figures/04-top-losses-resnet50.png) (not found)" in text


def test_run_card_has_versions_seeds_weights_hash_size_hardware_and_wall_time(reports_dir):
    write(reports_dir, REPRODUCE_FILE, {"notebooks": [{"name": "01-data-cleaning", "seconds": 120.0},
                                                             {"name": "04-vgg-vs-resnet", "seconds": 600.0}],
                                               "total_s": 720.0})
    card = summary(reports_dir).split("## Run card", 1)[1]
    assert "tensorflow 2.21.0, keras 3.15.1" in card
    assert "| seeds | 0, 1, 2 |" in card
    assert "vgg16: random (ImageNet unavailable)" in card
    assert f"`{'ab' * 32}`" in card and "| image size | 224 px |" in card
    assert "AMD EPYC, 2 usable CPU cores; GPUs: none" in card
    assert "01-data-cleaning 2.0 min; 04-vgg-vs-resnet 10.0 min; total 12.0 min" in card
    assert "1200 / 150 / 150" in card
    assert "random, drawn once (seed 0) and shared by every seed" in card


def test_one_seed_is_explained(tmp_path):
    write(tmp_path, COMPARISON_FILE, comparison(seeds=(0,)))
    assert "**Seeds.** VGG16, ResNet50: a spread over seeds needs at least 2 seeds" in summary(tmp_path)


def test_other_notebooks_sections_read_their_fields(reports_dir):
    figure = reports_dir / "figures" / "03-learning-curves.png"
    figure.write_bytes(b"png")
    write(reports_dir, "03-six-class.json", six_class(figures={"Learning curves": figure}))
    text = summary(reports_dir)
    assert "## VGG16 fine-tuned on 6 classes (notebook 03, [`metrics/03-six-class.json`]" in text
    assert "| model | test_n | test_accuracy | macro_f1 | ece |" in text
    assert "| VGG16 | 150 | 80.0% | 0.790 | 0.050 |" in text
    assert "VGG16: 120/150 correct = 80.0%" in text
    assert "- [Learning curves](figures/03-learning-curves.png)\n" in text  # written relative to the reports folder
    assert "## Problems" not in text


def test_files_from_before_schema_1_are_read_through_their_old_layout_and_said(reports_dir):
    write(reports_dir, "02-batman-vs-human.json", {
        "weights_random": True, "data": "data: THE EMBEDDED SYNTHETIC DATASET (…)", "summary": "OLD SENTENCE",
        "weights": {"VGG16": "random (ImageNet unavailable)", "ResNet50": "imagenet"},
        "models": {"VGG16": {"test_n": 50, "test_accuracy": 0.96, "test_accuracy_ci": [0.86, 0.995]},
                   "ResNet50": {"test_n": 50, "test_accuracy": 0.9}}})
    write(reports_dir, "03-six-class.json", {"backbone": "vgg16", "test_accuracy": 0.8, "macro_f1": 0.79,
                                             "run_dir": "models/03-six-class-vgg16-study-s0"})
    write(reports_dir, "05-odd.json", {"nothing": "useful"})
    (reports_dir / "figures" / "03-learning-curves.png").write_bytes(b"png")
    text = summary(reports_dir)
    assert "## Batman vs Not a hero (notebook 02" in text and "OLD SENTENCE" in text
    assert "| VGG16 | 50 | 96.0% | [86.0, 99.5] |" in text and "| ResNet50 | 50 | 90.0% | — |" in text
    assert "## Six-class VGG16 fine-tune (notebook 03" in text and "| VGG16 | 80.0% | 0.790 |" in text
    assert "- [03-learning-curves.png](figures/03-learning-curves.png)" in text
    problems = text.split("## Problems", 1)[1]
    assert ("`02-batman-vs-human.json` has no schema version (written before schema 1): read through its old "
            "layout; `make reproduce` rewrites it") in problems
    assert "`05-odd.json` has no schema version (written before schema 1) and is no notebook's known layout" in problems
    assert "## 05-odd" not in text


def test_a_file_from_a_later_schema_is_left_out_with_one_line(reports_dir):
    record = json.loads((reports_dir / "metrics" / COMPARISON_FILE).read_text())
    write(reports_dir, COMPARISON_FILE, {**record, "schema": 2})
    text = summary(reports_dir)
    assert ("`04-vgg-vs-resnet.json` has schema 2, newer than this heroes reads (1): update heroes, or regenerate it "
            "with `make reproduce`; left out") in text
    assert "Notebook 04 has not written" in text and "**Verdict.**" not in text


def test_a_schema_1_file_that_does_not_match_its_kind_is_named(reports_dir):
    record = json.loads((reports_dir / "metrics" / COMPARISON_FILE).read_text())
    del record["table"]
    write(reports_dir, COMPARISON_FILE, record)
    assert "`04-vgg-vs-resnet.json` does not match schema 1 'comparison'" in summary(reports_dir)


def test_unreadable_metrics_are_named_and_the_rest_still_written(reports_dir):
    write(reports_dir, "03-six-class.json", "{not json")
    write(reports_dir, "02-batman-vs-human.json", "[1, 2]")
    text = summary(reports_dir)
    assert "`03-six-class.json` could not be read (JSONDecodeError" in text
    assert "`02-batman-vs-human.json` is not a JSON object" in text
    assert "**Verdict.**" in text


def test_without_notebook_04_the_summary_says_so(tmp_path):
    write(tmp_path, "03-six-class.json", six_class())
    text = summary(tmp_path)
    assert text.startswith("> **Weights are random**")
    assert "Notebook 04 has not written `metrics/04-vgg-vs-resnet.json` yet" in text


def test_notebook_04s_file_from_before_schema_1_still_loads(tmp_path):
    old = json.loads(study_metrics.write_study_metrics(tmp_path / "new.json", comparison()).read_text())
    del old["kind"], old["run_dirs"]
    old |= {"schema": "heroes.metrics/04-vgg-vs-resnet/v2", "weights_random": True,
            "models": {"VGG16": {"per_seed": {"0": {"run_dir": "models/compare-vgg16-study-s0"}}}}}
    write(tmp_path, COMPARISON_FILE, old)
    text = summary(tmp_path)
    assert f"**Verdict.** {VERDICT}" in text and "| seeds | 0, 1, 2 |" in text
    assert ("`04-vgg-vs-resnet.json` has schema 'heroes.metrics/04-vgg-vs-resnet/v2' (written before schema 1): "
            "read through its old layout") in text
    from heroes.reporting import published
    assert published.run_dirs(tmp_path / "metrics") == ["models/compare-vgg16-study-s0"]


def test_markdown_table_escapes_pipes():
    assert markdown_table(["a"], [["x|y"]])[-1] == "| x\\|y |"


def test_a_runs_summary_tables_come_from_the_same_markdown_writer():
    from heroes.reporting import run_report

    text = run_report._markdown(pandas.DataFrame({"class": ["a|b"], "precision": [0.5], "recall": [1.0], "n": [2]}))
    assert text.splitlines() == markdown_table(["class", "precision", "recall", "n"], [["a|b", "50.0%", "100.0%", 2]])
    assert text.splitlines()[-1] == "| a\\|b | 50.0% | 100.0% | 2 |"


def test_reproduce_timings_round_trip_into_the_run_card(reports_dir):
    from heroes.reporting import reproduce as pipeline

    timings = [{"name": "01-data-cleaning", "seconds": 90.0, "cpu_seconds": 150.0, "load_average": [1.0, 1.1]}]
    path = pipeline.write_timings(timings, 95.0, {"seeds": [0]}, reports_dir)
    assert path == reports_dir / "metrics" / "reproduce.json"
    assert json.loads(path.read_text())["notebooks"] == timings
    card = summary(reports_dir).split("## Run card", 1)[1]
    assert "01-data-cleaning 1.5 min; total 1.6 min (`make reproduce`)" in card
    assert "## reproduce" not in summary(reports_dir)  # the timings file is a run card, not a notebook


def test_pooled_verdict_sign_convention_baselines_and_traceable_run_card(tmp_path):
    record = comparison(
        sign_convention="Differences are ResNet50 − VGG16 throughout: positive favours ResNet50.",
        verdict="Pooled over 3 seeds on the same 150 test images, mean test accuracy was …",
        first_seed_verdict=VERDICT,
        pooled={"n_seeds": 3, "table": {"columns": ["seed", "difference"],
                                        "rows": [["0", "+0.087"], ["pooled", "+0.042"]]}},
        baselines={"majority class": {"test_accuracy": 0.167}},
        overfitting={"sentence": "Overfitting not assessable: validation loss still falling at the last epoch in all "
                                 "6 runs", "table": None})
    record.run_card.update(commit="c0ffee" * 6 + "beef", dirty=True, dirty_paths=["heroes/x.py"],
                           command="make reproduce SEEDS=3")
    write(tmp_path, COMPARISON_FILE, record)
    text = summary(tmp_path)
    assert "**Sign convention.** Differences are ResNet50 − VGG16 throughout" in text
    assert "**Verdict, pooled over seeds.** Pooled over 3 seeds" in text
    assert "| pooled | +0.042 |" in text and "First seed alone (seed 0's run of each model" in text
    assert "Baselines in the table (majority class)" in text
    assert "**Overfitting.** Overfitting not assessable" in text
    card = text.split("## Run card", 1)[1]
    assert f"| git commit | `{'c0ffee' * 6 + 'beef'}` plus uncommitted changes to `heroes/x.py` |" in card
    assert "| command | `make reproduce SEEDS=3` |" in card and "bf16 native: False" in card
    # the pooled table has a row per seed: the per-seed table is not printed a second time
    assert "The same paired comparison for each seed" not in text and text.count("| pooled | +0.042 |") == 1


def test_the_run_card_says_whether_seeds_vary_the_split(reports_dir):
    assert "seeds vary the new layers and the batch order (every seed on notebook 01's split)" in summary(reports_dir)
    record = comparison()
    write(reports_dir, COMPARISON_FILE, dataclasses.replace(record, run_card={**record.run_card, "vary_split": True}))
    assert "seeds vary the new layers, the batch order and the split" in summary(reports_dir)


def test_the_summary_publishes_the_predictions_its_runs_wrote(reports_dir, tmp_path):
    run_dir = tmp_path / "models" / "compare-vgg16-study-s1"
    run_dir.mkdir(parents=True)
    (run_dir / "predictions.csv").write_text("path,label,predicted,correct\n/x/a.png,batman,batman,True\n")
    write(reports_dir, COMPARISON_FILE, comparison(run_dirs=[run_dir]))
    text = summary(reports_dir)
    copied = reports_dir / "predictions" / "compare-vgg16-study-s1.csv"
    assert copied.read_text() == (run_dir / "predictions.csv").read_text()  # a path outside the project stays as is
    assert "[`predictions/`](predictions/)" in text


def test_a_run_card_without_a_commit_says_it_cannot_be_traced(reports_dir):
    assert "| git commit | — (not recorded: these reports cannot be traced to code) |" in summary(reports_dir)


def test_a_skipped_notebook_is_said_and_its_old_metrics_are_not_shown(tmp_path):
    from heroes.io import write_json
    from heroes.reporting import summary

    metrics = tmp_path / "metrics"
    write_json(metrics / "02-batman-vs-human.json", {"title": "an earlier run", "summary": "OLD NUMBERS"})
    write_json(metrics / "reproduce.json", {"notebooks": [], "skipped": {"02-batman-vs-human": "no Not a hero class"}})
    text = summary.write_study_summary(tmp_path).read_text()
    assert "## Notebook 02-batman-vs-human: skipped" in text and "no Not a hero class" in text
    assert "OLD NUMBERS" not in text


def test_the_summary_has_a_per_class_table_for_each_published_seed_0_run(tmp_path):
    from heroes.reporting import summary

    (tmp_path / "metrics").mkdir()
    (tmp_path / "predictions").mkdir()
    rows = [("a.png", "s1", "Batman", "Batman", True, 0.9, 0.1), ("b.png", "s2", "Batman", "Not a hero", False, 0.4, 0.6),
            ("c.png", "s3", "Not a hero", "Not a hero", True, 0.2, 0.8)]
    columns = ["path", "sha256", "label", "predicted", "correct", "prob_Batman", "prob_Not a hero"]
    pandas.DataFrame(rows, columns=columns).to_csv(tmp_path / "predictions" / "04-vgg16-study-s0.csv", index=False)
    pandas.DataFrame(rows, columns=columns).to_csv(tmp_path / "predictions" / "04-vgg16-study-s1.csv", index=False)
    text = "\n".join(summary.study_summary_lines(tmp_path))
    assert "## Per class, seed 0's test split" in text and "04-vgg16-study-s1" not in text
    assert "| Batman | 100.0% | 50.0% | 2 |" in text and "| Not a hero | 50.0% | 100.0% | 1 |" in text
