"""The comparison grid: one backbone initialisation per backbone, features and finished runs reused, measurements."""

import dataclasses
import json
import math

import keras
import numpy
import pandas
import pytest
from test_features import coloured_set
from test_plots_evaluation import fake_predictions

from heroes.config import TrainConfig
from heroes.errors import UserError
from heroes.evaluation import costs, explain, grid, stats
from heroes.evaluation.predictions import load_predictions
from heroes.models import backbones, build, surgery
from heroes.training.cached import features
from heroes.training import runs, train
from heroes.training import spec
from heroes.training import fit
from heroes.models.weights import WeightsChoice
from heroes.reporting import tables, verdicts

# lr 0.01 so one epoch moves the head; weights=None is what "auto" falls back to offline.
SMALL = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=1, batch_size=8, learning_rate=0.01)


def small_sets():
    return {"train": coloured_set(16, 32, 1), "val": coloured_set(6, 32, 2), "test": coloured_set(6, 32, 3)}


def built(config, num_classes=2):
    """The model ``train_run(config)`` starts from, built exactly as it builds it."""
    config = spec.final_config(config)
    fit.fresh_session(config)
    choice = config.weights_choice or build.choose_weights(config.backbone, config.weights, config.image_size)
    return build.build_model(config.backbone, num_classes, config.image_size, weights=choice, policy=config.policy)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["vgg16", "resnet50"])
def test_later_seeds_share_the_first_seeds_backbone_but_not_its_head(tmp_path, backbone):
    base = dataclasses.replace(SMALL, backbone=backbone)
    configs = grid.run_configs([backbone], [0, 1], base, 2, tmp_path, shared_init=True)
    assert configs[backbone, 0].weights_choice is None  # the first seed is a plain run, reusable by other notebooks
    assert configs[backbone, 1].weights is None  # what was asked stays recorded; what it resolved to is separate
    shared = configs[backbone, 1].weights_choice
    assert isinstance(shared, WeightsChoice) and shared.random and shared.source == "random (weights=None)"
    assert "shared by every seed" in shared.note and shared.path.parent == tmp_path / grid.INITIALISATIONS

    first, second = built(configs[backbone, 0]), built(configs[backbone, 1])
    fingerprints = [features.prefix_fingerprint(surgery.split_at_first_trainable(model)[0]) for model in (first, second)]
    assert fingerprints[0] == fingerprints[1]  # same frozen part: the feature cache is computed once
    for layer in first.layers:
        if layer.trainable_weights and layer.name not in backbones.HEAD_LAYERS:  # ResNet's conv5: same start
            for a, b in zip(layer.get_weights(), second.get_layer(layer.name).get_weights()):
                numpy.testing.assert_array_equal(a, b)
    assert not numpy.allclose(first.get_layer("predictions").get_weights()[0],
                              second.get_layer("predictions").get_weights()[0])

    plain = built(dataclasses.replace(configs[backbone, 1], weights_choice=None))  # without sharing: another backbone
    assert features.prefix_fingerprint(surgery.split_at_first_trainable(plain)[0]) != fingerprints[0]


def test_by_default_every_seed_draws_its_own_random_backbone(tmp_path):
    configs = grid.run_configs(["vgg16", "resnet50"], [0, 1, 2], SMALL, 2, tmp_path)
    assert {config.weights_choice for config in configs.values()} == {None}  # each run builds from its own seed
    assert {config.seed for config in configs.values()} == {0, 1, 2}
    assert not (tmp_path / grid.INITIALISATIONS).exists()  # nothing shared was saved
    assert "weights=None" in set(grid.describe_configs(configs)["starts from"])


def test_real_weights_need_no_sharing(tmp_path):
    file = grid.shared_initialisation(dataclasses.replace(SMALL, seed=1), 2, tmp_path).path
    # A weights file is the same for every seed already: nothing to share, the config keeps the file.
    assert grid.shared_initialisation(dataclasses.replace(SMALL, weights=str(file)), 2, tmp_path) is None
    configs = grid.run_configs(["vgg16"], [0, 1], dataclasses.replace(SMALL, weights=str(file)), 2, tmp_path)
    assert {config.weights for config in configs.values()} == {str(file)}
    assert {config.weights_choice for config in configs.values()} == {None}


@pytest.mark.parametrize("seeds, message", [([], "seeds is empty"), ([0, 0], "distinct")])
def test_bad_seed_lists_are_refused(tmp_path, seeds, message):
    with pytest.raises(UserError, match=message):
        grid.run_configs(["vgg16"], seeds, SMALL, 2, tmp_path, shared_init=False)


def test_unknown_backbone_is_refused():
    with pytest.raises(UserError, match="nosuchnet"):
        backbones.display_name("nosuchnet")


@pytest.mark.slow
def test_grid_trains_each_run_once_reuses_features_and_finished_runs(tmp_path, monkeypatch):
    sets = small_sets()
    configs = grid.run_configs(["vgg16"], [0, 1], SMALL, 2, tmp_path / "models", shared_init=True)
    results = grid.train_grid(configs, sets, tmp_path / "models", "hash", tmp_path / "features", progress=False)
    first, second = results["vgg16", 0], results["vgg16", 1]
    assert first.metrics["feature_cache"]["computed"] == 28 and second.metrics["feature_cache"]["computed"] == 0
    assert (first.run_dir / runs.MODEL).is_file() and not (second.run_dir / runs.MODEL).is_file()
    assert first.model is None  # read back from disk; the in-memory model was let go
    assert not first.predictions.equals(second.predictions)  # a different head and order: a different run

    monkeypatch.setattr(train, "train_run", lambda *args, **kwargs: pytest.fail("a finished run was retrained"))
    again = grid.train_grid(configs, sets, tmp_path / "models", "hash", tmp_path / "features", progress=False)
    assert again["vgg16", 1].run_dir == second.run_dir


@pytest.mark.slow
def test_a_run_is_reused_only_when_it_matches_and_is_complete(tmp_path):
    sets = small_sets()
    run_dir = tmp_path / "models" / "03-six-class-vgg16-study-s0"  # another notebook's name for the same run
    train.train_run(SMALL, sets, run_dir=run_dir, manifest_hash="hash", cache_dir=tmp_path / "features",
                    progress=False, save_model=False)
    assert grid.find_finished_run(tmp_path / "models", SMALL, "hash", sets["test"]) == run_dir
    problem = grid.reuse_problem(run_dir, SMALL, "hash", sets["test"], need_model=True)
    assert problem == "unfinished (missing model.keras)"
    assert grid.reuse_problem(run_dir, dataclasses.replace(SMALL, epochs=2), "hash", sets["test"], False) == \
        "trained with another configuration"
    assert grid.reuse_problem(run_dir, SMALL, "other", sets["test"], False) == "trained on other data"
    other_test_set = coloured_set(6, 32, 4)
    assert grid.reuse_problem(run_dir, SMALL, "hash", other_test_set, False) == "evaluated on another test set"

    (run_dir / runs.PREDICTIONS).unlink()
    assert grid.reuse_problem(run_dir, SMALL, "hash", sets["test"], False) == "unfinished (missing predictions.csv)"
    assert grid.find_finished_run(tmp_path / "models", SMALL, "hash", sets["test"]) is None
    with pytest.raises(UserError, match="has no predictions.csv"):
        load_predictions(run_dir)


def test_latency_is_a_median_of_single_image_calls():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    measured = costs.inference_latency(model, numpy.zeros((3, 8, 8, 3), "uint8"), repeats=2)
    assert measured["latency_batch_size"] == 1 and measured["latency_images"] == 3 and measured["latency_repeats"] == 2
    assert 0 < measured["latency_ms_min"] <= measured["latency_ms_per_image"]
    with pytest.raises(ValueError, match="non-empty"):
        costs.inference_latency(model, numpy.zeros((0, 8, 8, 3)))


def test_model_bytes_is_none_without_a_model(tmp_path):
    assert costs.model_bytes(tmp_path) is None
    (tmp_path / runs.MODEL).write_bytes(b"x" * 10)
    assert costs.model_bytes(tmp_path) == 10


def fake_run(predictions, seed, train_time=2.0):
    history = pandas.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "accuracy": [0.5, 0.9], "val_loss": [1.1, 0.9],
                                "val_accuracy": [0.4, 0.6], "seconds": [1, 1]})
    cache = {"computed": 28, "reused": 0} if seed == 0 else {"computed": 0, "reused": 28}
    metrics = {"train_time_s": train_time, "feature_time_s": 5.0 if seed == 0 else 0.0, "best_epoch": 2,
               "feature_cache": cache}
    record = {"model": {"total_parameters": 1000, "trainable_parameters": 100}}
    return runs.RunResult(f"models/run-s{seed}", SMALL, history, metrics, predictions, None, record)


def test_one_seed_gives_a_note_and_still_single_run_intervals():
    predictions = fake_predictions(0.8, 0)
    latency = {"latency_ms_per_image": 3.0}
    summary = tables.backbone_summary({0: fake_run(predictions, 0)}, {0: predictions}, 0, latency, 5)
    assert summary["seed_spread"]["n_seeds"] == 1 and "at least 2 seeds" in summary["seed_spread"]["note"]
    assert summary["test_accuracy_ci"][0] < summary["test_accuracy"] < summary["test_accuracy_ci"][1]
    assert verdicts.spread_text(summary["seed_spread"]) == "1 seed: no spread"


def test_table_has_first_seed_accuracy_spread_and_every_measurement():
    by_model = {}
    for name, accuracy in (("VGG16", 0.8), ("ResNet50", 0.6)):
        predictions = {seed: fake_predictions(accuracy, seed + (10 if name == "VGG16" else 20)) for seed in (0, 1, 2)}
        run = {seed: fake_run(predictions[seed], seed, train_time=seed + 1.0) for seed in predictions}
        by_model[name] = tables.backbone_summary(run, predictions, 0, {"latency_ms_per_image": 12.5}, 2_500_000)
    frame = tables.table(by_model, 0)
    assert list(frame["model"]) == ["VGG16", "ResNet50"]
    assert "test accuracy (seed 0)" in frame.columns and "mean ± sd over seeds" in frame.columns
    assert frame.loc[0, "mean ± sd over seeds"].endswith("(3 seeds)")
    assert frame.loc[0, "training time (s)"] == 2.0 and frame.loc[0, "feature extraction (s)"] == 5.0
    assert frame.loc[0, "features computed / reused"] == "28 / 56"
    assert frame.loc[0, "size on disk (MB)"] == 2.5 and frame.loc[0, "latency (ms/image)"] == 12.5
    block = tables.table_block(frame, tables.TABLE_FORMATS)
    assert block["columns"] == list(frame.columns) and block["rows"][0][block["columns"].index("parameters")] == "1,000"
    json.dumps(block)


def test_table_block_shows_missing_values_as_none_and_typeset_minus():
    frame = pandas.DataFrame({"model": ["A"], "difference": [-0.25], "ECE": [math.nan]})
    assert tables.table_block(frame, {"difference": "{:+.2f}", "ECE": "{:.3f}"})["rows"] == [["A", "−0.25", None]]


def test_per_seed_comparisons_pair_each_seed():
    predictions = {("vgg16", seed): fake_predictions(0.8, seed) for seed in (0, 1)}
    predictions |= {("resnet50", seed): fake_predictions(0.6, seed + 5) for seed in (0, 1)}
    frame = stats.per_seed_comparisons(predictions, ("vgg16", "resnet50"), [0, 1], labels=("VGG16", "ResNet50"),
                                         n_resamples=199)
    assert list(frame["seed"]) == [0, 1]
    assert {"VGG16 accuracy", "only ResNet50 right", "McNemar p"} <= set(frame.columns)
    assert (frame["CI low"] <= frame["difference"]).all() and (frame["difference"] <= frame["CI high"]).all()


def test_explained_images_put_disagreements_first_and_refuse_other_test_sets():
    a, b = fake_predictions(0.8, 0), fake_predictions(0.6, 1)
    chosen = explain.explained_images(a, b, 6)
    assert len(chosen) == 6 and len(set(chosen)) == 6
    assert a.correct[chosen[0]] != b.correct[chosen[0]]
    with pytest.raises(UserError, match="different test sets"):
        explain.explained_images(a, b.take(slice(1, None)), 4)


def test_joined_notes_name_each_distinct_note_once():
    assert verdicts.joined_notes({"A": "x", "B": "x", "C": "y"}) == "A, B: x; C: y"
    assert verdicts.joined_notes({}) == ""


def test_seeds_keep_notebook_01s_split_unless_asked_to_vary_it():
    from test_split import fake_manifest

    from heroes.data.split import make_splits

    manifest = fake_manifest({"batman": 30, "deadpool": 30})
    base = make_splits(manifest, train=20, val=5, test=5, seed=0)
    fixed = grid.seed_splits(manifest, base, [0, 1, 2])
    assert all(splits is base for splits in fixed.values())
    varied = grid.seed_splits(manifest, base, [0, 1, 2], vary_split=True)
    assert varied[0] is base
    for seed in (1, 2):
        counts = pandas.crosstab(varied[seed]["label"], varied[seed]["split"])
        assert set(counts["train"]) == {20} and set(counts["val"]) == {5} and set(counts["test"]) == {5}
        assert set(varied[seed].query("split == 'test'")["path"]) != set(base.query("split == 'test'")["path"])
    one_test_image_less = base.drop(index=base.query("label == 'batman' and split == 'test'").index[0])
    with pytest.raises(UserError, match="different counts per class"):
        grid.seed_splits(manifest, one_test_image_less, [0, 1], vary_split=True)


def test_train_grid_takes_one_set_for_every_seed_or_one_per_seed():
    shared = small_sets()
    assert grid._sets_of(shared, 3) is shared
    per_seed = {0: shared, 1: small_sets()}
    assert grid._sets_of(per_seed, 1) is per_seed[1]
    with pytest.raises(UserError, match="no train/val/test sets for seed 2"):
        grid._sets_of(per_seed, 2)


def test_macro_f1_and_ece_carry_cis_of_9999_resamples():
    predictions = fake_predictions(0.8, 0)
    summary = tables.backbone_summary({0: fake_run(predictions, 0)}, {0: predictions}, 0)
    assert summary["macro_f1_ci"]["n_resamples"] == 9999 and summary["ece_ci"]["n_resamples"] == 9999
    row = tables.comparison_table({"VGG16": summary}).iloc[0]
    assert row["ECE 95% CI"] == f"[{summary['ece_ci']['low']:.3f}, {summary['ece_ci']['high']:.3f}]"


def test_pooled_table_ends_with_the_pooled_row():
    from heroes.evaluation import pooled

    a = {seed: fake_predictions(0.6, seed) for seed in (0, 1)}
    b = {seed: fake_predictions(0.8, seed + 5) for seed in (0, 1)}
    result = pooled.pooled_comparison(a, b, ("VGG16", "ResNet50"), n_resamples=199)
    frame = tables.pooled_table(result)
    assert list(frame["seed"]) == ["0", "1", "pooled"]
    assert frame.iloc[-1]["difference"] == pytest.approx(result["difference"]["estimate"])
    assert frame.iloc[-1]["difference"] == pytest.approx(frame.iloc[:2]["difference"].mean())  # same images
    block = tables.table_block(frame, tables.PER_SEED_FORMATS)
    assert block["rows"][-1][0] == "pooled"
    json.dumps(block)


def test_runs_without_measured_training_scores_are_retrained_when_asked(tmp_path):
    test_set = coloured_set(6, 32, 3)
    record = {"config": grid._recorded(SMALL), "manifest_hash": "hash", "class_names": list(test_set.class_names)}
    (tmp_path / runs.CONFIG).write_text(json.dumps(record))
    (tmp_path / runs.METRICS).write_text("{}")
    pandas.DataFrame({"path": test_set.paths}).to_csv(tmp_path / runs.PREDICTIONS, index=False)
    history = pandas.DataFrame({"epoch": [1], "loss": [1.0], "accuracy": [0.5], "val_loss": [1.1], "val_accuracy": [0.4]})
    history.to_csv(tmp_path / runs.HISTORY, index=False)
    assert grid.reuse_problem(tmp_path, SMALL, "hash", test_set, False) is None
    assert grid.reuse_problem(tmp_path, SMALL, "hash", test_set, False, require_train_eval=True) == \
        "trained before training-set evaluation (no train_eval_* columns in history.csv)"
    history.assign(train_eval_loss=[0.9], train_eval_accuracy=[0.6]).to_csv(tmp_path / runs.HISTORY, index=False)
    assert grid.reuse_problem(tmp_path, SMALL, "hash", test_set, False, require_train_eval=True) is None
