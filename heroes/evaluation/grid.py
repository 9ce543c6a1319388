"""Backbone comparison over seeds: the training grid, run reuse, latency, size on disk, overfitting gaps, hardware.

Notebook 04 calls these; the statistics themselves live in ``heroes.evaluation.stats``. With random weights (no ImageNet)
every seed draws its own backbone by default, so the study replicates the factor that dominates a random-feature
model; ``shared_initialisation`` (opt-in) gives every seed the first seed's draw instead, as ImageNet weights would be
shared. ``seed_splits`` (``vary_split=True``) lets later seeds draw their own group-aware split of the same sizes too.
``convergence`` counts the runs whose best validation epoch was their last; ``baseline_tests`` pairs every network
with every baseline, seed by seed.
"""

import dataclasses
import json
from pathlib import Path

import pandas

from heroes.config import TrainConfig, to_dict
from heroes.data.arrays import load_split_arrays
from heroes.data.split import make_splits
from heroes.errors import UserError
from heroes.evaluation.flagged import BothWays, score_both_ways
from heroes.evaluation.overfitting import TRAIN_EVAL_COLUMNS
from heroes.evaluation.pooled import pooled_comparison
from heroes.io import atomic_path
from heroes.models import build, surgery
from heroes.training.cached import features
from heroes.training import runs, train
from heroes.training import spec
from heroes.training import fit
from heroes.models.backbones import get_backbone
from heroes.models.weights import WeightsChoice

INITIALISATIONS = "initialisations"  # folder under models_dir holding the shared random backbone files


def default_models_dir(data_dir) -> Path:
    """``models/`` beside the data folder: the project's ``models/`` for the project's ``data/``."""
    return Path(data_dir).resolve().parent / "models"


def _donor_with_weights_of(model, backbone, image_size):
    """A stock ``keras.applications`` backbone (no top) holding ``model``'s backbone weights, by layer name."""
    donor = get_backbone(backbone).builder(include_top=False, input_shape=(image_size, image_size, 3))
    for layer in donor.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return donor


def shared_initialisation(config: TrainConfig, num_classes: int, directory) -> WeightsChoice | None:
    """The backbone weights ``train_run(config)`` starts from, saved once, as a choice later seeds can start from.

    None when ``config.weights`` resolves to real (ImageNet or file) weights: those are already the same for every
    seed. Otherwise the random initialisation of ``config.seed`` is rebuilt exactly as ``train_run`` builds it,
    its backbone saved under ``directory``, and the returned choice keeps the random source and says so in its
    note. A run built from it has the same frozen prefix (same feature-cache fingerprint) as the plain run.
    """
    config = spec.final_config(config)
    choice = config.weights_choice or build.choose_weights(config.backbone, config.weights, config.image_size)
    if not choice.random:
        return None
    model, _ = train.build_run_model(config, num_classes)
    prefix, _ = surgery.split_at_first_trainable(model)
    fingerprint = features.prefix_fingerprint(prefix)
    donor = _donor_with_weights_of(model, config.backbone, config.image_size)
    path = Path(directory) / f"{config.backbone}-{config.image_size}px-seed{config.seed}-{fingerprint}.weights.h5"
    if not path.is_file():
        with atomic_path(path, suffix=".tmp.weights.h5") as temporary:
            donor.save_weights(temporary)
    fit.fresh_session(config)
    note = (f"{choice.note}; backbone initialised once (seed {config.seed}, prefix fingerprint {fingerprint}) and "
            f"shared by every seed, as ImageNet weights would be; the new layers start from each run's own seed")
    return WeightsChoice(choice.source, str(path), path, True, note)


def run_configs(backbones, seeds, base: TrainConfig, num_classes: int, models_dir, shared_init=False) -> dict:
    """{(backbone, seed): TrainConfig}. By default each seed draws its own random backbone (``train_run`` seeds it);
    with random weights and ``shared_init``, later seeds get the first seed's backbone instead.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise UserError("seeds is empty: give at least one training seed, e.g. seeds = [0]")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct, got {seeds}")
    configs = {}
    for backbone in backbones:
        first = dataclasses.replace(base, backbone=backbone, seed=seeds[0])
        shared = (shared_initialisation(first, num_classes, Path(models_dir) / INITIALISATIONS)
                  if shared_init and len(seeds) > 1 else None)
        for seed in seeds:
            choice = shared if shared is not None and seed != seeds[0] else base.weights_choice
            configs[backbone, seed] = dataclasses.replace(first, seed=seed, weights_choice=choice)
    return configs


def _per_class_counts(splits: pandas.DataFrame) -> dict:
    """{split: images per class} of a count-based split; ``UserError`` when classes differ (no count reproduces it)."""
    table = pandas.crosstab(splits["label"], splits["split"])
    counts = {}
    for name in ("train", "val", "test"):
        values = set(table[name]) if name in table.columns else {0}
        if len(values) != 1:
            raise UserError(f"the {name} split has different counts per class ({sorted(values)}): a split per seed "
                            "needs the same count for every class; pass vary_split=False to keep notebook 01's split")
        counts[name] = int(values.pop())
    return counts


def seed_splits(manifest: pandas.DataFrame, splits: pandas.DataFrame, seeds, vary_split=False) -> dict:
    """{seed: splits frame}. By default every seed uses ``splits`` (notebook 01's), so seeds vary only the training.

    With ``vary_split`` the first seed keeps ``splits`` and every later seed gets its own group-aware split of the
    same images (``heroes.data.split.make_splits`` of ``splits`` re-drawn with the training seed, same per-class
    sizes): seeds then also vary which images train, validate and test, and the spread over seeds includes the
    split. Re-splitting ``splits`` rather than ``manifest`` keeps the images waiting for review in play: they may be
    tested, never trained on (``test_only``), in every seed as in the first.
    """
    seeds = [int(seed) for seed in seeds]
    if not vary_split:
        return {seed: splits for seed in seeds}
    counts = _per_class_counts(splits)
    source = splits if "test_only" in splits.columns else manifest  # a split made before images were held
    return {seed: splits if index == 0 else make_splits(source, counts["train"], counts["val"], counts["test"], seed)
            for index, seed in enumerate(seeds)}


def seed_sets(splits_by_seed: dict, image_size: int, cache_dir=None, progress=False) -> dict:
    """{seed: {train, val, test: ImageSet}} for ``train_grid``; seeds sharing one splits frame share one set."""
    loaded, result = {}, {}
    for seed, splits in splits_by_seed.items():
        if id(splits) not in loaded:
            loaded[id(splits)] = load_split_arrays(splits, image_size, cache_dir=cache_dir, progress=progress)
        result[seed] = loaded[id(splits)]
    return result


def _sets_of(sets: dict, seed) -> dict:
    """The train/val/test sets of ``seed``: ``sets`` itself, or ``sets[seed]`` when keyed by seed."""
    if "test" in sets:
        return sets
    if seed not in sets:
        raise UserError(f"no train/val/test sets for seed {seed} (sets are given for seeds {sorted(sets)})")
    return sets[seed]


def describe_configs(configs: dict) -> pandas.DataFrame:
    """One row per planned run: backbone, seed, policy and what its weights start from."""
    rows, first = [], {}
    for (backbone, seed), config in configs.items():
        first.setdefault(backbone, seed)
        start = (f"{config.weights_choice.source}: the backbone of seed {first[backbone]}'s run"
                 if seed != first[backbone] and config.weights_choice is not None else f"weights={config.weights!r}")
        rows.append({"backbone": backbone, "seed": seed, "policy": config.policy, "image size": config.image_size,
                     "epochs": config.epochs, "starts from": start})
    return pandas.DataFrame(rows)


def _recorded(config: TrainConfig) -> dict:
    """``config`` as its run's config.json records it (final, JSON round-tripped)."""
    return json.loads(json.dumps(to_dict(spec.final_config(config)), default=str))


def reuse_problem(run_dir, config, manifest_hash, test_set, need_model, require_train_eval=False) -> str | None:
    """Why ``run_dir`` cannot stand in for training ``config`` on this data (None: it can); ``require_train_eval``
    also refuses a run whose history lacks the measured training-set scores (``train_eval_*``)."""
    run_dir = Path(run_dir)
    needed = [runs.CONFIG, runs.HISTORY, runs.METRICS, runs.PREDICTIONS] + ([runs.MODEL] if need_model else [])
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        return f"unfinished (missing {', '.join(missing)})"
    record = json.loads((run_dir / runs.CONFIG).read_text())
    if record.get("config") != _recorded(config):
        return "trained with another configuration"
    if record.get("manifest_hash") != manifest_hash or record.get("class_names") != list(test_set.class_names):
        return "trained on other data"
    paths = pandas.read_csv(run_dir / runs.PREDICTIONS, usecols=["path"], keep_default_na=False)["path"]
    if list(paths) != list(test_set.paths):
        return "evaluated on another test set"
    logged = pandas.read_csv(run_dir / runs.HISTORY, nrows=0).columns
    if require_train_eval and not set(TRAIN_EVAL_COLUMNS) <= set(logged):
        return "trained before training-set evaluation (no train_eval_* columns in history.csv)"
    return None


def find_finished_run(models_dir, config, manifest_hash, test_set, need_model=False,
                      require_train_eval=False) -> Path | None:
    """A finished run under ``models_dir`` (any name, e.g. notebook 03's) of exactly ``config`` on this data."""
    pattern = f"*-{config.backbone}-{config.policy}-s{config.seed}"
    candidates = sorted(Path(models_dir).glob(pattern)) if Path(models_dir).is_dir() else []
    return next((path for path in candidates
                 if reuse_problem(path, config, manifest_hash, test_set, need_model, require_train_eval) is None),
                None)


def train_grid(configs: dict, sets: dict, models_dir, manifest_hash, cache_dir, name="compare", reuse=True,
               model_seed=None, progress=True, require_train_eval=False) -> dict:
    """Train (or reuse) every run of ``configs``; {(backbone, seed): RunResult} read back from disk, models not loaded.

    ``sets``: {train, val, test: ImageSet} shared by every seed, or {seed: {train, val, test}} (``seed_sets``) when
    seeds vary the split. Only ``model_seed``'s runs (default: the first seed) save their ``.keras`` model: the one
    explained, timed and weighed; the others keep every number and prediction but not the ~0.5 GB VGG16 file.
    ``require_train_eval``: retrain rather than reuse runs trained before ``TrainSetEvaluation`` logged
    ``train_eval_*`` (measured overfitting needs them).
    """
    models_dir = Path(models_dir)
    model_seed = next(iter(configs))[1] if model_seed is None else model_seed
    results = {}
    for (backbone, seed), config in configs.items():
        need_model, run_sets = seed == model_seed, _sets_of(sets, seed)
        found = (find_finished_run(models_dir, config, manifest_hash, run_sets["test"], need_model, require_train_eval)
                 if reuse else None)
        if found is not None:
            if progress:
                print(f"{backbone} seed {seed}: reusing the finished run {found} (same config, data and test set)")
        else:  # the in-memory model is let go: only its run directory is kept
            found = train.train_run(config, run_sets, name=name, run_dir=runs.default_run_dir(name, config, models_dir),
                                    manifest_hash=manifest_hash, cache_dir=cache_dir, progress=progress,
                                    save_model=need_model).run_dir
        results[backbone, seed] = runs.read_run(found)
    return results


def convergence(results: dict, max_epochs: int) -> dict:
    """{backbone: {runs, best_is_last, best_epochs, epochs_run, max_epochs}} from ``train_grid``'s results.

    ``best_is_last`` counts the runs whose lowest-validation-loss epoch was the last epoch they trained: early
    stopping never fired, so the run may still have been improving when ``max_epochs`` cut it off.
    """
    found = {}
    for (backbone, _), result in results.items():
        entry = found.setdefault(backbone, {"runs": 0, "best_is_last": 0, "best_epochs": [], "epochs_run": [],
                                            "max_epochs": int(max_epochs)})
        best, run = result.metrics.get("best_epoch"), int(result.metrics["epochs_run"])
        entry["runs"] += 1
        entry["best_is_last"] += int(best is not None and int(best) == run)
        entry["best_epochs"].append(None if best is None else int(best))
        entry["epochs_run"].append(run)
    return found


def baseline_tests(networks: dict, baselines_by_seed: dict, **options) -> dict:
    """{network: {baseline: pooled_comparison}}: each network against each baseline, paired on each seed's test images
    (exact test per seed and pooled over seeds; differences are network − baseline).

    ``networks``: {network name: {seed: Predictions}}; ``baselines_by_seed``: {baseline name: {seed: Predictions}},
    the baseline fitted on that seed's split. ``options`` go to ``pooled_comparison`` (n_resamples, ...).
    """
    return {network: {baseline: pooled_comparison(by_seed, predictions, (baseline, network), **options)
                      for baseline, by_seed in baselines_by_seed.items()}
            for network, predictions in networks.items()}


def flagged_test_effect(predictions_by_model: dict, splits_by_seed: dict) -> pandas.DataFrame:
    """One row per model: test accuracy over every seed's run on the whole test split (as it is) and with the images
    waiting for review left out (``heroes.evaluation.flagged.score_both_ways``), and the flagged count.

    ``predictions_by_model``: {model name: {seed: Predictions}}; ``splits_by_seed``: {seed: that seed's split}.
    """
    rows = []
    for model, by_seed in predictions_by_model.items():
        pooled = sum((score_both_ways(pandas.DataFrame({"path": run.paths, "sha256": run.sha256,
                                                        "correct": run.correct}), splits_by_seed[seed])
                      for seed, run in by_seed.items()), BothWays())
        rows.append({"model": model, **pooled.row()})
    return pandas.DataFrame(rows)
