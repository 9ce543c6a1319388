"""What `make reproduce` must compute, and how long this machine needs for it: FLOPs per step, measured rates.

Counts the arithmetic of the full configuration (every image through each frozen prefix once, as the shared feature
cache does; every training epoch of the trainable suffixes: forward + backward ~ 3x forward; VGG16's fc1 on the span
path: X·W0, X·Xᵀ and W0 + XᵀA once per run, then only n-wide kernel rows per image), measures this machine's float32
matmul rate and the real suffix training speed of each backbone (``heroes.training.train.fit_suffix``: the path,
precision and XLA choice a run makes here), and prints the FLOP floor (minutes at the matmul rate: float32, and
bf16 where the CPU has native bf16) beside the 25-minute target and beside the measured notebook times of the last
``make reproduce`` (``reports/metrics/reproduce.json``), if there is one.
Run: ``python benchmarks/reproduce_budget.py [--seeds 3] [--out FILE.json] [--measured FILE.json]``.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy

from heroes import machine, paths
from heroes.benchmarking import probes
from heroes.config import SplitConfig, TrainConfig
from heroes.training.cached import span
from heroes.models import surgery
from heroes.training import train
from heroes.training.cached import suffix_fit
from heroes.training import spec
from heroes.reporting import run_card

TARGET_MINUTES = 25
BACKBONES = ("vgg16", "resnet50", "efficientnet_lite0")  # the backbones notebooks 02 and 04 train
MEASURED = paths.REPORTS / "metrics" / "reproduce.json"


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


def span_run_flops(sizes: dict, epochs: int, suffix_gflop: float, fc1_shape: tuple) -> float:
    """GFLOP of one run whose fc1 (d x u) trains on the span path over n = train rows: X·W0, X·Xᵀ, the validation
    rows' x·W0 and x·Xᵀ and W0 + XᵀA once; per image the n-wide kernel row times A (forward only: its gradient is a
    scatter) and the rest of the suffix (3x forward for training); one test pass of the materialised suffix."""
    d, u = fc1_shape
    n = sizes["train"]
    rest = suffix_gflop - 2 * d * u / 1e9
    product = 2 * n * u / 1e9
    once = (2 * n * d * u + 2 * n * n * d + 2 * sizes["val"] * d * (u + n) + 2 * d * n * u) / 1e9
    per_epoch = sizes["train"] * (3 * rest + product) + sizes["val"] * (rest + product)
    return once + epochs * per_epoch + sizes["test"] * suffix_gflop


def measured_suffix_seconds_per_image(suffix, config, rows: int, epochs: int = 2) -> float:
    """Wall seconds per training image of ``suffix`` as a run trains it here (``suffix_fit.fit_suffix``: span path,
    precision and XLA as chosen for this machine), on ``rows`` random ReLU-like features, after the first epoch
    (which also traces)."""
    rng = numpy.random.default_rng(0)
    inputs = 0.1 * numpy.maximum(rng.standard_normal((rows, *suffix.input_shape[1:]), dtype="float32"), 0)
    labels = rng.integers(0, suffix.output_shape[-1], rows)
    config = dataclasses.replace(config, epochs=epochs)
    outcome = suffix_fit.fit_suffix(suffix, config, lambda indices, views: inputs[indices], labels,
                               (inputs[: config.batch_size], labels[: config.batch_size]))
    return float(outcome["history"]["seconds"].iloc[-1]) / rows


def measured_minutes(path=MEASURED) -> dict | None:
    """Wall minutes per notebook and in total of the ``make reproduce`` that wrote ``path`` (None: no such file)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return {"finished": record.get("finished"), "parameters": record.get("parameters"),
            "notebooks": {item["name"]: round(item["seconds"] / 60, 1) for item in record.get("notebooks", [])},
            "total": round(record.get("total_s", 0) / 60, 1)}


def budget(seeds: int = 3, epochs: int = 10, image_size: int = 224, measure: bool = True, measured=MEASURED) -> dict:
    plan, rows = workload(seeds, epochs), []
    ceiling = probes.matmul_ceiling(2048, 3, "float32")["gflops"] if measure else None
    bf16_native = machine.bf16_is_fast()
    # bf16 runs extraction and conv suffixes where the CPU has it natively; elsewhere it is emulated, no floor to quote
    ceiling_bf16 = probes.matmul_ceiling(2048, 3, "bfloat16")["gflops"] if measure and bf16_native else None
    for name in BACKBONES:
        config = spec.final_config(TrainConfig(backbone=name, image_size=image_size, weights=None, epochs=epochs))
        model, _ = train.build_run_model(config, 6)
        prefix, suffix = surgery.split_at_first_trainable(model)
        prefix_gflop, suffix_gflop = probes.prefix_flops(prefix) / 1e9, probes.prefix_flops(suffix) / 1e9
        extraction = plan["extracted"] * prefix_gflop
        largest = max(sizes["train"] for _, sizes in plan["runs"])
        path = span.choose_path(suffix, config, largest)[0]
        fc1 = tuple(span.span_dense(suffix)[0].kernel.shape) if path == "span" else None
        training = sum(span_run_flops(sizes, epochs, suffix_gflop, fc1) if fc1 else run_flops(sizes, epochs, suffix_gflop)
                       for _, sizes in plan["runs"])
        train_images = sum(epochs * sizes["train"] for _, sizes in plan["runs"])
        # the span path's cost per image grows with its rows: measure it at the study's; a conv suffix's does not
        per_image = measured_suffix_seconds_per_image(suffix, config, largest if path == "span" else 96) \
            if measure else None
        rows.append({
            "backbone": name, "suffix_path": path, "prefix_gflop_per_image": round(prefix_gflop, 3),
            "suffix_gflop_per_image": round(suffix_gflop, 3), "extraction_tflop": round(extraction / 1e3, 1),
            "training_tflop": round(training / 1e3, 1), "training_images": train_images,
            "suffix_s_per_train_image": None if per_image is None else round(per_image, 4),
            "training_minutes_at_measured_speed": None if per_image is None else round(per_image * train_images / 60, 1),
        })
    total_tflop = sum(row["extraction_tflop"] + row["training_tflop"] for row in rows)
    return {
        "seeds": seeds, "epochs": epochs, "image_size": image_size, "git": run_card.git_state(),
        "machine": machine.describe(),
        "bf16_native": bf16_native, "matmul_gflops_float32": ceiling, "matmul_gflops_bfloat16": ceiling_bf16,
        "backbones": rows, "total_tflop": round(total_tflop, 1),
        "minutes_at_matmul_rate": None if not ceiling else round(total_tflop * 1e3 / ceiling / 60, 1),
        "minutes_at_bf16_matmul_rate": None if not ceiling_bf16 else round(total_tflop * 1e3 / ceiling_bf16 / 60, 1),
        "gflops_needed_for_target": round(total_tflop * 1e3 / (TARGET_MINUTES * 60), 1),
        "measured_minutes": measured_minutes(measured) if measured else None,
    }


def markdown(result: dict) -> str:
    lines = [f"`make reproduce` budget: {result['seeds']} seeds, {result['epochs']} epochs, {result['image_size']} px "
             "(frozen features extracted once per image and backbone)", "",
             "| backbone | suffix path | prefix GFLOP/img | suffix GFLOP/img | extraction TFLOP | suffix training TFLOP "
             "| measured suffix s/train img | suffix training min |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["backbones"]:
        lines.append(f"| {row['backbone']} | {row['suffix_path']} | {row['prefix_gflop_per_image']:.2f} | "
                     f"{row['suffix_gflop_per_image']:.3f} "
                     f"| {row['extraction_tflop']:.1f} | {row['training_tflop']:.1f} | "
                     f"{row['suffix_s_per_train_image'] or '—'} | {row['training_minutes_at_measured_speed'] or '—'} |")
    lines += ["", f"Total {result['total_tflop']:.0f} TFLOP. "
              + (f"At this machine's float32 matmul rate ({result['matmul_gflops_float32']:.0f} GFLOP/s) that is at "
                 f"least {result['minutes_at_matmul_rate']:.0f} min; " if result["matmul_gflops_float32"] else "")
              + (f"at the bf16 rate ({result['matmul_gflops_bfloat16']:.0f} GFLOP/s) at least "
                 f"{result['minutes_at_bf16_matmul_rate']:.0f} min; " if result.get("matmul_gflops_bfloat16") else "")
              + f"{TARGET_MINUTES} min needs {result['gflops_needed_for_target']:.0f} GFLOP/s sustained."]
    measured = result.get("measured_minutes")
    if measured:
        lines += ["", f"Measured `make reproduce` (finished {measured['finished']}, parameters "
                  f"{measured['parameters'] or 'full configuration'}): {measured['total']:.1f} min in all; "
                  + ", ".join(f"{name} {minutes:.1f}" for name, minutes in measured["notebooks"].items()) + "."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default=str(paths.REPORTS / "benchmarks" / "reproduce-budget.json"))
    parser.add_argument("--measured", default=str(MEASURED), help="reproduce.json of the run to set beside the floor")
    args = parser.parse_args(argv)
    result = budget(args.seeds, args.epochs, args.size, measured=args.measured)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
