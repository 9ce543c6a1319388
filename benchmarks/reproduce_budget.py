"""What `make reproduce` must compute, and how long this machine needs for it: FLOPs per step, measured rates.

Counts the arithmetic of the full configuration (every image through each frozen prefix once, as the shared feature
cache does; every training epoch of the trainable suffixes: forward + backward ~ 3x forward), measures this machine's
float32 matmul rate and the real suffix training speed of each backbone for a few batches, and prints the predicted
minutes next to the 25-minute target. Run: ``python benchmarks/reproduce_budget.py [--seeds 3] [--out FILE.json]``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy

from heroes import bench, paths
from heroes.config import SplitConfig
from heroes.modeling import build, surgery

TARGET_MINUTES = 25
BACKBONES = ("vgg16", "resnet50")


def workload(seeds: int, epochs: int, split: SplitConfig = SplitConfig()) -> dict:
    """Images each notebook trains on, per backbone: notebook 02 (2 classes, one seed), 03 + 04 (6 classes, every
    seed; 04 reuses 03's first-seed VGG16 run), and the images that pass each frozen prefix once."""
    per_class = {"train": split.train, "val": split.val, "test": split.test}
    binary = {name: 2 * count for name, count in per_class.items()}
    six = {name: 6 * count for name, count in per_class.items()}
    runs = [("02", binary)] + [("04", six)] * seeds
    return {"runs": runs, "epochs": epochs, "extracted": 6 * sum(per_class.values())}


def run_flops(sizes: dict, epochs: int, suffix_gflop: float) -> float:
    """GFLOP of one training run on cached features: train steps 3x forward, validation each epoch, one test pass."""
    return epochs * (3 * sizes["train"] + sizes["val"]) * suffix_gflop + sizes["test"] * suffix_gflop


def measured_suffix_seconds_per_image(suffix, batches: int = 6, batch_size: int = 16) -> float:
    """Wall seconds per training image of ``suffix`` under the study's SGD (with XLA, as ``train`` runs it on one
    device), after one warm-up batch."""
    import keras

    shape = suffix.input_shape[1:]
    rng = numpy.random.default_rng(0)
    inputs = rng.standard_normal((batch_size * batches, *shape)).astype("float32")
    labels = rng.integers(0, suffix.output_shape[-1], len(inputs))
    suffix.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9), loss="sparse_categorical_crossentropy",
                   jit_compile=True)
    suffix.fit(inputs[:batch_size], labels[:batch_size], batch_size=batch_size, verbose=0, shuffle=False)
    start = time.perf_counter()
    suffix.fit(inputs, labels, batch_size=batch_size, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / len(inputs)


def budget(seeds: int = 3, epochs: int = 10, image_size: int = 224, measure: bool = True) -> dict:
    script = bench.load_benchmark()
    plan, rows = workload(seeds, epochs), []
    ceiling = script.matmul_ceiling(2048, 3, "float32")["gflops"] if measure else None
    for name in BACKBONES:
        model = build.build_model(name, num_classes=6, image_size=image_size, weights=None, policy="study")
        prefix, suffix = surgery.split_at_first_trainable(model)
        prefix_gflop, suffix_gflop = script.prefix_flops(prefix) / 1e9, script.prefix_flops(suffix) / 1e9
        extraction = plan["extracted"] * prefix_gflop
        training = sum(run_flops(sizes, epochs, suffix_gflop) for _, sizes in plan["runs"])
        train_images = sum(epochs * sizes["train"] for _, sizes in plan["runs"])
        per_image = measured_suffix_seconds_per_image(suffix) if measure else None
        rows.append({
            "backbone": name, "prefix_gflop_per_image": round(prefix_gflop, 3),
            "suffix_gflop_per_image": round(suffix_gflop, 3), "extraction_tflop": round(extraction / 1e3, 1),
            "training_tflop": round(training / 1e3, 1), "training_images": train_images,
            "suffix_s_per_train_image": None if per_image is None else round(per_image, 4),
            "training_minutes_at_measured_speed": None if per_image is None else round(per_image * train_images / 60, 1),
        })
    total_tflop = sum(row["extraction_tflop"] + row["training_tflop"] for row in rows)
    return {
        "seeds": seeds, "epochs": epochs, "image_size": image_size, "matmul_gflops_float32": ceiling,
        "backbones": rows, "total_tflop": round(total_tflop, 1),
        "minutes_at_matmul_rate": None if not ceiling else round(total_tflop * 1e3 / ceiling / 60, 1),
        "gflops_needed_for_target": round(total_tflop * 1e3 / (TARGET_MINUTES * 60), 1),
    }


def markdown(result: dict) -> str:
    lines = [f"`make reproduce` budget: {result['seeds']} seeds, {result['epochs']} epochs, {result['image_size']} px "
             "(frozen features extracted once per image and backbone)", "",
             "| backbone | prefix GFLOP/img | suffix GFLOP/img | extraction TFLOP | suffix training TFLOP "
             "| measured suffix s/train img | suffix training min |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["backbones"]:
        lines.append(f"| {row['backbone']} | {row['prefix_gflop_per_image']:.2f} | {row['suffix_gflop_per_image']:.3f} "
                     f"| {row['extraction_tflop']:.1f} | {row['training_tflop']:.1f} | "
                     f"{row['suffix_s_per_train_image'] or '—'} | {row['training_minutes_at_measured_speed'] or '—'} |")
    lines += ["", f"Total {result['total_tflop']:.0f} TFLOP. "
              + (f"At this machine's float32 matmul rate ({result['matmul_gflops_float32']:.0f} GFLOP/s) that is at "
                 f"least {result['minutes_at_matmul_rate']:.0f} min; " if result["matmul_gflops_float32"] else "")
              + f"{TARGET_MINUTES} min needs {result['gflops_needed_for_target']:.0f} GFLOP/s sustained."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default=str(paths.REPORTS / "benchmarks" / "reproduce-budget.json"))
    args = parser.parse_args(argv)
    result = budget(args.seeds, args.epochs, args.size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
