"""Naive Keras fine-tuning against the frozen-feature cache (float32, bf16), side by side, near the machine's limit.

    .venv/bin/python benchmarks/train_benchmark.py [--quick] [--out FILE.json] [--naive-epochs N] [--naive-batches N]
                                                   [--backbones vgg16,resnet50] [--epochs N] [--size PX]
                                                   [--counts TRAIN,VAL,TEST] [--measured-naive vgg16|none]
                                                   [--suffix-rows N] [--suffix-epochs N] [--suffix-size PX]
                                                   [--suffix-only]
    python -m heroes bench [--quick] [--out FILE.json]          (the same, through heroes.bench)

In one process, on one embedded synthetic dataset (six classes, 200/25/25 per class at 224 px, seed 0), for each
backbone under its study policy (batch 16, SGD lr 0.001 momentum 0.9, ``weights=None``: random weights cost the
same to run as ImageNet ones):

1. **naive** -- ``model.fit`` on the whole model, float32, frozen base inside: the frozen stack runs for every
   training and validation image in every epoch. For the backbones in ``measured_naive`` (VGG16 by default) every
   epoch really trains (``heroes.training.train.train_run(use_cache=False)``) and the test accuracy is measured;
   the others are timed for ``naive_epochs`` epochs (optionally only ``naive_batches`` training batches of each) and
   extrapolated to ``epochs``, with no test accuracy (never estimated).
2. **cached float32** and 3. **cached bf16** -- ``heroes.training.train.train_run`` with the frozen-feature cache in a
   fresh temporary folder: the frozen prefix runs once per image, then only the trainable suffix trains, VGG16's
   fc1 on the span path (``heroes.training.cached.span``), a convolutional suffix of the bf16 row in mixed bf16 where the
   CPU has native bf16. Each records the seconds of every step of the run (build, extraction, fit, test, writing).

Before them, **VGG16's suffix alone** (fc1, fc2, output on ``suffix_rows`` random features at the study's shape,
1,200 x 25,088 -> 4,096 -> 4,096 -> 6): the direct path, then the span path, same batches and seed; seconds per
epoch of each and the largest difference in loss, validation probability and fc1 weight.

Per row: extraction images/s, seconds per epoch, end-to-end wall time, CPU time, peak RSS (sampled), the load
average while it ran and the test accuracy. Around them: the float32 and bf16 matmul ceiling (GFLOP/s, and GFLOP
per CPU-second, which contention distorts less), the frozen prefix's analytic FLOPs per image, and a short
alternating probe of each prefix in float32 and bf16, as a fraction of the ceiling. The JSON (``reports/benchmarks/
latest.json``, ``--quick``: ``latest-quick.json``) leads with ``bf16_native``, ``<backbone>.naive.wall_s``,
``<backbone>.cached.wall_s`` (the cached path this machine runs by default), ``<backbone>.speedup`` and
``suffix.{direct,span}_s_per_epoch``, ``suffix.max_probability_difference``; the markdown tables are printed last.
"""

import argparse
import dataclasses
import math
import os
import platform
import resource
import shlex
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HEROES_OFFLINE", "1")

import keras  # noqa: E402
import numpy  # noqa: E402
import psutil  # noqa: E402

from heroes import machine, paths  # noqa: E402
from heroes.config import TrainConfig  # noqa: E402
from heroes.data import arrays, augment, scan, split  # noqa: E402
from heroes.data.synthetic import dataset  # noqa: E402
from heroes.errors import UserError  # noqa: E402
from heroes.io import write_json  # noqa: E402
from heroes.models import surgery  # noqa: E402
from heroes.training import train  # noqa: E402
from heroes.training.cached import features  # noqa: E402
from heroes.models.backbones import get_backbone  # noqa: E402
from heroes.training.callbacks import BestWeights  # noqa: E402
from heroes.reporting import run_card  # noqa: E402

DEFAULT_OUT = paths.REPORTS / "benchmarks" / "latest.json"
QUICK_OUT = paths.REPORTS / "benchmarks" / "latest-quick.json"
TARGET_SPEEDUP = 15.0
TARGET_SUFFIX = 4.0  # VGG16's suffix per epoch, span over direct
TARGET_CEILING_FRACTION = 0.5
TARGET_ACCURACY_POINTS = 2.0
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one benchmark run measures; ``FULL`` is the study's configuration, ``QUICK`` a few-minute check."""

    image_size: int = 224
    train: int = 200  # images per class
    val: int = 25
    test: int = 25
    batch_size: int = 16
    epochs: int = 10  # the run every row's wall time is for
    naive_epochs: int = 1  # epochs the naive path really runs; >= epochs: a full, measured run with test accuracy
    naive_batches: int | None = None  # training batches timed per naive epoch (None: the whole epoch)
    backbones: tuple = ("vgg16", "resnet50")
    measured_naive: tuple = ("vgg16",)  # backbones whose naive path trains every epoch (measured, test accuracy)
    suffix_rows: int = 1200  # VGG16 suffix alone, direct vs span: training rows (the study's 6 x 200)
    suffix_val: int = 150  # ... validation rows, whose probabilities the two paths are compared on
    suffix_epochs: int = 4  # ... epochs (the first also traces the step functions)
    suffix_image_size: int = 224  # ... image size setting fc1's inputs (224 px: 7 x 7 x 512 = 25,088)
    suffix_feature_scale: float = 0.1  # ... random features are scale * max(N(0, 1), 0); 1 makes SGD chaotic
    suffix_reference: bool = True  # ... and the direct path again with XLA toggled: float32 round-off's own spread
    matmul_sizes: tuple = (2048, 4096)  # the ceiling is the best of these, before and after the rows
    matmul_reps: int = 4
    probe_images: int = 32  # images per pass of the float32 / bf16 prefix probe
    seed: int = 0
    sample_seconds: float = 0.2  # RSS and load-average sampling period


FULL = Settings()
QUICK = Settings(image_size=64, train=8, val=2, test=2, epochs=2, naive_epochs=1, matmul_sizes=(1024,), matmul_reps=3,
                 probe_images=16, suffix_rows=96, suffix_val=16, suffix_epochs=2, suffix_image_size=64,
                 suffix_reference=False)


# ---------------------------------------------------------------- the machine and its load


def machine_info() -> dict:
    """CPU model, cores, the vector/matrix extensions that decide bf16 speed, memory and library versions."""
    import tensorflow

    flags = machine.cpu_flags()
    return {
        "cpu": machine.cpu_name(), "cpu_family": machine.cpuinfo_field("cpu family"),
        "cpu_model_number": machine.cpuinfo_field("model"), "logical_cores": os.cpu_count(),
        "cpu_flags": {flag: flag in flags for flag in machine.REPORTED_FLAGS},
        "bf16_native": machine.bf16_is_fast(), "gpus": len(tensorflow.config.list_physical_devices("GPU")),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "tensorflow": tensorflow.__version__, "keras": keras.__version__, "python": platform.python_version(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "tf_cpu_allocator_use_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", ""),
        "malloc": machine.malloc_state(),
        "intra_op_threads": tensorflow.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Monitor:
    """Samples this process's RSS and the 1-minute load average in a thread; ``phase`` records one measurement."""

    def __init__(self, interval: float, verbose: bool = True):
        self.process, self.interval, self.verbose = psutil.Process(), interval, verbose
        self.peak, self.loads, self.all_loads = 0, [], []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        rss, load = self.process.memory_info().rss, os.getloadavg()[0]
        with self._lock:
            self.peak = max(self.peak, rss)
            self.loads.append(load)
            self.all_loads.append(load)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @contextmanager
    def phase(self, name: str):
        """Yield a dict filled, on exit, with wall/CPU seconds, RSS at start and peak, and the load average."""
        with self._lock:
            self.peak, self.loads = self.process.memory_info().rss, []
        rss_start, load_start = self.process.memory_info().rss, os.getloadavg()[0]
        if self.verbose:
            print(f"[{datetime.now():%H:%M:%S}] {name} ... (load {load_start:.2f})", flush=True)
        record = {}
        wall, cpu = time.perf_counter(), _cpu_seconds()
        yield record
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        self._sample()
        with self._lock:
            peak, loads = self.peak, list(self.loads)
        record["resources"] = {
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_per_wall": round(cpu / wall, 2) if wall else None,
            "rss_start_mib": round(rss_start / MIB, 1), "peak_rss_mib": round(peak / MIB, 1),
            "load_1min_start": round(load_start, 2), "load_1min_mean": round(float(numpy.mean(loads)), 2),
            "load_1min_max": round(float(numpy.max(loads)), 2),
        }
        if self.verbose:
            print(f"[{datetime.now():%H:%M:%S}] {name}: {wall:.0f} s wall, {cpu:.0f} s CPU, "
                  f"peak RSS {peak / MIB:.0f} MiB, load {numpy.mean(loads):.2f}", flush=True)


# ---------------------------------------------------------------- the ceiling and the FLOPs


def matmul_ceiling(size: int, reps: int, dtype: str) -> dict:
    """Best and median GFLOP/s of a ``size``-square ``tf.linalg.matmul`` in ``dtype`` after one warm-up call."""
    import tensorflow

    rng = numpy.random.default_rng(0)
    left = tensorflow.cast(rng.standard_normal((size, size), dtype="float32"), dtype)
    right = tensorflow.cast(rng.standard_normal((size, size), dtype="float32"), dtype)
    product = tensorflow.function(lambda a, b: tensorflow.reduce_sum(tensorflow.cast(tensorflow.linalg.matmul(a, b),
                                                                                       "float32")))
    product(left, right).numpy()
    flops = 2.0 * size**3
    walls, cpus = [], []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        product(left, right).numpy()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu_seconds() - cpu)
    return {
        "dtype": dtype, "size": size, "reps": reps, "gflop_per_rep": flops / 1e9,
        "gflops": round(flops / min(walls) / 1e9, 2),
        "gflops_median": round(flops / float(numpy.median(walls)) / 1e9, 2),
        "gflop_per_cpu_s": round(flops / min(cpus) / 1e9, 2) if min(cpus) > 0 else None,
        "seconds": [round(value, 3) for value in walls],
    }


def matmul_ceilings(settings: Settings) -> dict:
    """{dtype: [one ``matmul_ceiling`` per size]} for float32 and bfloat16."""
    return {dtype: [matmul_ceiling(size, settings.matmul_reps, dtype) for size in settings.matmul_sizes]
            for dtype in ("float32", "bfloat16")}


def prefix_flops(prefix) -> int:
    """FLOPs of one image through ``prefix``: 2 x multiply-adds of every Conv2D (2.H.W.k^2.Cin.Cout/groups),
    DepthwiseConv2D and Dense.

    Bias, BatchNorm, activations, pooling and residual adds are left out (under 1% for VGG16 and ResNet50).
    """
    total = 0
    for layer in prefix.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            kernel_h, kernel_w, inputs_per_group, outputs = layer.kernel.shape
            total += 2 * height * width * kernel_h * kernel_w * inputs_per_group * outputs
        elif isinstance(layer, keras.layers.DepthwiseConv2D):  # not a Conv2D subclass in Keras 3
            height, width = layer.output.shape[1:3]
            total += 2 * height * width * math.prod(layer.kernel.shape)  # kh * kw * channels * multiplier
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return int(total)


def _build(config, num_classes):
    """The model ``train_run`` builds for ``config``: same session reset, seed, weights and strategy scope."""
    return train.build_run_model(config, num_classes)[0]


def _timed_passes(extractor, images, batch_size) -> tuple:
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for start in range(0, len(images), batch_size):
        features.run_prefix(extractor, images[start : start + batch_size])
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def prefix_probe(config, num_classes, images, batch_size) -> dict:
    """The frozen prefix alone, float32 then bf16 then float32 then bf16 (best pass counts), on the same images."""
    model = _build(config, num_classes)
    prefix, _ = surgery.split_at_first_trainable(model)
    variants = {"float32": prefix, "bfloat16": features.bfloat16_prefix(prefix)}
    for extractor in variants.values():
        features.run_prefix(extractor, images[:batch_size])  # trace and warm up
    walls, cpus = {name: [] for name in variants}, {name: [] for name in variants}
    for _ in range(2):
        for name, extractor in variants.items():
            wall, cpu = _timed_passes(extractor, images, batch_size)
            walls[name].append(wall)
            cpus[name].append(cpu)
    flops = prefix_flops(prefix)
    result = {"cut": prefix.layers[-1].name, "flops_per_image": flops, "gflop_per_image": round(flops / 1e9, 3),
              "images": len(images), "batch_size": batch_size}
    for name in variants:
        result[name] = {
            "images_per_s": round(len(images) / min(walls[name]), 3),
            "gflops": round(flops * len(images) / min(walls[name]) / 1e9, 2),
            "gflop_per_cpu_s": round(flops * len(images) / min(cpus[name]) / 1e9, 2),
            "seconds": [round(value, 2) for value in walls[name]],
        }
    del model, prefix, variants
    return result


# ---------------------------------------------------------------- data


def make_sets(folder: Path, settings: Settings) -> dict:
    """Draw the embedded dataset, scan it, split it per class and decode it: train/val/test ``ImageSet``s."""
    per_class = settings.train + settings.val + settings.test
    dataset.write_dataset(folder / "raw", per_class=per_class, size=settings.image_size, seed=settings.seed,
                            progress=False)
    splits = split.make_splits(scan.scan(folder / "raw", progress=False), train=settings.train, val=settings.val,
                               test=settings.test, seed=settings.seed)
    return arrays.load_split_arrays(splits, settings.image_size, cache_dir=folder / "arrays", progress=False)


def train_config(settings: Settings, backbone: str, feature_dtype="float32") -> TrainConfig:
    """The study's run; float32 features train a float32 suffix, bf16 ones the suffix precision ``auto`` picks (mixed
    bf16 for a convolutional suffix where native), so the two cached rows show what bf16 does to accuracy.

    No per-epoch re-scoring of the training set (notebook 04's overfitting curves): every row, naive included, times
    the same work, training plus validation each epoch and one test pass."""
    return TrainConfig(backbone=backbone, policy="study", image_size=settings.image_size, weights=None,
                       epochs=settings.epochs, batch_size=settings.batch_size, seed=settings.seed,
                       feature_dtype=feature_dtype, suffix_precision="float32" if feature_dtype == "float32" else "auto",
                       score_train_set=False)


def _steady(values) -> float:
    """Mean of the epochs after the first (which also traces the step functions), or the only one."""
    values = list(values)
    return float(numpy.mean(values[1:] if len(values) > 1 else values))


# ---------------------------------------------------------------- the three paths


class FitClock(keras.callbacks.Callback):
    """Inside ``fit``: each training batch, each epoch's training part (batches and data) and each validation pass."""

    def __init__(self):
        super().__init__()
        self.batches, self.train_parts, self.validations = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._batch = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(time.perf_counter() - self._batch)

    def on_test_begin(self, logs=None):
        self._test = time.perf_counter()
        self.train_parts.append(self._test - self._epoch)

    def on_test_end(self, logs=None):
        self.validations.append(time.perf_counter() - self._test)


def naive_measured(config, sets, folder) -> dict:
    """Every epoch really trained, end to end: ``train_run(use_cache=False)``; nothing extrapolated."""
    # plain Keras fine-tuning does not re-score its training set each epoch: neither does the reference here
    result = train.train_run(config, sets, name=f"naive-{config.backbone}",
                             run_dir=folder / "runs" / "naive", use_cache=False, progress=False, save_model=False)
    metrics, history = result.metrics, result.history
    images = len(sets["train"]) + len(sets["val"])
    epoch = _steady(history["seconds"])
    return {
        "path": "naive", "extrapolated": False, "epochs_trained": int(len(history)), "batches_timed_per_epoch": None,
        "extract_images_per_s": None, "stack_images_per_s": round(images / epoch, 3),
        "seconds_per_epoch": round(epoch, 2), "epoch_seconds": [round(value, 2) for value in history["seconds"]],
        "wall_s": round(metrics["wall_time_s"], 1), "train_s": round(metrics["train_time_s"], 1),
        "test_accuracy": metrics["test_accuracy"], "test_n": metrics["test_n"], **_epoch1(history),
    }


def _epoch1(history) -> dict:
    """Training loss, validation loss and accuracy after the first epoch: the paths train the same model."""
    return {f"{name}_epoch1": float(numpy.asarray(history[name])[0]) for name in ("loss", "val_loss", "val_accuracy")}


def naive_timed(config, sets, settings) -> dict:
    """Time ``settings.naive_epochs`` epochs (of ``naive_batches`` batches) of ``model.fit`` on the whole model and
    extrapolate to ``config.epochs``; the test accuracy of a partly trained model is not reported."""
    start = time.perf_counter()
    model = _build(config, len(sets["train"].class_names))
    train.compile_for_training(model, config)
    image_set = sets["train"]
    sha = numpy.asarray(image_set.sha256)
    batches = train.EpochBatches(lambda indices, views: augment.view_batch(image_set.images[indices], sha[indices],
                                                                            views),
                                 image_set.labels, config.batch_size, config.seed)
    steps = len(batches) if settings.naive_batches is None else min(settings.naive_batches, len(batches))
    validation = (numpy.asarray(sets["val"].images, dtype="float32"), sets["val"].labels)
    clock = FitClock()
    setup = time.perf_counter() - start
    fitted = model.fit(batches, validation_data=validation, epochs=settings.naive_epochs, steps_per_epoch=steps,
                       callbacks=[BestWeights("val_loss"), clock], verbose=0)
    train.release_optimizer_graphs()
    start = time.perf_counter()
    model.predict(numpy.asarray(sets["test"].images, dtype="float32"), batch_size=train.PREDICT_BATCH, verbose=0)
    test_pass = time.perf_counter() - start
    timed = len(clock.batches)
    batch = (sum(clock.train_parts) - clock.batches[0]) / (timed - 1) if timed > 1 else clock.batches[0]
    trace = max(clock.batches[0] - batch, 0.0)
    validation_s = _steady(clock.validations)
    epoch = batch * len(batches) + validation_s
    train_s = config.epochs * epoch + trace
    images = len(image_set) + len(sets["val"])
    full_epoch = steps == len(batches)
    return {
        "path": "naive", "extrapolated": True, "epochs_trained": settings.naive_epochs,
        "batches_timed_per_epoch": steps, "batches_per_epoch": len(batches),
        "extract_images_per_s": None, "stack_images_per_s": round(images / epoch, 3),
        "seconds_per_epoch": round(epoch, 2), "seconds_per_batch": round(batch, 3),
        "first_batch_overhead_s": round(trace, 2), "validation_s": round(validation_s, 2),
        "setup_s": round(setup, 2), "test_pass_s": round(test_pass, 2),
        "wall_s": round(setup + train_s + test_pass, 1), "train_s": round(train_s, 1),
        "test_accuracy": None, "test_n": len(sets["test"]),
        **(_epoch1(fitted.history) if full_epoch else dict.fromkeys(("loss_epoch1", "val_loss_epoch1",
                                                                      "val_accuracy_epoch1"))),
        "extrapolation": (
            f"timed {settings.naive_epochs} epoch(s) x {steps} of {len(batches)} training batches + validation; "
            f"{config.epochs} epochs = setup + {config.epochs} x (s/batch x {len(batches)} + validation) "
            f"+ first-batch tracing + one test pass"
        ),
    }


def cached(config, sets, folder) -> dict:
    """``train_run`` with the frozen-feature cache in a fresh folder: real extraction, then the suffix trains."""
    cache_dir = folder / f"features-{config.feature_dtype}"  # own folder: bf16 runs keep float32 test features too
    with _clock() as call:
        result = train.train_run(config, sets, name=f"cached-{config.backbone}-{config.feature_dtype}",
                                 run_dir=folder / "runs" / f"cached-{config.feature_dtype}", use_cache=True,
                                 cache_dir=cache_dir, progress=False, save_model=False)
    metrics, history = result.metrics, result.history
    steps = {name: round(value, 2) for name, value in metrics["step_seconds"].items()}
    steps["write_run"] = round(call["s"] - metrics["wall_time_s"], 2)  # after the run's own clock stopped
    steps["unaccounted"] = round(call["s"] - sum(steps.values()), 2)
    cache = metrics["feature_cache"]
    for store in (cache, metrics["test_feature_cache"] or {}):
        if store.get("reused"):
            raise ValueError(f"the benchmark's fresh feature cache {store['dir']} reused {store['reused']} features")
    return {
        "path": f"cached {config.feature_dtype}", "extrapolated": False, "epochs_trained": int(len(history)),
        "extract_images_per_s": round(cache["computed"] / metrics["feature_time_s"], 3),
        "features_computed": cache["computed"], "extract_s": round(metrics["feature_time_s"], 1),
        "stack_images_per_s": None,
        "seconds_per_epoch": round(_steady(history["seconds"]), 2),
        "epoch_seconds": [round(value, 2) for value in history["seconds"]],
        "wall_s": round(metrics["wall_time_s"], 1), "train_s": round(metrics["train_time_s"], 1),
        "test_accuracy": metrics["test_accuracy"], "test_n": metrics["test_n"], **_epoch1(history),
        "feature_dtype": metrics["feature_dtype"], "suffix_path": metrics["suffix_path"],
        "suffix_path_reason": metrics["suffix_path_reason"], "suffix_precision": metrics["suffix_precision"],
        "suffix_xla": metrics["suffix_xla"], "steps_s": steps,
    }


# ---------------------------------------------------------------- VGG16's suffix alone: direct vs span


def _suffix_problem(settings: Settings, dimension: int, classes: int = 6) -> tuple:
    """Random ReLU-like features (the suffix's cost does not depend on their values) and labels."""
    rng = numpy.random.default_rng(settings.seed)
    rows = settings.suffix_rows + settings.suffix_val
    features = settings.suffix_feature_scale * numpy.maximum(rng.standard_normal((rows, dimension), dtype="float32"), 0)
    labels = rng.integers(0, classes, rows)
    split = settings.suffix_rows
    return features[:split], labels[:split], features[split:], labels[split:]


def _suffix_path_run(config, problem, xla=None) -> dict:
    """One path: fresh model (same seed, same initial weights), ``train.fit_suffix``, then validation probabilities
    of the trained (materialised) suffix."""
    features, labels, val_features, val_labels = problem
    with _clock() as build:
        model, _ = train.build_run_model(config, 6)
        _, suffix = surgery.split_at_first_trainable(model)
    cpu = _cpu_seconds()
    outcome = train.fit_suffix(suffix, config, lambda indices, views: features[indices], labels,
                               (val_features, val_labels), xla=xla)
    cpu = _cpu_seconds() - cpu
    with _clock() as predict:
        probabilities = suffix.predict(val_features, batch_size=train.PREDICT_BATCH, verbose=0)
    history = outcome["history"]
    return {
        "path": outcome["suffix_path"], "reason": outcome["suffix_path_reason"], "xla": outcome["suffix_xla"],
        "s_per_epoch": round(_steady(history["seconds"]), 3),
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


@contextmanager
def _clock():
    record = {}
    start = time.perf_counter()
    yield record
    record["s"] = time.perf_counter() - start


def suffix_paths(settings: Settings) -> dict:
    """VGG16's trainable suffix (fc1, fc2, output) alone on ``suffix_rows`` random features at
    ``suffix_image_size``: the direct path, then the span path, same batches, order and seed; s/epoch of each and
    how far their losses, validation probabilities and fc1 kernels end apart."""
    config = TrainConfig(backbone="vgg16", image_size=settings.suffix_image_size, weights=None,
                         epochs=settings.suffix_epochs, batch_size=settings.batch_size, seed=settings.seed,
                         score_train_set=False)  # training and validation only, as in the rows
    side = settings.suffix_image_size // 32  # VGG16 halves the image five times; fc1 reads side x side x 512
    problem = _suffix_problem(settings, side * side * 512)
    direct = _suffix_path_run(dataclasses.replace(config, suffix_path="direct"), problem)
    spanned = _suffix_path_run(dataclasses.replace(config, suffix_path="span"), problem)
    reference = None
    if settings.suffix_reference:  # the same direct path, other kernels: how far float32 round-off alone drifts
        again = _suffix_path_run(dataclasses.replace(config, suffix_path="direct"), problem, xla=not direct["xla"])
        reference = _gaps(direct, again) | {"xla": again["xla"], "s_per_epoch": again["s_per_epoch"]}
    gaps = _gaps(direct, spanned)
    train.fresh_session(config)
    return {
        "shape": f"{settings.suffix_rows} x {side * side * 512} -> 4096 -> 4096 -> 6",
        "rows": settings.suffix_rows, "validation_rows": settings.suffix_val, "epochs": settings.suffix_epochs,
        "batch_size": settings.batch_size, "optimizer": f"SGD({config.learning_rate}, momentum {config.momentum})",
        "features": f"random, {settings.suffix_feature_scale:g} x max(N(0, 1), 0)",
        "direct_s_per_epoch": direct["s_per_epoch"], "span_s_per_epoch": spanned["s_per_epoch"],
        "speedup_per_epoch": _ratio(direct["s_per_epoch"], spanned["s_per_epoch"]),
        "speedup_best_epoch": _ratio(direct["s_per_epoch_best"], spanned["s_per_epoch_best"]),
        "speedup_cpu_s_total": _ratio(direct["cpu_s_total"], spanned["cpu_s_total"]),
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


# ---------------------------------------------------------------- one backbone, the whole benchmark


def _ratio(numerator, denominator):
    return round(numerator / denominator, 2) if numerator and denominator else None


def analyse(rows: dict, settings: Settings, counts: dict, probe: dict, ceilings: dict) -> dict:
    """Ratios naive/cached, the ideal ratio from counting frozen-stack passes, and what limits the 15x target."""
    naive, float32, bf16 = rows["naive"], rows["cached float32"], rows["cached bfloat16"]
    passes_naive = settings.epochs * (counts["train"] + counts["val"]) + counts["test"]
    passes_cached = counts["train"] + counts["val"] + counts["test"]
    target_wall = naive["wall_s"] / TARGET_SPEEDUP
    rest = bf16["wall_s"] - bf16["extract_s"]  # model build, suffix training, test pass, writing the run
    needed = bf16["extract_s"] / (target_wall - rest) if target_wall > rest else None
    # Contention moves wall times; CPU seconds move less. The naive CPU time of the extrapolated run is estimated
    # as its timed phase's CPU/wall times the extrapolated wall time.
    naive_cpu = naive["resources"]["cpu_per_wall"] * naive["wall_s"] if naive["extrapolated"] \
        else naive["resources"]["cpu_s"]
    fp32_ceiling, bf16_ceiling = ceilings["float32"], ceilings["bfloat16"]
    gflop = probe["gflop_per_image"]
    accuracy_gap = (None if naive["test_accuracy"] is None
                    else round(100 * abs(bf16["test_accuracy"] - naive["test_accuracy"]), 1))
    return {
        "speedup_cached_float32": _ratio(naive["wall_s"], float32["wall_s"]),
        "speedup_cached_bfloat16": _ratio(naive["wall_s"], bf16["wall_s"]),
        "epoch_ratio_naive_over_cached_float32": _ratio(naive["seconds_per_epoch"], float32["seconds_per_epoch"]),
        "speedup_cpu_seconds_float32": _ratio(naive_cpu, float32["resources"]["cpu_s"]),
        "speedup_cpu_seconds_bfloat16": _ratio(naive_cpu, bf16["resources"]["cpu_s"]),
        "bound_with_free_extraction_bfloat16": _ratio(naive["wall_s"], rest),
        # the suffix trained at no cost: what extraction, the test pass and bookkeeping alone allow
        "bound_with_free_training_bfloat16": _ratio(naive["wall_s"], bf16["wall_s"] - bf16["train_s"]),
        "extraction_bf16_over_float32": _ratio(bf16["extract_images_per_s"], float32["extract_images_per_s"]),
        "probe_bf16_over_float32": _ratio(probe["bfloat16"]["images_per_s"], probe["float32"]["images_per_s"]),
        "probe_bf16_over_float32_per_cpu_s": _ratio(probe["bfloat16"]["gflop_per_cpu_s"],
                                                    probe["float32"]["gflop_per_cpu_s"]),
        "ideal_ratio_frozen_stack_passes": round(passes_naive / passes_cached, 2),
        "frozen_stack_passes": {"naive": passes_naive, "cached": passes_cached},
        "cached_bfloat16_breakdown_s": {"extraction": bf16["extract_s"], "training": bf16["train_s"],
                                        "other": round(bf16["wall_s"] - bf16["extract_s"] - bf16["train_s"], 1)},
        "target_wall_s_for_15x": round(target_wall, 1),
        "extraction_speedup_needed_for_15x": None if needed is None else round(needed, 2),
        "target_15x_reachable_by_faster_extraction_alone": needed is not None,
        "accuracy_gap_points_bf16_vs_naive": accuracy_gap,
        "extraction_gflops_in_run": {
            "float32": round(gflop * float32["extract_images_per_s"], 2),
            "bfloat16": round(gflop * bf16["extract_images_per_s"], 2)},
        "fraction_of_ceiling": {
            "float32_run_wall": _ratio(gflop * float32["extract_images_per_s"], fp32_ceiling["gflops"]),
            "bfloat16_run_wall": _ratio(gflop * bf16["extract_images_per_s"], bf16_ceiling["gflops"]),
            "float32_probe_wall": _ratio(probe["float32"]["gflops"], fp32_ceiling["gflops"]),
            "bfloat16_probe_wall": _ratio(probe["bfloat16"]["gflops"], bf16_ceiling["gflops"]),
            "float32_probe_per_cpu_s": _ratio(probe["float32"]["gflop_per_cpu_s"], fp32_ceiling["gflop_per_cpu_s"]),
            "bfloat16_probe_per_cpu_s": _ratio(probe["bfloat16"]["gflop_per_cpu_s"], bf16_ceiling["gflop_per_cpu_s"]),
        },
    }


def bench_backbone(backbone, sets, settings, monitor, folder) -> dict:
    """The prefix probe and the three rows for one backbone."""
    num_classes = len(sets["train"].class_names)
    config = train_config(settings, backbone)
    images = numpy.asarray(sets["train"].images[: settings.probe_images], dtype="float32")
    with monitor.phase(f"{backbone} prefix probe float32/bf16") as probe_phase:
        probe = prefix_probe(config, num_classes, images, settings.batch_size)
    probe["resources"] = probe_phase["resources"]
    rows = {}
    measured = backbone in settings.measured_naive or (settings.naive_epochs >= settings.epochs
                                                        and not settings.naive_batches)
    naive_label = "naive (measured)" if measured else "naive (timed, extrapolated)"
    with monitor.phase(f"{backbone} {naive_label}") as phase:
        if naive_label == "naive (measured)":
            phase.update(naive_measured(config, sets, folder / backbone))
        else:
            phase.update(naive_timed(config, sets, settings))
    rows["naive"] = phase
    for dtype in ("float32", "bfloat16"):
        with monitor.phase(f"{backbone} cached {dtype}") as phase:
            phase.update(cached(train_config(settings, backbone, dtype), sets, folder / backbone))
        rows[f"cached {dtype}"] = phase
    train.fresh_session(config)
    return {"backbone": backbone, "policy": "study", "probe": probe, "rows": rows}


def run_benchmark(settings: Settings = FULL, out=DEFAULT_OUT, verbose: bool = True) -> dict:
    """Measure everything in this process, write the JSON to ``out`` (unless None) and return it."""
    started = datetime.now(timezone.utc)
    result = {
        "benchmark": "naive Keras fine-tuning vs frozen-feature cache (float32, bf16)",
        "date": started.date().isoformat(), "started": started.isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(settings), "machine": machine_info(), "notes": _notes(settings),
        "git": run_card.git_state(),  # the code that runs: read before, not after, the long rows
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    monitor = Monitor(settings.sample_seconds, verbose)
    with monitor, tempfile.TemporaryDirectory(prefix="heroes-bench-") as tmp:
        folder = Path(tmp)
        with monitor.phase("matmul ceiling (before)") as before_phase:
            before = matmul_ceilings(settings)
        if settings.suffix_rows:
            with monitor.phase("vgg16 suffix alone: direct vs span") as suffix_phase:
                result["suffix"] = suffix_paths(settings)
            result["suffix"]["resources"] = suffix_phase["resources"]
        counts = {}
        if settings.backbones:
            with monitor.phase("synthetic data") as data_phase:
                sets = make_sets(folder / "data", settings)
            counts = {name: len(sets[name]) for name in ("train", "val", "test")}
            result["data"] = {**counts, "classes": list(sets["train"].class_names),
                              "image_size": settings.image_size, "resources": data_phase["resources"]}
        backbones = []
        for name in settings.backbones:
            backbones.append(bench_backbone(name, sets, settings, monitor, folder))
            if out is not None:  # a run stopped later still leaves what it measured
                write_json(_partial_path(out), {**result, "complete": False, "backbones": backbones})
        with monitor.phase("matmul ceiling (after)") as after_phase:
            after = matmul_ceilings(settings)
        loads = list(monitor.all_loads)
    ceilings = {dtype: max(before[dtype] + after[dtype], key=lambda item: item["gflops"]) for dtype in before}
    result["ceiling"] = {"best": ceilings, "before": before, "after": after,
                         "resources": {"before": before_phase["resources"], "after": after_phase["resources"]}}
    result["bf16_native"] = result["machine"]["bf16_native"]
    for entry in backbones:
        entry["analysis"] = analyse(entry["rows"], settings, counts, entry["probe"], ceilings)
        result[entry["backbone"]] = headline(entry, result["bf16_native"])
    result["backbones"] = backbones
    finished = datetime.now(timezone.utc)
    result["finished"] = finished.isoformat(timespec="seconds")
    result["total_wall_s"] = round((finished - started).total_seconds(), 1)
    result["load_1min"] = {"mean": round(float(numpy.mean(loads)), 2), "min": round(float(numpy.min(loads)), 2),
                           "max": round(float(numpy.max(loads)), 2), "samples": len(loads)}
    result["process_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = _targets(result)
    result["complete"] = True
    if out is not None:
        write_json(out, result)
        Path(_partial_path(out)).unlink(missing_ok=True)
        result["written_to"] = str(out)
    return result


def _partial_path(out) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def _notes(settings: Settings) -> list:
    everything = settings.naive_epochs >= settings.epochs and not settings.naive_batches
    measured = [name for name in settings.backbones if everything or name in settings.measured_naive]
    timed = [name for name in settings.backbones if name not in measured]
    naive = "naive: " + "; ".join(
        ([f"{', '.join(measured)}: every epoch really trained and measured, with test accuracy"] if measured else [])
        + ([f"{', '.join(timed)}: timed {settings.naive_epochs} epoch(s)"
            + (f" of {settings.naive_batches} training batches" if settings.naive_batches else "")
            + f" and EXTRAPOLATED to {settings.epochs} epochs; test accuracy not measured"] if timed else []))
    return [
        naive,
        "cached rows: one heroes.training.train.train_run each, feature cache in a fresh temporary folder per row "
        "(nothing reused; a bf16 row also extracts float32 test features: the float32 model is what it scores)",
        "weights=None (random): same FLOPs as ImageNet weights; accuracies are on the synthetic data set",
        "shared machine: wall times depend on the other processes; CPU seconds and the 1-minute load average are "
        "recorded beside every wall time",
        "peak RSS is sampled every %.2f s per phase (short spikes can be missed)" % settings.sample_seconds,
        "FLOPs: 2 x multiply-adds of the prefix's Conv2D/Dense layers, counted from their shapes",
    ]


def headline(entry: dict, bf16_native: bool) -> dict:
    """naive vs the cached path this machine runs by default (bf16 features where native, else float32)."""
    rows = entry["rows"]
    name = "cached bfloat16" if bf16_native else "cached float32"
    naive, cached_row = rows["naive"], rows[name]
    keep = ("wall_s", "seconds_per_epoch", "test_accuracy", "test_n")
    return {
        "naive": {key: naive[key] for key in keep} | {"extrapolated": naive["extrapolated"]},
        "cached": {key: cached_row[key] for key in keep} | {
            "row": name, "feature_dtype": cached_row["feature_dtype"], "suffix_path": cached_row["suffix_path"],
            "suffix_precision": cached_row["suffix_precision"], "steps_s": cached_row["steps_s"]},
        "speedup": _ratio(naive["wall_s"], cached_row["wall_s"]),
        "bf16_effect": _bf16_effect(rows["cached float32"], rows["cached bfloat16"]),
    }


def _bf16_effect(float32: dict, bf16: dict) -> dict:
    """Test accuracy with float32 features and suffix against bf16 features and ``auto`` suffix precision."""
    first, second = float32["test_accuracy"], bf16["test_accuracy"]
    return {"float32_test_accuracy": first, "bfloat16_test_accuracy": second,
            "bfloat16_suffix_precision": bf16["suffix_precision"],
            "points": None if first is None or second is None else round(100 * (second - first), 1),
            "wall_s": {"float32": float32["wall_s"], "bfloat16": bf16["wall_s"]}}


def _targets(result: dict) -> dict:
    """The issue's targets, for VGG16 when it was measured, and the span path's 4x per suffix epoch."""
    targets = {}
    suffix = result.get("suffix")
    if suffix:
        speed = suffix["speedup_per_epoch"]
        targets["suffix_span_4x_per_epoch"] = {"measured": speed, "met": bool(speed and speed >= TARGET_SUFFIX)}
    entry = next((item for item in result["backbones"] if item["backbone"] == "vgg16"), None)
    if entry is None:
        return targets
    analysis = entry["analysis"]
    speedup = result["vgg16"]["speedup"]
    fraction = analysis["fraction_of_ceiling"]["bfloat16_run_wall"]
    gap = analysis["accuracy_gap_points_bf16_vs_naive"]
    return targets | {
        "speedup_15x": {"measured": speedup, "met": bool(speedup and speedup >= TARGET_SPEEDUP),
                        "cached_row": result["vgg16"]["cached"]["row"]},
        "accuracy_within_2_points": {"measured_gap": gap,
                                     "met": None if gap is None else gap <= TARGET_ACCURACY_POINTS},
        "extraction_half_of_bf16_ceiling": {"measured": fraction,
                                            "met": bool(fraction and fraction >= TARGET_CEILING_FRACTION)},
    }


# ---------------------------------------------------------------- the markdown table


def _number(value, digits=1, unit=""):
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def _accuracy(row) -> str:
    if row["test_accuracy"] is None:
        return "not measured"
    return f"{100 * row['test_accuracy']:.1f}% (n={row['test_n']})"


def markdown(result: dict) -> str:
    """The tables: naive vs cached, VGG16's suffix direct vs span, one row per (backbone, path), the cached path's
    steps, the ceiling, and what limits the targets."""
    machine, load = result["machine"], result["load_1min"]
    lines = [
        f"### Training benchmark, {result['date']}: {machine['cpu']}, {machine['logical_cores']} cores, "
        f"{'AVX-512' if machine['cpu_flags']['avx512f'] else 'AVX2'}, "
        f"bf16 native: {'yes' if machine['bf16_native'] else 'no'}, {machine['gpus']} GPU. Machine shared: 1-min "
        f"load average {load['mean']:.1f} mean ({load['min']:.1f}–{load['max']:.1f}) on {machine['logical_cores']} "
        "cores during the run, so wall times are noisy; CPU seconds are beside them.", "",
    ]
    lines += _headline_lines(result) + _suffix_lines(result.get("suffix"))
    if result["backbones"]:
        lines += _backbone_tables(result) + _step_lines(result)
    return "\n".join(lines)


def _headline_lines(result: dict) -> list:
    entries = [(entry["backbone"], result[entry["backbone"]]) for entry in result["backbones"]]
    if not entries:
        return []
    lines = ["| backbone | naive wall s | naive test accuracy | cached path (default here) | cached wall s "
             "| cached test accuracy | naive / cached |", "|---|---:|---:|---|---:|---:|---:|"]
    for name, summary in entries:
        naive, cached_row = summary["naive"], summary["cached"]
        naive_wall = f"≈{naive['wall_s']:,.0f} (extrapolated)" if naive["extrapolated"] else f"{naive['wall_s']:,.0f}"
        lines.append(f"| {name} | {naive_wall} | {_accuracy(naive)} | {cached_row['feature_dtype']} features, "
                     f"{cached_row['suffix_path']} suffix, {cached_row['suffix_precision']} | "
                     f"{cached_row['wall_s']:,.1f} | {_accuracy(cached_row)} | {_number(summary['speedup'], 2, '×')} |")
    lines.append("")
    for name, summary in entries:
        effect = summary["bf16_effect"]
        lines.append(f"- {name}, bf16's effect: test accuracy {_percent(effect['float32_test_accuracy'])} with "
                     f"float32 features and suffix, {_percent(effect['bfloat16_test_accuracy'])} with bf16 features "
                     f"and a {effect['bfloat16_suffix_precision']} suffix ({_number(effect['points'], 1)} points; "
                     f"{effect['wall_s']['float32']:,.0f} s vs {effect['wall_s']['bfloat16']:,.0f} s).")
    return lines + [""]


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _suffix_lines(suffix) -> list:
    if not suffix:
        return []
    return [
        f"VGG16's suffix alone ({suffix['shape']}, batch {suffix['batch_size']}, {suffix['optimizer']}, "
        f"{suffix['epochs']} epochs, {suffix['features']} features): direct {suffix['direct_s_per_epoch']:.2f} s/epoch, "
        f"span {suffix['span_s_per_epoch']:.2f} s/epoch ({_number(suffix['speedup_per_epoch'], 2, '×')}; best epochs "
        f"{_number(suffix['speedup_best_epoch'], 2, '×')}; CPU seconds of the whole suffix training, setup included, "
        f"{_number(suffix['speedup_cpu_s_total'], 2, '×')}); max "
        f"difference span vs direct: validation probability {suffix['max_probability_difference']:.2g}, training loss "
        f"{suffix['max_loss_difference']:.2g}, fc1 weight {suffix['fc1_max_difference']:.2g}"
        + _reference_text(suffix["round_off_reference"])
        + f". Span setup (X·W0, X·Xᵀ, validation rows) {suffix['span']['steps_s']['suffix_inputs']:.1f} s, "
        f"materialising W0 + XᵀA {suffix['span']['steps_s']['materialise']:.1f} s.", ""]


def _reference_text(reference) -> str:
    if not reference:
        return ""
    return (f" (direct vs direct with XLA {'on' if reference['xla'] else 'off'}, float32 round-off alone: "
            f"probability {reference['max_probability_difference']:.2g}, loss {reference['max_loss_difference']:.2g}, "
            f"fc1 {reference['fc1_max_difference']:.2g})")


def _step_lines(result: dict) -> list:
    """Where each cached run's wall time went, step by step."""
    rows = [(entry["backbone"], name, row) for entry in result["backbones"] for name, row in entry["rows"].items()
            if "steps_s" in row]
    names = list(dict.fromkeys(step for _, _, row in rows for step in row["steps_s"]))
    lines = ["", "| cached run: seconds per step | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for backbone, name, row in rows:
        lines.append(f"| {backbone} {name} ({row['suffix_path']}, {row['suffix_precision']}) | "
                     + " | ".join(_number(row["steps_s"].get(step), 2) for step in names) + " |")
    return lines


def _backbone_tables(result: dict) -> list:
    """One row per (backbone, path), the ratios, the ceiling and what limits the targets."""
    settings, counts = result["settings"], result["data"]
    lines = [
        f"{len(counts['classes'])} classes, {settings['image_size']} px, {counts['train']}/{counts['val']}/"
        f"{counts['test']} train/val/test images, batch {settings['batch_size']}, {settings['epochs']} epochs, "
        f"study policy, weights=None, seed {settings['seed']}.",
        "",
        f"| backbone | path | extract img/s | s/epoch | {settings['epochs']}-epoch wall s | CPU s "
        "| RSS MiB start→peak³ | load | test accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in result["backbones"]:
        for name, row in entry["rows"].items():
            resources = row["resources"]
            extract = (f"{row['stack_images_per_s']:.2f}¹" if row["extract_images_per_s"] is None
                       else f"{row['extract_images_per_s']:.2f}")
            wall = f"≈{row['wall_s']:,.0f} (extrapolated²)" if row["extrapolated"] else f"{row['wall_s']:,.0f}"
            lines.append(
                f"| {entry['backbone']} | {name} | {extract} | {row['seconds_per_epoch']:,.1f} | {wall} | "
                f"{resources['cpu_s']:,.0f} | {resources['rss_start_mib']:,.0f}→{resources['peak_rss_mib']:,.0f} | "
                f"{resources['load_1min_mean']:.1f} | "
                f"{_accuracy(row)} |")
    lines += ["", "| backbone | naive / cached fp32 | naive / cached bf16 | same in CPU-s⁴ | ideal (stack passes) "
              "| bound, free extraction⁵ | bf16 / fp32 extraction | epoch-1 val loss · acc: naive, fp32, bf16 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in result["backbones"]:
        analysis, rows = entry["analysis"], entry["rows"]
        epoch1 = ", ".join(_epoch1_cell(rows[key]) for key in ("naive", "cached float32", "cached bfloat16"))
        lines.append(
            f"| {entry['backbone']} | {_number(analysis['speedup_cached_float32'], 2, '×')} | "
            f"{_number(analysis['speedup_cached_bfloat16'], 2, '×')} | "
            f"{_number(analysis['speedup_cpu_seconds_float32'], 2, '×')} · "
            f"{_number(analysis['speedup_cpu_seconds_bfloat16'], 2, '×')} | "
            f"{_number(analysis['ideal_ratio_frozen_stack_passes'], 1, '×')} | "
            f"{_number(analysis['bound_with_free_extraction_bfloat16'], 1, '×')} | "
            f"{_number(analysis['extraction_bf16_over_float32'], 2, '×')} | {epoch1} |")
    best = result["ceiling"]["best"]
    lines += ["", "| kernel | GFLOP/s (wall) | GFLOP per CPU-s | fraction of the same-dtype matmul ceiling |",
              "|---|---:|---:|---:|"]
    for dtype in ("float32", "bfloat16"):
        ceiling = best[dtype]
        lines.append(f"| matmul {ceiling['size']}² {dtype} (best size, before/after) | {ceiling['gflops']:.1f} | "
                     f"{_number(ceiling['gflop_per_cpu_s'])} | 1 |")
    for entry in result["backbones"]:
        probe, fraction = entry["probe"], entry["analysis"]["fraction_of_ceiling"]
        gflops = entry["analysis"]["extraction_gflops_in_run"]
        for dtype in ("float32", "bfloat16"):
            lines.append(
                f"| {entry['backbone']} prefix {dtype}, {probe['gflop_per_image']:.2f} GFLOP/img: probe · in run | "
                f"{probe[dtype]['gflops']:.1f} · {gflops[dtype]:.1f} | {probe[dtype]['gflop_per_cpu_s']:.1f} | "
                f"{_number(fraction[f'{dtype}_probe_wall'], 2)} (probe) · {_number(fraction[f'{dtype}_run_wall'], 2)} "
                f"(run) · {_number(fraction[f'{dtype}_probe_per_cpu_s'], 2)} (per CPU-s) |")
    lines += ["", "¹ naive has no extraction step: images/s through the frozen stack inside `fit` (train + val).",
              f"² {next(note for note in result['notes'] if note.startswith('naive'))}.",
              "³ process RSS (sampled): TensorFlow's BFC allocator keeps its pool, so each row starts from what the "
              "rows before it reserved.",
              "⁴ naive/cached in CPU seconds (fp32 · bf16), less sensitive to the shared machine; for an "
              "extrapolated naive run, its timed phase's CPU/wall × its extrapolated wall.",
              "⁵ naive wall / (cached bf16 wall − its extraction): the ratio if extraction cost nothing."]
    return lines + ["", *_limits(result)]


def _limits(result: dict) -> list:
    """Plain sentences: the targets, met or not, and what limits them, from the measurements."""
    lines = []
    for entry in result["backbones"]:
        analysis = entry["analysis"]
        breakdown = analysis["cached_bfloat16_breakdown_s"]
        needed = analysis["extraction_speedup_needed_for_15x"]
        lines.append(
            f"- {entry['backbone']}: naive/cached bf16 {_number(analysis['speedup_cached_bfloat16'], 2, '×')}; "
            f"counting frozen-stack passes alone caps caching at {analysis['ideal_ratio_frozen_stack_passes']:.1f}× "
            f"({analysis['frozen_stack_passes']['naive']:,} vs {analysis['frozen_stack_passes']['cached']:,} images); "
            f"cached bf16 spent {breakdown['extraction']:,.0f} s extracting, {breakdown['training']:,.0f} s training, "
            f"{breakdown['other']:,.0f} s on the rest; bf16 extraction ran "
            f"{_number(analysis['extraction_bf16_over_float32'], 2, '×')} float32's; with training free it would be "
            f"{_number(analysis.get('bound_with_free_training_bfloat16'), 2, '×')}. "
            + (f"15× needs extraction {needed:.1f}× faster." if needed else
               f"15× is out of reach even with free extraction: the rest alone "
               f"({breakdown['training'] + breakdown['other']:,.0f} s) exceeds naive/15 "
               f"({analysis['target_wall_s_for_15x']:,.0f} s); free extraction gives at most "
               f"{_number(analysis['bound_with_free_extraction_bfloat16'], 1, '×')}."))
    targets = result.get("targets") or {}
    if targets:
        lines.append(
            f"- Targets (VGG16): 15× end-to-end {'met' if targets['speedup_15x']['met'] else 'NOT met'} "
            f"({_number(targets['speedup_15x']['measured'], 2, '×')}); accuracy within 2 points: "
            + ("not measured (naive extrapolated)" if targets['accuracy_within_2_points']['met'] is None else
               f"{'met' if targets['accuracy_within_2_points']['met'] else 'NOT met'} "
               f"({targets['accuracy_within_2_points']['measured_gap']} points)")
            + f"; extraction ≥ 50% of the bf16 matmul ceiling: "
            f"{'met' if targets['extraction_half_of_bf16_ceiling']['met'] else 'NOT met'} "
            f"({_number(targets['extraction_half_of_bf16_ceiling']['measured'], 2)}).")
    if not result["machine"]["bf16_native"]:
        lines.append("- This CPU has no AVX-512-BF16/AMX (no bf16 arithmetic units): bf16 is widened to float32 for "
                     "the arithmetic, so it cannot speed extraction here; on hardware with bf16 matrix units it would.")
    over = [entry["backbone"] for entry in result["backbones"]
            if (entry["analysis"]["fraction_of_ceiling"]["float32_probe_wall"] or 0) > 1]
    if over:
        lines.append(f"- {', '.join(over)} convolutions beat the float32 matmul 'ceiling': `tf.linalg.matmul` at these "
                     "sizes is not the machine's peak (compare GFLOP per CPU-s), so fractions above 1 mean the "
                     "extractor runs at least as close to the hardware as TensorFlow's own matmul does.")
    return lines


def _epoch1_cell(row) -> str:
    if row["val_accuracy_epoch1"] is None:
        return "—"
    return f"{row['val_loss_epoch1']:.3g} · {100 * row['val_accuracy_epoch1']:.1f}%"


# ---------------------------------------------------------------- command line


def _names(text):
    """None (not given), () for 'none', else the comma-separated names."""
    if text is None:
        return None
    return () if text.strip().lower() == "none" else tuple(name.strip() for name in text.split(",") if name.strip())


def parse_args(argv=None) -> tuple:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (64 px, 8/2/2 per class, 2 epochs)")
    parser.add_argument("--out", help=f"JSON to write (default {DEFAULT_OUT.relative_to(paths.PROJ_ROOT)}; "
                                      f"--quick: {QUICK_OUT.relative_to(paths.PROJ_ROOT)})")
    parser.add_argument("--naive-epochs", type=int, help="epochs the naive path really trains (default 1; "
                                                         ">= --epochs: measured, with test accuracy)")
    parser.add_argument("--naive-batches", type=int, help="training batches timed per naive epoch (default all)")
    parser.add_argument("--epochs", type=int, help="epochs of the run every wall time is for (default 10)")
    parser.add_argument("--backbones", help="comma-separated (default vgg16,resnet50)")
    parser.add_argument("--size", type=int, help="image side in pixels (default 224)")
    parser.add_argument("--counts", help="train,val,test images per class (default 200,25,25)")
    parser.add_argument("--probe-images", type=int, help="images per prefix-probe pass (default 32)")
    parser.add_argument("--measured-naive", help="comma-separated backbones whose naive path trains every epoch "
                                                 "(default vgg16; 'none': all timed and extrapolated)")
    parser.add_argument("--suffix-rows", type=int, help="VGG16 suffix direct vs span: training rows (default 1200; "
                                                        "0 skips it)")
    parser.add_argument("--suffix-epochs", type=int, help="... its epochs (default 3)")
    parser.add_argument("--suffix-size", type=int, help="... the image size setting fc1's inputs (default 224)")
    parser.add_argument("--suffix-scale", type=float, help="... scale of its random features (default 1)")
    parser.add_argument("--suffix-only", action="store_true", help="only the suffix comparison (and the ceiling)")
    parser.add_argument("--no-suffix-reference", action="store_true",
                        help="skip the suffix's round-off reference (the direct path again, XLA toggled)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    overrides = {"naive_epochs": args.naive_epochs, "naive_batches": args.naive_batches, "epochs": args.epochs,
                 "backbones": () if args.suffix_only else _names(args.backbones),
                 "measured_naive": _names(args.measured_naive), "suffix_rows": args.suffix_rows,
                 "suffix_epochs": args.suffix_epochs, "suffix_image_size": args.suffix_size,
                 "suffix_feature_scale": args.suffix_scale,
                 "suffix_reference": False if args.no_suffix_reference else None,
                 "image_size": args.size, "probe_images": args.probe_images}
    if args.counts:
        try:
            overrides["train"], overrides["val"], overrides["test"] = (int(value) for value in args.counts.split(","))
        except ValueError:
            raise UserError(f"--counts takes three integers, train,val,test per class, not {args.counts!r}") from None
    settings = dataclasses.replace(settings, **{key: value for key, value in overrides.items() if value is not None})
    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else DEFAULT_OUT)
    return settings, out


def check_settings(settings: Settings) -> None:
    """``UserError`` on settings that cannot be measured."""
    for name in ("epochs", "naive_epochs", "batch_size", "train", "val", "test", "matmul_reps", "probe_images",
                 "image_size"):
        if getattr(settings, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(settings, name)}")
    if not settings.matmul_sizes or min(settings.matmul_sizes) < 1:
        raise UserError(f"matmul_sizes must be positive sizes, got {settings.matmul_sizes}")
    if settings.naive_batches is not None and settings.naive_batches < 1:
        raise UserError(f"naive_batches must be at least 1, got {settings.naive_batches}")
    for backbone in (*settings.backbones, *settings.measured_naive):
        get_backbone(backbone)
    if settings.suffix_rows < 0 or (settings.suffix_rows and min(settings.suffix_val, settings.suffix_epochs) < 1):
        raise UserError("the suffix comparison needs suffix_rows >= 0 (0: skip), suffix_val and suffix_epochs >= 1")
    if settings.suffix_image_size < 32:
        raise UserError(f"suffix image size must be at least 32 px (VGG16's minimum), got {settings.suffix_image_size}")
    if not settings.backbones and not settings.suffix_rows:
        raise UserError("nothing to measure: no backbones and no suffix comparison")


def main(argv=None) -> int:
    settings, out = parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # a killed run still removes its temporary folder
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    check_settings(settings)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a .json file")
    result = run_benchmark(settings, out)
    print(f"\nwrote {out} ({result['total_wall_s']:.0f} s)\n")
    print(markdown(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
