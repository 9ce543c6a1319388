"""Frozen-prefix throughput in float32 vs mixed_bfloat16, the features' relative difference, and cache sizes.

    .venv/bin/python benchmarks/feature_benchmark.py --backbone vgg16 --size 224 --images 32 [--out FILE.json]
    .venv/bin/python benchmarks/feature_benchmark.py --backbone efficientnet_lite0 --weights imagenet --policy linear_probe

Random weights (``weights=None``, the default) cost the same to run as ImageNet ones; images are random 0-255
pixels. The prefix is what the policy freezes (``study`` by default).
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("HEROES_OFFLINE", "1")

import keras  # noqa: E402
import numpy  # noqa: E402

from heroes import machine  # noqa: E402
from heroes.io import write_json  # noqa: E402
from heroes.models import build, surgery  # noqa: E402
from heroes.training.cached import features  # noqa: E402


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(prefix, images, batch_size) -> tuple:
    """(wall seconds, CPU seconds, outputs as float32) of one pass of the prefix over ``images``."""
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    outputs = [numpy.asarray(prefix.predict_on_batch(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return time.perf_counter() - start, _cpu_seconds() - cpu_start, numpy.concatenate(outputs).astype("float32")


def measure(backbone, size, count, batch_size, rounds, weights=None, policy="study") -> dict:
    """Alternate float32 and bf16 passes ``rounds`` times; the fastest pass of each counts (the CPU is shared)."""
    keras.utils.set_random_seed(0)
    model = build.build_model(backbone, 6, size, weights=weights, policy=policy)
    prefix, _ = surgery.split_at_first_trainable(model)
    variants = {"float32": prefix, "bfloat16": features.bfloat16_prefix(prefix)}
    images = numpy.random.default_rng(0).uniform(0, 255, (count, size, size, 3)).astype("float32")
    seconds, cpu, outputs = {name: [] for name in variants}, {name: [] for name in variants}, {}
    for name, extractor in variants.items():
        extractor.predict_on_batch(images[:batch_size])  # trace and warm up
    for _ in range(rounds):
        for name, extractor in variants.items():
            elapsed, cpu_elapsed, outputs[name] = _timed(extractor, images, batch_size)
            seconds[name].append(elapsed)
            cpu[name].append(cpu_elapsed)
    speed = {name: count / min(values) for name, values in seconds.items()}
    values = int(numpy.prod(prefix.output_shape[1:]))
    difference = numpy.linalg.norm(outputs["bfloat16"] - outputs["float32"]) / numpy.linalg.norm(outputs["float32"])
    return {
        "backbone": backbone, "weights": weights, "policy": policy, "image_size": size, "images": count,
        "batch_size": batch_size, "rounds": rounds,
        "cut": prefix.layers[-1].name, "feature_values": values,
        "float32_images_per_s": round(speed["float32"], 2), "bfloat16_images_per_s": round(speed["bfloat16"], 2),
        "speedup": round(speed["bfloat16"] / speed["float32"], 2),
        "seconds_per_pass": {name: [round(value, 2) for value in values] for name, values in seconds.items()},
        # CPU time is what contention on a shared machine distorts least.
        "cpu_seconds_per_image": {name: round(min(values) / count, 3) for name, values in cpu.items()},
        "tf_cpu_allocator_use_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", ""),
        "relative_difference": float(difference),
        "kib_per_image_float32": values * 4 / 1024, "kib_per_image_bfloat16": values * 2 / 1024,
        "bf16_native": machine.bf16_is_fast(), "machine": machine.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--weights", help="None (default), imagenet, auto or a file")
    parser.add_argument("--policy", default="study", help="what stays frozen: study (default) or linear_probe")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    result = measure(args.backbone, args.size, args.images, args.batch_size, args.rounds, args.weights, args.policy)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
