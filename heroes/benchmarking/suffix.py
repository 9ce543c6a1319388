"""VGG16's trainable suffix alone on random features: the direct path against the span path, same batches and seed."""

import dataclasses

import keras
import numpy

from heroes.benchmarking.analysis import ratio
from heroes.benchmarking.clocks import clock, cpu_seconds, steady
from heroes.config import TrainConfig
from heroes.models import surgery
from heroes.training import train
from heroes.training.cached import suffix_fit
from heroes.training import fit


def suffix_problem(settings, dimension: int, classes: int = 6) -> tuple:
    """Random ReLU-like features (the suffix's cost does not depend on their values) and labels."""
    rng = numpy.random.default_rng(settings.seed)
    rows = settings.suffix_rows + settings.suffix_val
    features = settings.suffix_feature_scale * numpy.maximum(rng.standard_normal((rows, dimension), dtype="float32"), 0)
    labels = rng.integers(0, classes, rows)
    split = settings.suffix_rows
    return features[:split], labels[:split], features[split:], labels[split:]


def suffix_path_run(config, problem, xla=None) -> dict:
    """One path: fresh model (same seed, same initial weights), ``suffix_fit.fit_suffix``, then validation probabilities
    of the trained (materialised) suffix."""
    features, labels, val_features, val_labels = problem
    with clock() as build:
        model, _ = train.build_run_model(config, 6)
        _, suffix = surgery.split_at_first_trainable(model)
    cpu = cpu_seconds()
    outcome = suffix_fit.fit_suffix(suffix, config, lambda indices, views: features[indices], labels,
                               (val_features, val_labels), xla=xla)
    cpu = cpu_seconds() - cpu
    with clock() as predict:
        probabilities = suffix.predict(val_features, batch_size=fit.PREDICT_BATCH, verbose=0)
    history = outcome["history"]
    return {
        "path": outcome["suffix_path"], "reason": outcome["suffix_path_reason"], "xla": outcome["suffix_xla"],
        "s_per_epoch": round(steady(history["seconds"]), 3),
        "s_per_epoch_best": round(float(min(history["seconds"][1:] if len(history) > 1 else history["seconds"])), 3),
        "epoch_seconds": [round(value, 2) for value in history["seconds"]],
        # CPU seconds of all of fit_suffix (span setup, every epoch, materialising): contention moves it less
        "cpu_s_total": round(cpu, 2), "wall_s_total": round(sum(outcome["steps"].values()), 2),
        "steps_s": {**{name: round(value, 2) for name, value in outcome["steps"].items()},
                    "build_model": round(build["s"], 2), "predict": round(predict["s"], 2)},
        "loss": history["loss"].tolist(), "val_loss": history["val_loss"].tolist(),
        "probabilities": numpy.asarray(probabilities, dtype="float64"),
        "fc1": keras.ops.convert_to_numpy(suffix.get_layer("fc1").kernel),
    }


def suffix_paths(settings) -> dict:
    """VGG16's trainable suffix (fc1, fc2, output) alone on ``suffix_rows`` random features at
    ``suffix_image_size``: the direct path, then the span path, same batches, order and seed; s/epoch of each and
    how far their losses, validation probabilities and fc1 kernels end apart."""
    config = TrainConfig(backbone="vgg16", image_size=settings.suffix_image_size, weights=None,
                         epochs=settings.suffix_epochs, batch_size=settings.batch_size, seed=settings.seed,
                         score_train_set=False)  # training and validation only, as in the rows
    side = settings.suffix_image_size // 32  # VGG16 halves the image five times; fc1 reads side x side x 512
    problem = suffix_problem(settings, side * side * 512)
    direct = suffix_path_run(dataclasses.replace(config, suffix_path="direct"), problem)
    spanned = suffix_path_run(dataclasses.replace(config, suffix_path="span"), problem)
    reference = None
    if settings.suffix_reference:  # the same direct path, other kernels: how far float32 round-off alone drifts
        again = suffix_path_run(dataclasses.replace(config, suffix_path="direct"), problem, xla=not direct["xla"])
        reference = _gaps(direct, again) | {"xla": again["xla"], "s_per_epoch": again["s_per_epoch"]}
    gaps = _gaps(direct, spanned)
    fit.fresh_session(config)
    return {
        "shape": f"{settings.suffix_rows} x {side * side * 512} -> 4096 -> 4096 -> 6",
        "rows": settings.suffix_rows, "validation_rows": settings.suffix_val, "epochs": settings.suffix_epochs,
        "batch_size": settings.batch_size, "optimizer": f"SGD({config.learning_rate}, momentum {config.momentum})",
        "features": f"random, {settings.suffix_feature_scale:g} x max(N(0, 1), 0)",
        "direct_s_per_epoch": direct["s_per_epoch"], "span_s_per_epoch": spanned["s_per_epoch"],
        "speedup_per_epoch": ratio(direct["s_per_epoch"], spanned["s_per_epoch"]),
        "speedup_best_epoch": ratio(direct["s_per_epoch_best"], spanned["s_per_epoch_best"]),
        "speedup_cpu_s_total": ratio(direct["cpu_s_total"], spanned["cpu_s_total"]),
        **gaps, "round_off_reference": reference, "direct": _strip(direct), "span": _strip(spanned),
    }


def _gaps(first: dict, second: dict) -> dict:
    """Largest differences between two runs of the suffix: validation probabilities, losses, fc1 weights."""
    return {
        "max_probability_difference": float(numpy.abs(first["probabilities"] - second["probabilities"]).max()),
        "max_loss_difference": float(numpy.abs(numpy.subtract(first["loss"], second["loss"])).max()),
        "max_val_loss_difference": float(numpy.abs(numpy.subtract(first["val_loss"], second["val_loss"])).max()),
        "fc1_max_difference": float(numpy.abs(first["fc1"] - second["fc1"]).max()),
    }


def _strip(run: dict) -> dict:
    return {key: value for key, value in run.items() if key not in ("probabilities", "fc1")}
