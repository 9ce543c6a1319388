"""Backbone comparison over seeds: the training grid, run reuse, latency, size on disk, overfitting gaps, hardware.

Notebook 04 calls these; the statistics themselves live in ``heroes.evaluate``. With random weights (no ImageNet),
``shared_initialisation`` gives every seed the first seed's backbone initialisation, as ImageNet weights would be
shared: seeds then vary only the new layers and the batch order, and the frozen-feature cache is computed once.
"""

import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy
import pandas
from matplotlib.figure import Figure

from heroes import evaluate, features, models, runs, train
from heroes.config import TrainConfig, to_dict
from heroes.errors import UserError
from heroes.io_utils import atomic_path
from heroes.plots_evaluation import COLOURS, DPI, Saved, _save
from heroes.weights import WeightsChoice

INITIALISATIONS = "initialisations"  # folder under models_dir holding the shared random backbone files
DISPLAY_NAMES = {"vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50", "resnet50v2": "ResNet50V2",
                 "mobilenetv2": "MobileNetV2", "efficientnetb0": "EfficientNetB0"}


def display_name(backbone: str) -> str:
    """How papers write a registered backbone's name (``resnet50`` -> ``ResNet50``)."""
    models.get_backbone(backbone)  # unknown names fail here, with the registry's message
    return DISPLAY_NAMES.get(backbone, backbone)


# ---------------------------------------------------------------- folders


def default_models_dir(data_dir) -> Path:
    """``models/`` beside the data folder: the project's ``models/`` for the project's ``data/``."""
    return Path(data_dir).resolve().parent / "models"


# ---------------------------------------------------------------- one backbone initialisation for every seed


def _donor_with_weights_of(model, backbone, image_size):
    """A stock ``keras.applications`` backbone (no top) holding ``model``'s backbone weights, by layer name."""
    donor = models.get_backbone(backbone).builder(include_top=False, input_shape=(image_size, image_size, 3))
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
    config = train.final_config(config)
    choice = models.choose_weights(config.backbone, config.weights, config.image_size)
    if not choice.random:
        return None
    train.fresh_session(config)
    model = models.build_model(config.backbone, num_classes, config.image_size, weights=choice, policy=config.policy,
                               dropout=config.dropout)
    prefix, _ = models.split_at_first_trainable(model)
    fingerprint = features.prefix_fingerprint(prefix)
    donor = _donor_with_weights_of(model, config.backbone, config.image_size)
    path = Path(directory) / f"{config.backbone}-{config.image_size}px-seed{config.seed}-{fingerprint}.weights.h5"
    if not path.is_file():
        with atomic_path(path, suffix=".tmp.weights.h5") as temporary:
            donor.save_weights(temporary)
    train.fresh_session(config)
    note = (f"{choice.note}; backbone initialised once (seed {config.seed}, prefix fingerprint {fingerprint}) and "
            f"shared by every seed, as ImageNet weights would be; the new layers start from each run's own seed")
    return WeightsChoice(choice.source, str(path), path, True, note)


def run_configs(backbones, seeds, base: TrainConfig, num_classes: int, models_dir, shared_init=True) -> dict:
    """{(backbone, seed): TrainConfig}; with random weights and ``shared_init``, later seeds get the first's backbone.
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
            weights = shared if shared is not None and seed != seeds[0] else base.weights
            configs[backbone, seed] = dataclasses.replace(first, seed=seed, weights=weights)
    return configs


def describe_configs(configs: dict) -> pandas.DataFrame:
    """One row per planned run: backbone, seed, policy and what its weights start from."""
    rows, first = [], {}
    for (backbone, seed), config in configs.items():
        first.setdefault(backbone, seed)
        start = (f"{config.weights.source}: the backbone of seed {first[backbone]}'s run"
                 if isinstance(config.weights, WeightsChoice) else f"weights={config.weights!r}")
        rows.append({"backbone": backbone, "seed": seed, "policy": config.policy, "image size": config.image_size,
                     "epochs": config.epochs, "starts from": start})
    return pandas.DataFrame(rows)


# ---------------------------------------------------------------- training, reusing finished runs


def _recorded(config: TrainConfig) -> dict:
    """``config`` as its run's config.json records it (final, JSON round-tripped)."""
    return json.loads(json.dumps(to_dict(train.final_config(config)), default=str))


def reuse_problem(run_dir, config, manifest_hash, test_set, need_model) -> str | None:
    """Why ``run_dir`` cannot stand in for training ``config`` on this data (None: it can)."""
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
    return None


def find_finished_run(models_dir, config, manifest_hash, test_set, need_model=False) -> Path | None:
    """A finished run under ``models_dir`` (any name, e.g. notebook 03's) of exactly ``config`` on this data."""
    pattern = f"*-{config.backbone}-{config.policy}-s{config.seed}"
    candidates = sorted(Path(models_dir).glob(pattern)) if Path(models_dir).is_dir() else []
    return next((path for path in candidates
                 if reuse_problem(path, config, manifest_hash, test_set, need_model) is None), None)


def train_grid(configs: dict, sets: dict, models_dir, manifest_hash, cache_dir, name="compare", reuse=True,
               model_seed=None, progress=True) -> dict:
    """Train (or reuse) every run of ``configs``; {(backbone, seed): RunResult} read back from disk, models not loaded.

    Only ``model_seed``'s runs (default: the first seed) save their ``.keras`` model: the one explained, timed and
    weighed; the others keep every number and prediction but not the ~0.5 GB VGG16 file.
    """
    models_dir = Path(models_dir)
    model_seed = next(iter(configs))[1] if model_seed is None else model_seed
    results = {}
    for (backbone, seed), config in configs.items():
        need_model = seed == model_seed
        found = find_finished_run(models_dir, config, manifest_hash, sets["test"], need_model) if reuse else None
        if found is not None:
            if progress:
                print(f"{backbone} seed {seed}: reusing the finished run {found} (same config, data and test set)")
        else:  # the in-memory model is let go: only its run directory is kept
            found = train.train_run(config, sets, name=name, run_dir=runs.default_run_dir(name, config, models_dir),
                                    manifest_hash=manifest_hash, cache_dir=cache_dir, progress=progress,
                                    save_model=need_model).run_dir
        results[backbone, seed] = runs.read_run(found)
    return results


# ---------------------------------------------------------------- measurements


def inference_latency(model, images, repeats=3, warmup=1) -> dict:
    """Milliseconds per image of the full model (raw pixels in), batch 1, median over images x repeats.

    ``predict_on_batch`` (Keras' predict for one batch, without building a dataset per call) after ``warmup``
    untimed passes; the 1-minute load average is recorded because the CPU may be shared.
    """
    images = numpy.asarray(images, dtype="float32")
    if images.ndim != 4 or len(images) == 0 or repeats < 1:
        raise ValueError(f"need a non-empty (N, H, W, 3) batch and repeats >= 1, got {images.shape} and {repeats}")
    for _ in range(warmup):
        for image in images:
            model.predict_on_batch(image[None])
    timings = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            model.predict_on_batch(image[None])
            timings.append(1000 * (time.perf_counter() - start))
    return {"latency_ms_per_image": float(statistics.median(timings)), "latency_ms_min": float(min(timings)),
            "latency_images": len(images), "latency_repeats": repeats, "latency_batch_size": 1,
            "latency_load_average": os.getloadavg()[0]}


def model_bytes(run_dir) -> int | None:
    """Size on disk of the run's ``model.keras`` (None when the run did not save it)."""
    path = Path(run_dir) / runs.MODEL
    return path.stat().st_size if path.is_file() else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """What the numbers ran on: CPU model, usable cores, GPUs TensorFlow sees, bf16 support, load average."""
    import tensorflow

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = [device.name for device in tensorflow.config.list_physical_devices("GPU")]
    return {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "usable_cpus": usable, "gpus": gpus,
            "bf16_native": features.bf16_is_fast(), "platform": platform.platform(),
            "load_average": [round(value, 2) for value in os.getloadavg()]}


# ---------------------------------------------------------------- tables


def model_summary(results_by_seed: dict, predictions_by_seed: dict, first_seed, latency=None, size=None) -> dict:
    """One model's row for ``evaluate.comparison_table`` plus its per-seed numbers, JSON-ready.

    Accuracy, CI, macro-F1 and ECE are the first seed's run (the one the paired test uses); the spread over seeds is
    beside them. Training time is the mean per run; feature extraction the total this notebook spent, with how many
    (image, view) features it computed and how many it found cached (by an earlier seed or notebook).
    """
    per_seed = {}
    for seed, result in results_by_seed.items():
        headline = evaluate.headline_metrics(predictions_by_seed[seed], n_resamples=999)
        per_seed[seed] = {**headline, "train_time_s": result.metrics["train_time_s"],
                          "feature_time_s": result.metrics.get("feature_time_s", 0.0),
                          "best_epoch": result.metrics.get("best_epoch"), "run_dir": str(result.run_dir),
                          "feature_cache": result.metrics.get("feature_cache")}
    first = per_seed[first_seed]
    spread = evaluate.seed_spread({seed: values["test_accuracy"] for seed, values in per_seed.items()})
    model = results_by_seed[first_seed].record["model"]
    row = {key: first[key] for key in ("test_n", "test_accuracy", "test_accuracy_ci", "macro_f1", "ece")}
    row |= {"total_parameters": model["total_parameters"], "trainable_parameters": model["trainable_parameters"],
            "train_time_s": float(numpy.mean([values["train_time_s"] for values in per_seed.values()])),
            "feature_time_s": float(sum(values["feature_time_s"] for values in per_seed.values())),
            "features_computed": sum((values["feature_cache"] or {}).get("computed", 0) for values in per_seed.values()),
            "features_reused": sum((values["feature_cache"] or {}).get("reused", 0) for values in per_seed.values()),
            "model_bytes": size, **(latency or {})}
    return {**row, "seed_spread": spread, "per_seed": {str(seed): values for seed, values in per_seed.items()}}


def spread_text(spread: dict) -> str:
    """'93.3% ± 1.2 (3 seeds)', or why there is no spread."""
    if spread["n_seeds"] < 2:
        return "1 seed: no spread"
    return f"{100 * spread['mean']:.1f}% ± {100 * spread['std']:.1f} ({spread['n_seeds']} seeds)"


def table(summaries: dict, first_seed) -> pandas.DataFrame:
    """``evaluate.comparison_table`` with the mean ± sd over seeds beside the first seed's accuracy and CI."""
    frame = evaluate.comparison_table(summaries)
    frame.insert(frame.columns.get_loc("95% CI") + 1, "mean ± sd over seeds",
                 [spread_text(summary["seed_spread"]) for summary in summaries.values()])
    frame.insert(frame.columns.get_loc("feature extraction (s)") + 1, "features computed / reused",
                 [f"{summary.get('features_computed', 0)} / {summary.get('features_reused', 0)}"
                  for summary in summaries.values()])
    return frame.rename(columns={"test accuracy": f"test accuracy (seed {first_seed})"})


def per_seed_comparisons(predictions: dict, pair, seeds, labels=None, n_resamples=9999) -> pandas.DataFrame:
    """The paired comparison repeated for each seed: A - B accuracy with its bootstrap CI and McNemar's p.

    ``predictions``: {(backbone, seed): Predictions}; ``pair``: the two backbones; ``labels``: their display names.
    """
    first, second = labels or pair
    rows = []
    for seed in seeds:
        a, b = predictions[pair[0], seed], predictions[pair[1], seed]
        difference = evaluate.difference_ci(a, b, "accuracy", n_resamples=n_resamples)
        test = evaluate.mcnemar(a, b)
        rows.append({"seed": seed, f"{first} accuracy": a.correct.mean(), f"{second} accuracy": b.correct.mean(),
                     "difference": difference["estimate"], "CI low": difference["low"], "CI high": difference["high"],
                     f"only {first} right": test["b"], f"only {second} right": test["c"], "McNemar p": test["p_value"]})
    return pandas.DataFrame(rows)


def joined_notes(notes: dict) -> str:
    """{model: note} as one line, each distinct note once: 'VGG16, ResNet50: <note>'."""
    by_note = {}
    for name, note in notes.items():
        by_note.setdefault(note, []).append(name)
    return "; ".join(f"{', '.join(names)}: {note}" for note, names in by_note.items())


# ---------------------------------------------------------------- overfitting


def gap_frame(histories: dict) -> pandas.DataFrame:
    """``evaluate.overfitting_gap`` of every run, with ``model`` and ``seed`` columns; keys are (model, seed)."""
    frames = []
    for (name, seed), history in histories.items():
        gap = evaluate.overfitting_gap(history)
        gap.insert(0, "seed", seed)
        gap.insert(0, "model", name)
        frames.append(gap)
    return pandas.concat(frames, ignore_index=True)


def gap_summary(gaps: pandas.DataFrame) -> pandas.DataFrame:
    """Per run: the train - validation accuracy gap at the last epoch, its mean and maximum over epochs."""
    grouped = gaps.groupby(["model", "seed"], sort=False)["train_minus_val_accuracy"]
    return pandas.DataFrame({"last epoch": grouped.last(), "mean over epochs": grouped.mean(),
                             "largest": grouped.max()}).reset_index()


def gap_sentence(summary: pandas.DataFrame, names, val_n: int) -> str:
    """Whether the runs support "the second model overfits more than the first", in one sentence."""
    last = {name: summary.loc[summary["model"] == name].set_index("seed")["last epoch"] for name in names}
    seeds = sorted(set(last[names[0]].index) & set(last[names[1]].index))
    larger = sum(last[names[1]][seed] > last[names[0]][seed] for seed in seeds)
    means = {name: 100 * last[name].mean() for name in names}
    shown = {name: f"{value:.1f}".replace("-", "−") for name, value in means.items()}
    text = (f"At the last epoch the train − validation accuracy gap averaged {shown[names[0]]} points for "
            f"{names[0]} and {shown[names[1]]} for {names[1]} (validation: {val_n} images); {names[1]}'s gap was "
            f"larger in {larger} of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    if len(seeds) < 2:
        return text + ": one seed cannot show a consistent pattern."
    if larger == len(seeds):
        return text + f", consistent with the study's impression that {names[1]} overfits more."
    if larger == 0:
        return text + f", the opposite of the study's impression that {names[1]} overfits more."
    return text + f": no consistent sign that {names[1]} overfits more than {names[0]}."


def gap_figure(gaps: pandas.DataFrame, out_png) -> Saved:
    """Train - validation accuracy and loss gaps per epoch, one colour per model, one line per seed."""
    figure = Figure(figsize=(10.4, 4.0), dpi=DPI, layout="constrained")
    accuracy_axis, loss_axis = figure.subplots(1, 2)
    colours = dict(zip(gaps["model"].unique(), COLOURS))
    for (name, seed), run in gaps.groupby(["model", "seed"], sort=False):
        label = f"{name} seed {seed}"
        style = {"color": colours[name], "alpha": 0.8, "marker": "o", "markersize": 3, "label": label}
        accuracy_axis.plot(run["epoch"], run["train_minus_val_accuracy"], **style)
        loss_axis.plot(run["epoch"], run["train_minus_val_loss"], **style)
    accuracy_axis.set(title="Train − validation accuracy (above 0: overfitting)", xlabel="epoch", ylabel="gap")
    loss_axis.set(title="Train − validation loss (below 0: overfitting)", xlabel="epoch", ylabel="gap")
    for axis in (accuracy_axis, loss_axis):
        axis.axhline(0, color="grey", linewidth=1)
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.legend(*accuracy_axis.get_legend_handles_labels(), loc="outside lower center", ncols=6, fontsize=8)
    return _save(figure, out_png)


# ---------------------------------------------------------------- which images to explain


def explained_images(predictions_a, predictions_b, count: int) -> list:
    """Row indices of ``count`` test images: where the models disagree first, then one per class, in test order."""
    a, b = evaluate.align(predictions_a, predictions_b)
    chosen = [int(index) for index in numpy.flatnonzero(a.correct != b.correct)][: max(count // 2, 1)]
    for label in range(len(a.class_names)):
        for index in numpy.flatnonzero(a.labels == label):
            if len(chosen) >= count:
                return chosen
            if int(index) not in chosen:
                chosen.append(int(index))
                break
    rest = [index for index in range(len(a)) if index not in chosen]
    return (chosen + rest)[:count]


# ---------------------------------------------------------------- the metrics file

TABLE_FORMATS = {"parameters": "{:,}", "trainable": "{:,}", "macro-F1": "{:.3f}", "ECE": "{:.3f}",
                 "feature extraction (s)": "{:.1f}", "training time (s)": "{:.1f}", "latency (ms/image)": "{:.1f}",
                 "size on disk (MB)": "{:.1f}"}
PER_SEED_FORMATS = {"difference": "{:+.3f}", "CI low": "{:+.3f}", "CI high": "{:+.3f}", "McNemar p": "{:.3g}",
                    "accuracy": "{:.3f}"}


def table_block(frame: pandas.DataFrame, formats=None) -> dict:
    """{columns, rows} of display strings for ``heroes.report``: ``formats`` maps a column to a format string."""
    formats = formats or {}

    def shown(column, value):
        if value is None or value is pandas.NA or (isinstance(value, float) and numpy.isnan(value)):
            return None
        suffixed = (formats[key] for key in formats if str(column).endswith(f" {key}"))  # "VGG16 accuracy"
        pattern = formats.get(column) or next(suffixed, None)
        return pattern.format(value).replace("-", "−") if pattern else str(value)

    return {"columns": [str(column) for column in frame.columns],
            "rows": [[shown(column, value) for column, value in zip(frame.columns, row)]
                     for row in frame.itertuples(index=False)]}


def metrics_record(*, schema, title, choices, data, config, summaries, table, table_note, comparison, pairing,
                   per_seed, seed_note, overfitting_sentence, overfitting_table, figures, run_card) -> dict:
    """Notebook 04's metrics file (schema in ``heroes.report``), JSON-ready."""
    weights = {backbone: {"source": choice.source, "random": choice.random, "note": choice.note}
               for backbone, choice in choices.items()}
    record = {
        "schema": schema, "notebook": "04-vgg-vs-resnet", "title": title,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "weights": weights, "weights_random": any(choice.random for choice in choices.values()),
        "data": data, "config": config, "models": summaries, "table": table, "table_note": table_note,
        "comparison": {**comparison, "pairing": pairing}, "verdict": comparison["verdict"], "per_seed": per_seed,
        "seed_note": seed_note, "overfitting": {"sentence": overfitting_sentence, "table": overfitting_table},
        "figures": figures, "run_card": run_card,
    }
    return evaluate.jsonable(record)
