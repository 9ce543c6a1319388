"""The machine and its limits: its record, the matmul ceilings, a prefix's FLOPs and the float32/bf16 prefix probe."""

import math
import os
import platform
import time

import keras
import numpy
import psutil

from heroes import machine
from heroes.benchmarking.clocks import cpu_seconds
from heroes.models import surgery
from heroes.training import train
from heroes.training.cached import features


def machine_record() -> dict:
    """``heroes.machine.describe()`` and what readers of the benchmark's JSON also read: CPU family and model number,
    memory, library versions, TensorFlow's allocator and threads; ``gpus`` a count (``gpu_names`` the names)."""
    import tensorflow

    described = machine.describe()
    return {
        **described, "gpus": len(described["gpus"]), "gpu_names": described["gpus"],
        "cpu_family": machine.cpuinfo_field("cpu family"), "cpu_model_number": machine.cpuinfo_field("model"),
        "logical_cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "tensorflow": tensorflow.__version__, "keras": keras.__version__, "python": platform.python_version(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "tf_cpu_allocator_use_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", ""),
        "intra_op_threads": tensorflow.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
    }


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
        wall, cpu = time.perf_counter(), cpu_seconds()
        product(left, right).numpy()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return {
        "dtype": dtype, "size": size, "reps": reps, "gflop_per_rep": flops / 1e9,
        "gflops": round(flops / min(walls) / 1e9, 2),
        "gflops_median": round(flops / float(numpy.median(walls)) / 1e9, 2),
        "gflop_per_cpu_s": round(flops / min(cpus) / 1e9, 2) if min(cpus) > 0 else None,
        "seconds": [round(value, 3) for value in walls],
    }


def matmul_ceilings(settings) -> dict:
    """{dtype: [one ``matmul_ceiling`` per size]} for float32 and bfloat16, sizes and repeats from ``settings``."""
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


def _timed_passes(extractor, images, batch_size) -> tuple:
    wall, cpu = time.perf_counter(), cpu_seconds()
    for start in range(0, len(images), batch_size):
        features.run_prefix(extractor, images[start : start + batch_size])
    return time.perf_counter() - wall, cpu_seconds() - cpu


def prefix_probe(config, num_classes, images, batch_size) -> dict:
    """The frozen prefix alone, float32 then bf16 then float32 then bf16 (best pass counts), on the same images."""
    model = train.build_run_model(config, num_classes)[0]  # as train_run builds it: session, seed, weights, scope
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
