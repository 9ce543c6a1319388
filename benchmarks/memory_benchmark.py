"""Resident memory across sequential training runs in one process: it must level off, not grow per run.

    .venv/bin/python benchmarks/memory_benchmark.py [--runs 5] [--backbone vgg16] [--size 64] [--images 48]
                                                     [--end-to-end] [--out FILE.json]

Each run trains on small coloured images (random weights), writes its run directory into a temporary folder
and is dropped; RSS is read after each run. ``heroes.training.train.train_run`` clears the Keras session first.
"""

import argparse
import gc
import hashlib
import json
import os
import tempfile
import time

os.environ.setdefault("HEROES_OFFLINE", "1")

import numpy  # noqa: E402
import psutil  # noqa: E402

from heroes.config import TrainConfig  # noqa: E402
from heroes.data.arrays import ImageSet  # noqa: E402
from heroes.training.train import train_run  # noqa: E402


def coloured_set(count, size, seed, class_names=("batman", "not_a_hero")) -> ImageSet:
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(count) % len(class_names)
    colours = numpy.array([[200, 40, 40], [40, 40, 200]])[labels]
    images = numpy.clip(colours[:, None, None, :] + rng.normal(0, 40, (count, size, size, 3)), 0, 255).astype("uint8")
    sha256 = tuple(hashlib.sha256(image.tobytes()).hexdigest() for image in images)
    paths = tuple(f"synthetic/{seed}-{index}.png" for index in range(count))
    return ImageSet(images, labels.astype("int64"), paths, sha256, tuple(class_names))


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--end-to-end", action="store_true", help="train the whole model instead of cached features")
    parser.add_argument("--without-release", action="store_true",
                        help="skip heroes.training.train.release_optimizer_graphs, to see the leak it prevents")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args()
    if args.without_release:
        import heroes.train

        heroes.train.release_optimizer_graphs = lambda: 0
    sets = {"train": coloured_set(args.images, args.size, 1), "val": coloured_set(16, args.size, 2),
            "test": coloured_set(16, args.size, 3)}
    rows = [{"run": 0, "rss_mib": round(rss_mib(), 1), "seconds": 0.0}]
    with tempfile.TemporaryDirectory() as folder:
        for index in range(1, args.runs + 1):
            start = time.perf_counter()
            config = TrainConfig(backbone=args.backbone, image_size=args.size, weights=None, epochs=args.epochs,
                                 seed=index)
            result = train_run(config, sets, run_dir=f"{folder}/run{index}", use_cache=not args.end_to_end,
                               cache_dir=f"{folder}/features", progress=False)
            del result
            gc.collect()
            rows.append({"run": index, "rss_mib": round(rss_mib(), 1), "seconds": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    growth = [later["rss_mib"] - earlier["rss_mib"] for earlier, later in zip(rows[1:], rows[2:])]
    summary = {"backbone": args.backbone, "image_size": args.size, "images": args.images, "epochs": args.epochs,
               "path": "end-to-end" if args.end_to_end else "cached-features",
               "release_optimizer_graphs": not args.without_release, "rows": rows,
               "growth_after_first_run_mib": growth}
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
