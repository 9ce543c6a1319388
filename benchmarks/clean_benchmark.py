"""Time ``heroes.cleaning.flags`` on 1,500 and 20,000 images, and measure the near-duplicate threshold on dirty sets.

How the images are made (say it when quoting the figures):

* 1,500: the embedded set, 250 per class at 224 px with ``--dirt`` (1,500 clean
  drawings + 234 injected defects + 50 probes = 1,784 files).
* 20,000: those 1,784 files plus 18,216 mosaics, each a 224 px JPEG whose four
  112 px quadrants come from four random clean drawings (randomly mirrored). They
  are new pictures for the hashes, but made from a pool of 1,200, not drawn anew.

``--thresholds`` draws four dirty sets (seeds and sizes below), fingerprints them
and prints recall of the injected copies and false matches per threshold: the
measurement behind ``heroes.cleaning.flags.NEAR_THRESHOLD``.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy
import pandas
from PIL import Image

from heroes.cleaning import flags
from heroes.cleaning.truth import read_truth, threshold_table
from heroes.config import CLASSES
from heroes.data import scan
from heroes.data.synthetic import dataset

THRESHOLD_SETS = ((0, 224, 250), (1, 128, 120), (2, 224, 250), (0, 96, 40))  # (seed, size, per class)


def draw_dirty(root: Path, per_class: int, size: int, seed: int) -> tuple:
    """The embedded set with defects; returns (images folder, truth path)."""
    images, truth = root / f"set-{seed}-{size}-{per_class}", root / f"truth-{seed}-{size}-{per_class}.csv"
    dataset.write_dataset(images, per_class=per_class, size=size, seed=seed, dirt=True, truth_path=truth,
                            progress=False)
    return images, truth


def add_mosaics(images: Path, count: int, seed: int = 0) -> None:
    """Write ``count`` 224 px mosaics of four clean drawings each, spread over the class folders."""
    rng = numpy.random.default_rng(seed)
    # Images 0000-0199 of each class are clean drawings (defects are numbered from per_class on).
    sources = sorted(path for label in CLASSES for path in (images / label).glob(f"{label}_0[01]*"))
    quadrants = [numpy.asarray(Image.open(path).convert("RGB").resize((112, 112), Image.Resampling.BOX))
                 for path in sources]
    for index in range(count):
        picks = [quadrants[k] for k in rng.integers(0, len(quadrants), 4)]
        picks = [tile[:, ::-1] if flip else tile for tile, flip in zip(picks, rng.random(4) < 0.5)]
        mosaic = numpy.concatenate([numpy.concatenate(picks[:2], axis=1), numpy.concatenate(picks[2:], axis=1)])
        label = CLASSES[index % len(CLASSES)]
        Image.fromarray(numpy.ascontiguousarray(mosaic)).save(images / label / f"mosaic_{index:05d}.jpg", quality=85)


def time_clean(images: Path) -> dict:
    """Scan, then clean (no outlier step); seconds of each and what was flagged."""
    start = time.perf_counter()
    manifest = scan.scan(images, progress=False)
    scanned = time.perf_counter()
    result = flags.clean(manifest, progress=False)
    done = time.perf_counter()
    return {"files": len(manifest), "scan_s": scanned - start, "clean_s": done - scanned,
            "flags": result.flags["flag"].value_counts().to_dict(),
            "actions": result.flags["action"].value_counts().to_dict()}


def timings(sizes) -> None:
    with tempfile.TemporaryDirectory(prefix="clean-bench-") as folder:
        print("drawing the dirty embedded set (250 per class, 224 px)...", flush=True)
        images, _ = draw_dirty(Path(folder), 250, 224, 0)
        for size in sorted(sizes):
            extra = size - sum(1 for path in images.rglob("*") if path.is_file() and "mosaic" not in path.name)
            if extra > 0:
                print(f"adding {extra} mosaics...", flush=True)
                add_mosaics(images, extra)
            figures = time_clean(images)
            print(f"{size:>6} requested, {figures['files']:>6} files: scan {figures['scan_s']:6.1f} s, "
                  f"clean {figures['clean_s']:6.1f} s ({figures['files'] / figures['clean_s']:.0f} files/s)")
            print(f"        flags {figures['flags']}; actions {figures['actions']}", flush=True)


def thresholds(values) -> None:
    tables = []
    with tempfile.TemporaryDirectory(prefix="clean-thresholds-") as folder:
        for seed, size, per_class in THRESHOLD_SETS:
            images, truth_path = draw_dirty(Path(folder), per_class, size, seed)
            usable, _ = flags.usable_rows(scan.scan(images, progress=False), progress=False)
            table = threshold_table(usable, read_truth(truth_path), values)
            print(f"\nseed {seed}, {size} px, {per_class} per class: {table.attrs}")
            print(table.to_string(index=False), flush=True)
            tables.append(table.assign(near=table.attrs["near_duplicates"], copies=table.attrs["copies"],
                                       clean=table.attrs["clean_images"]))
    pooled = pandas.concat(tables)
    pooled["near_found"] = pooled["near_duplicate_recall"] * pooled["near"]
    pooled["copies_found"] = pooled["all_copies_recall"] * pooled["copies"]
    summary = pooled.groupby("threshold").sum(numeric_only=True)
    summary = pandas.DataFrame({
        "near_duplicate_recall": summary["near_found"] / summary["near"],
        "all_copies_recall": summary["copies_found"] / summary["copies"],
        "false_pairs": summary["false_pairs"],
        "clean_images_in_false_pairs": summary["clean_images_in_false_pairs"],
        "of_clean_images": summary["clean"],
    })
    print("\npooled over the four sets:")
    print(summary.round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 20000], help="file counts to time")
    parser.add_argument("--thresholds", action="store_true", help="measure the near-duplicate threshold instead")
    args = parser.parse_args()
    if args.thresholds:
        thresholds(range(60, 121, 4))
    else:
        timings(args.sizes)


if __name__ == "__main__":
    main()
