"""reports/summary.md from metrics files: random weights said first, the table, the verdict, links, the run card."""

import json

import pandas
import pytest

from heroes.reporting.summary import COMPARISON_FILE, REPRODUCE_FILE, SCHEMA_04, markdown_table, write_summary

VERDICT = ("On 150 test images VGG16 scored 80.0% [72.7, 86.1] and ResNet50 74.7% [66.9, 81.5]; ResNet50 − VGG16 = "
           "−5.3 points (95% CI −13.3 to 2.7; exact McNemar p = 0.21, mid-p = 0.17) is not evidence of a real "
           "difference.")
FIGURES = {"Learning curves": "figures/04-learning-curves.png", "Grad-CAM": "figures/04-gradcam.png",
           "Top losses, ResNet50": "figures/04-top-losses-resnet50.png"}


def comparison(random=True, embedded=True, seeds=(0, 1, 2)):
    source = "random (ImageNet unavailable)" if random else "imagenet"
    return {
        "schema": SCHEMA_04, "notebook": "04-vgg-vs-resnet", "title": "VGG16 vs ResNet50",
        "weights": {"vgg16": {"source": source, "random": random, "note": "no internet" if random else ""},
                    "resnet50": {"source": source, "random": random, "note": ""}},
        "weights_random": random,
        "data": {"source": "embedded" if embedded else "user",
                 "embedded_settings": {"per_class": 250} if embedded else None,
                 "manifest_hash": "ab" * 32, "splits": {"train": 1200, "val": 150, "test": 150}},
        "config": {"image_size": 224, "epochs": 10, "seeds": list(seeds), "policy": "study", "batch_size": 16,
                   "learning_rate": 0.001, "momentum": 0.9, "feature_dtype": "float32", "shared_backbone_init": True},
        "table": {"columns": ["model", "test accuracy (seed 0)", "95% CI", "mean ± sd over seeds"],
                  "rows": [["VGG16", "80.0%", "[72.7, 86.1]", "79.1% ± 1.2 (3 seeds)"],
                           ["ResNet50", "74.7%", "[66.9, 81.5]", None]]},
        "table_note": "Test accuracy: seed 0's runs.",
        "comparison": {"pairing": "seed 0's run of each model, on the same 150 test images"},
        "verdict": VERDICT,
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


def write(reports_dir, name, value):
    path = reports_dir / "metrics" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))


@pytest.fixture
def reports_dir(tmp_path):
    write(tmp_path, COMPARISON_FILE, comparison())
    for relative in list(FIGURES.values())[:2]:  # the top-losses figure is left missing on purpose
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"png")
    return tmp_path


def summary(reports_dir) -> str:
    return write_summary(reports_dir).read_text()


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


def test_other_notebooks_headlines_are_read_defensively(reports_dir):
    write(reports_dir, "02-batman-vs-human.json", {
        "weights_random": True, "data": "data: THE EMBEDDED SYNTHETIC DATASET (…)",
        "models": {"VGG16": {"test_n": 50, "test_accuracy": 0.96, "test_accuracy_ci": [0.86, 0.995]},
                   "ResNet50": {"test_n": 50, "test_accuracy": 0.9}}})
    write(reports_dir, "03-six-class.json", {"test_accuracy": 0.8, "macro_f1": 0.79, "unrelated": {"deep": [1, 2]}})
    write(reports_dir, "05-odd.json", {"nothing": "useful"})
    (reports_dir / "figures" / "03-learning-curves.png").write_bytes(b"png")
    text = summary(reports_dir)
    assert "## Batman vs Not a hero (notebook 02" in text
    assert "| VGG16 | 50 | 96.0% | [86.0, 99.5] |" in text and "| ResNet50 | 50 | 90.0% | — |" in text
    assert "## Six-class VGG16 fine-tune (notebook 03" in text and "| macro_f1 | 0.790 |" in text
    assert "- [03-learning-curves.png](figures/03-learning-curves.png)" in text
    assert "(no headline numbers found in this file)" in text


def test_unreadable_metrics_are_named_and_the_rest_still_written(reports_dir):
    write(reports_dir, "03-six-class.json", "{not json")
    write(reports_dir, "02-batman-vs-human.json", "[1, 2]")
    text = summary(reports_dir)
    assert "`03-six-class.json` could not be read (JSONDecodeError" in text
    assert "`02-batman-vs-human.json` is not a JSON object" in text
    assert "**Verdict.**" in text


def test_without_notebook_04_the_summary_says_so(tmp_path):
    write(tmp_path, "03-six-class.json", {"weights_random": True, "test_accuracy": 0.5})
    text = summary(tmp_path)
    assert text.startswith("> **Weights are random**")
    assert "Notebook 04 has not written `metrics/04-vgg-vs-resnet.json` yet" in text


def test_an_old_schema_is_flagged(tmp_path):
    old = comparison()
    old["schema"] = "something/v0"
    write(tmp_path, COMPARISON_FILE, old)
    assert "re-run notebook 04" in summary(tmp_path)


def test_markdown_table_escapes_pipes():
    assert markdown_table(["a"], [["x|y"]])[-1] == "| x\\|y |"


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
    record = comparison()
    record |= {"sign_convention": "Differences are ResNet50 − VGG16 throughout: positive favours ResNet50.",
               "verdict": "Pooled over 3 seeds on the same 150 test images, mean test accuracy was …",
               "first_seed_verdict": VERDICT,
               "pooled": {"n_seeds": 3, "table": {"columns": ["seed", "difference"],
                                                  "rows": [["0", "+0.087"], ["pooled", "+0.042"]]}},
               "baselines": {"majority class": {"test_accuracy": 0.167}},
               "overfitting": {"sentence": "Overfitting not assessable: validation loss still falling at the last "
                                           "epoch in all 6 runs", "table": None}}
    record["run_card"] |= {"commit": "c0ffee" * 6 + "beef", "dirty": True, "dirty_paths": ["heroes/x.py"],
                           "command": "make reproduce SEEDS=3"}
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
    record["run_card"]["vary_split"] = True
    write(reports_dir, COMPARISON_FILE, record)
    assert "seeds vary the new layers, the batch order and the split" in summary(reports_dir)


def test_the_summary_publishes_the_predictions_its_runs_wrote(reports_dir, tmp_path):
    run_dir = tmp_path / "models" / "compare-vgg16-study-s1"
    run_dir.mkdir(parents=True)
    (run_dir / "predictions.csv").write_text("path,label,predicted,correct\n/x/a.png,batman,batman,True\n")
    record = comparison()
    record["models"] = {"VGG16": {"per_seed": {"1": {"run_dir": str(run_dir)}}}}
    write(reports_dir, COMPARISON_FILE, record)
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
    text = summary.write_summary(tmp_path).read_text()
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
    text = "\n".join(summary.summary_lines(tmp_path))
    assert "## Per class, seed 0's test split" in text and "04-vgg16-study-s1" not in text
    assert "| Batman | 100.0% | 50.0% | 2 |" in text and "| Not a hero | 50.0% | 100.0% | 1 |" in text
