"""Issue 26's reporting: baselines fitted and published per seed, paired tests against them, convergence counts,
what a seed varies."""

import dataclasses
import types

import pandas
import pytest
from test_baselines import sets as baseline_sets, subset
from test_plots_evaluation import fake_predictions
from test_report import comparison, reports_dir, summary, write  # noqa: F401 (reports_dir: a fixture)

from heroes.evaluation import baselines, grid
from heroes.evaluation.predictions import load_predictions
from heroes.reporting import published, run_card, tables, verdicts
from heroes.reporting.summary import COMPARISON_FILE


def test_every_seed_fits_its_own_baselines_and_each_publishes_one_file_per_seed(tmp_path):
    data = baseline_sets()
    other = {**data, "train": subset(data["train"], 10)}
    found = baselines.seed_baselines({0: data, 3: other}, [0, 3], probe=False)
    assert list(found) == [baselines.NAMES["majority"], baselines.NAMES["thumbnails"]]
    assert all(list(by_seed) == [0, 3] for by_seed in found.values())
    # seed 3 trained on other images: its majority baseline is fitted on them, not on seed 0's
    assert not found[baselines.NAMES["majority"]][0].equals(found[baselines.NAMES["majority"]][3])

    folders = baselines.save_predictions(found, tmp_path / "models" / "baselines", "04-vgg-vs-resnet")
    assert [folder.name for folder in folders] == [
        "04-vgg-vs-resnet-baseline-majority-s0", "04-vgg-vs-resnet-baseline-majority-s3",
        "04-vgg-vs-resnet-baseline-thumbnails-s0", "04-vgg-vs-resnet-baseline-thumbnails-s3"]
    reports = tmp_path / "reports"
    write(reports, COMPARISON_FILE, comparison(run_dirs=folders))
    text = summary(reports)
    copies = sorted(path.name for path in (reports / published.FOLDER).glob("*.csv"))
    assert copies == sorted(f"{folder.name}.csv" for folder in folders)
    again = load_predictions(reports / published.FOLDER / "04-vgg-vs-resnet-baseline-thumbnails-s3.csv")
    assert list(again.paths) == list(data["test"].paths)
    assert "[`predictions/`](predictions/)" in text


def test_one_shared_split_still_gives_a_baseline_per_seed():
    found = baselines.seed_baselines(baseline_sets(), [0, 1], probe=False)
    assert all(sorted(by_seed) == [0, 1] for by_seed in found.values())


@pytest.mark.slow
def test_the_probe_passes_each_distinct_image_once_over_all_seeds_and_scores_as_per_split(monkeypatch):
    data = baseline_sets(32)  # EfficientNet-Lite0 takes 32 px and up
    other = {**data, "train": subset(data["train"], 10)}  # seed 3 repeats seed 0's images
    passed = []
    real = baselines.pretrained_features
    monkeypatch.setattr(baselines, "pretrained_features",
                        lambda images, *args, **kwargs: passed.append(len(images)) or real(images, *args, **kwargs))
    found = baselines.seed_baselines({0: data, 3: other}, [0, 3])
    distinct = len({sha for split in data.values() for sha in split.sha256})
    assert passed == [distinct]
    alone = baselines.linear_probe(other, seed=3)  # features of seed 3's split alone
    pandas.testing.assert_frame_equal(found[baselines.NAMES["probe"]][3], alone, atol=1e-4)


def run(best, epochs_run):
    return types.SimpleNamespace(metrics={"best_epoch": best, "epochs_run": epochs_run})


def test_convergence_counts_runs_whose_best_epoch_was_their_last():
    results = {("vgg16", 0): run(15, 15), ("vgg16", 1): run(6, 9), ("vgg16", 2): run(9, 12),
               ("resnet50", 0): run(4, 7), ("resnet50", 1): run(None, 3)}
    found = grid.convergence(results, 15)
    assert found["vgg16"] == {"runs": 3, "best_is_last": 1, "best_epochs": [15, 6, 9], "epochs_run": [15, 9, 12],
                              "max_epochs": 15}
    assert found["resnet50"]["best_is_last"] == 0 and found["resnet50"]["best_epochs"] == [4, None]
    sentence = verdicts.convergence_sentence(found, 3, {"vgg16": "VGG16", "resnet50": "ResNet50"})
    assert "patience 3, at most 15 epochs" in sentence
    assert "VGG16 1 of 3, ResNet50 0 of 2 runs" in sentence and "1 of 5 runs may still have been improving" in sentence
    table = tables.convergence_table(found, {"vgg16": "VGG16"})
    assert table["best epoch = last epoch"].tolist() == [1, 0] and table["best epochs"].tolist() == ["15, 6, 9", "4, —"]
    assert "every run passed its best epoch" in verdicts.convergence_sentence({"vgg16": {**found["resnet50"]}}, 3)


def test_the_paired_test_against_baselines_decides_the_claim():
    strong = {seed: fake_predictions(0.95, seed) for seed in (0, 1, 2)}
    weak = {seed: fake_predictions(0.3, 10 + seed) for seed in (0, 1, 2)}
    same = dict(strong)
    tests = grid.baseline_tests({"VGG16": strong}, {"majority class": weak, "thumbnail LR": same}, n_resamples=499)
    beaten, tied = tests["VGG16"]["majority class"], tests["VGG16"]["thumbnail LR"]
    assert beaten["names"] == ["majority class", "VGG16"] and beaten["difference"]["estimate"] > 0.5
    assert beaten["supports_difference"] and not tied["supports_difference"]
    sentence = verdicts.baselines_sentence(tests)
    assert "VGG16 beats the majority class (+" in sentence and "paired exact p < 0.001" in sentence
    assert "VGG16 and the thumbnail LR are right on exactly the same images" in sentence
    assert "3 seeds" in sentence
    table = tables.baseline_test_table(tests)
    assert table[["network", "baseline"]].values.tolist() == [["VGG16", "majority class"], ["VGG16", "thumbnail LR"]]
    assert table["network ahead in"].tolist() == ["3 of 3 seeds", "0 of 3 seeds"]
    block = tables.table_block(table, tables.BASELINE_TEST_FORMATS)
    assert block["rows"][0][3] == f"{table['network accuracy'][0]:.3f}" and block["rows"][0][5].startswith("+")


def test_the_summary_states_the_baseline_tests_and_convergence(reports_dir):
    record = comparison(baselines={"majority class": {"test_accuracy": 0.167}},
                        baseline_tests={"sentence": "Paired exact tests …: VGG16 beats the majority class (+60.0 "
                                                    "points, 95% CI 50.0 to 70.0, paired exact p < 0.001).",
                                        "table": {"columns": ["network", "baseline", "exact p"],
                                                  "rows": [["VGG16", "majority class", "1e−20"]]}},
                        convergence={"sentence": "Trained with early stopping … VGG16 1 of 5 runs.",
                                     "table": {"columns": ["model", "best epoch = last epoch"],
                                               "rows": [["VGG16", "1"]]}})
    write(reports_dir, COMPARISON_FILE, record)
    text = summary(reports_dir)
    assert "**Against the baselines.** Paired exact tests …: VGG16 beats the majority class (+60.0 points" in text
    assert "| VGG16 | majority class | 1e−20 |" in text
    assert "beyond the CIs" not in text  # the claim follows the paired test, not overlapping intervals
    assert "**Convergence.** Trained with early stopping" in text and "| VGG16 | 1 |" in text


def test_a_file_without_the_new_fields_still_reads_and_says_no_paired_test(reports_dir):
    text = summary(reports_dir)  # the fixture's file has neither baseline tests nor convergence
    assert "**Convergence.**" not in text and "**Against the baselines.**" not in text
    write(reports_dir, COMPARISON_FILE, comparison(baselines={"majority class": {"test_accuracy": 0.167}}))
    assert "no paired test against them was recorded" in summary(reports_dir)


def test_the_run_card_says_what_a_seed_varies(reports_dir):
    varies = run_card.seed_varies(["VGG16", "ResNet50"], vary_split=True)
    assert varies.startswith("the random backbone draw of VGG16, ResNet50")
    assert "the new layers' initialisation, the batch order and the train/validation/test split" in varies
    shared = run_card.seed_varies(["VGG16"], vary_split=False, shared_backbone_init=True)
    assert "backbone draw" not in shared.split(";")[0] and "drawn once and shared by every seed" in shared
    assert "not the split" in shared
    record = comparison()
    config = {**record.config, "shared_backbone_init": False}
    write(reports_dir, COMPARISON_FILE, dataclasses.replace(record, config=config,
                                                            run_card={**record.run_card, "seed_varies": varies}))
    card = summary(reports_dir).split("## Run card", 1)[1]
    assert f"| backbone initialisation | random, drawn by each seed; a seed varies {varies} |" in card


def test_baseline_rows_show_their_spread_over_seeds():
    by_seed = {seed: fake_predictions(0.5, seed) for seed in (0, 1, 2)}
    row = tables.baseline_summary(by_seed[0], n_resamples=199, by_seed=by_seed)
    assert row["seed_spread"]["n_seeds"] == 3
    frame = tables.table({}, 0, baselines={"thumbnails": row, "one fit": tables.baseline_summary(by_seed[0], 199)})
    assert frame["mean ± sd over seeds"].iloc[0].endswith("(3 seeds)")
    assert frame["mean ± sd over seeds"].iloc[1] == "baseline (one fit)"
    assert isinstance(frame, pandas.DataFrame)


def test_a_baseline_claim_where_interval_and_test_disagree_says_so():
    pooled = {"difference": {"estimate": -0.5, "low": -0.83, "high": -0.17, "confidence_level": 0.95},
              "test": {"p_value": 0.25, "b": 3, "c": 0}, "supports_difference": False}
    clause = verdicts.baseline_clause("VGG16", "linear probe", pooled)
    assert "not clear evidence of a difference" in clause and "no evidence" not in clause


def pooled_record(**changes):
    record = {"names": ["VGG16", "ResNet50"], "n_seeds": 5, "shared_test_set": False, "n_images": [150] * 5,
              "accuracy": {"VGG16": 0.66, "ResNet50": 0.67},
              "difference": {"estimate": 0.011, "low": -0.042, "high": 0.064, "confidence_level": 0.95,
                             "direction": "ResNet50 − VGG16"},
              "test": {"b": 74, "c": 79, "p_value": 0.75, "mid_p_value": 0.7, "units": "(seed, image) pairs"},
              "cmh": {"p_value": 0.69, "note": "", "strata": 450}, "supports_difference": False,
              "per_seed": [{"seed": 0, "n": 150, "VGG16 accuracy": 0.66, "ResNet50 accuracy": 0.65,
                            "difference": -0.013, "CI low": -0.11, "CI high": 0.07, "exact p": 0.89, "mid-p": 0.8}]}
    return {**record, **changes}


def test_the_pooled_sentence_uses_the_hierarchical_interval_and_only_a_cmh_stratified_by_seed():
    old = verdicts.pooled_sentence(pooled_record())
    assert "Cochran" not in old  # 450 strata of (seed, image) pairs: McNemar again, so it is not said
    hierarchical = {"estimate": 0.011, "low": -0.067, "high": 0.089, "confidence_level": 0.95,
                    "seed_level": {"low": -0.05, "high": 0.07}}
    cmh = {"p_value": 0.4, "strata_by": "seed", "common_odds_ratio": 1.1, "low": 0.8, "high": 1.5, "note": ""}
    new = verdicts.pooled_sentence(pooled_record(hierarchical=hierarchical, cmh=cmh))
    assert "95% CI −6.7 to 8.9, hierarchical bootstrap: seeds, then images; seed-level t-interval −5.0 to 7.0" in new
    assert "Cochran–Mantel–Haenszel stratified by seed p = 0.4, common odds ratio of a correct answer 1.10" in new
    table = tables.pooled_table(pooled_record(hierarchical=hierarchical, cmh=cmh))
    last = table.iloc[-1]
    assert last["CI low"] == -0.067 and last["seed-level CI high"] == 0.07


def test_the_equivalence_sentence_names_the_odds_ratio_and_what_tost_excludes():
    record = pooled_record(conditional_odds_ratio={"estimate": 79 / 74, "low": 0.77, "high": 1.48},
                           equivalence={"estimate": 0.011, "margin": 0.05, "alpha": 0.05, "units": 5, "unit": "seed",
                                        "confidence_level": 0.9, "low": -0.03, "high": 0.052, "p_value": 0.07,
                                        "equivalent": False, "note": ""})
    text = verdicts.equivalence_sentence(record)
    assert "Conditional odds ratio (discordant (seed, image) pairs favouring ResNet50 over VGG16) 1.07" in text
    assert "exact 95% CI 0.77 to 1.48" in text
    assert "TOST at ±5.0 points (5 seeds as units)" in text
    assert "differences below −3.0 or above 5.2 points are excluded" in text
    assert "equivalence within ±5.0 points is not shown" in text
    assert verdicts.equivalence_sentence(pooled_record()) == ""
