"""Real photographs, side by side on the same splits: majority class, linear probe, the study recipe, the default
recipe and a plain Keras fine-tune written as the keras.io transfer-learning guide writes it.

    python benchmarks/real_photos.py DATA_DIR [--seeds 0 1 2] [--out reports/benchmarks/real-photos-dev.json]

Each (method, seed) runs in a fresh process, so its wall time and peak memory are its own; every heroes method
runs `heroes train` whole (scan, clean, split, decode, train, report) with an empty cache, as a user's first run.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("majority", "linear_probe", "study", "default", "keras_reference")
DESCRIPTIONS = {
    "majority": "majority class of the training split",
    "linear_probe": "heroes train --recipe study --policy linear_probe (the output layer on cached features)",
    "study": "heroes train --recipe study (the previous default: last stage + head conv, SGD 0.001, 10 epochs)",
    "default": "heroes train (recipe fine_tune: the new default)",
    "keras_reference": "keras.io guide: frozen base + new head 10 epochs (Adam), then all unfrozen 10 epochs at "
                       "1e-4, RandomFlip + RandomRotation(0.1) layers in the model, same EfficientNet-Lite0 weights",
}
KERAS_EPOCHS = (10, 10)  # head, then unfrozen


def _scores(labels, predicted, class_names) -> dict:
    from sklearn import metrics

    from heroes.evaluation.stats import clopper_pearson

    correct = int((labels == predicted).sum())
    low, high = clopper_pearson(correct, len(labels))
    recall = metrics.recall_score(labels, predicted, labels=range(len(class_names)), average=None, zero_division=0)
    return {"test_n": len(labels), "test_correct": correct, "accuracy": correct / len(labels),
            "accuracy_ci95": [low, high],
            "macro_f1": float(metrics.f1_score(labels, predicted, average="macro", zero_division=0)),
            "per_class_recall": dict(zip(class_names, map(float, recall)))}


def _heroes_run(data_dir, seed, recipe, policy, work: Path) -> dict:
    import numpy

    from heroes.training.folder import train_folder
    from heroes.training.spec import TrainSpec

    spec = TrainSpec(str(data_dir), recipe=recipe, policy=policy, seed=seed, cache_dir=str(work / "cache"))
    outcome = train_folder(spec.resolve(), work / "run", progress=False)
    predictions, names = outcome["predictions"], list(outcome["metrics"]["class_names"])
    index = {name: position for position, name in enumerate(names)}
    labels = numpy.array([index[label] for label in predictions["label"]])
    predicted = numpy.array([index[label] for label in predictions["predicted"]])
    return _scores(labels, predicted, names) | {"test_paths": sorted(predictions["path"])}


def _majority(data_dir, seed, work: Path) -> dict:
    import numpy

    from heroes.training.folder import prepare

    sets = prepare(data_dir, seed=seed, cache_dir=work / "cache", progress=False)["sets"]
    majority = numpy.bincount(sets["train"].labels).argmax()
    test = sets["test"]
    return _scores(test.labels, numpy.full(len(test), majority), list(test.class_names)) | {
        "test_paths": sorted(test.paths)}


def keras_reference_model(class_count: int, size: int):
    """(model, base) as the keras.io guide builds them: augmentation layers, rescaling, the frozen base called with
    training=False (its BatchNorm stays in inference mode when unfrozen), pooling, dropout 0.2, a new Dense."""
    import keras

    from heroes.models.efficientnet_lite import build_efficientnet_lite0, load_imagenet_weights

    base = build_efficientnet_lite0(input_shape=(size, size, 3))
    load_imagenet_weights(base)
    base.trainable = False
    inputs = keras.Input(shape=(size, size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.1)(x)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)  # the preprocessing these weights were trained with
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(class_count, activation="softmax")(x)
    return keras.Model(inputs, outputs), base


def _keras_reference(data_dir, seed, work: Path) -> dict:
    import keras
    import numpy

    from heroes.training.folder import prepare

    sets = prepare(data_dir, seed=seed, cache_dir=work / "cache", progress=False)["sets"]
    keras.utils.set_random_seed(seed)
    train, val, test = sets["train"], sets["val"], sets["test"]
    model, base = keras_reference_model(len(train.class_names), train.images.shape[1])
    data = {"x": numpy.asarray(train.images, "float32"), "y": train.labels, "batch_size": 32, "verbose": 0,
            "validation_data": (numpy.asarray(val.images, "float32"), val.labels)}
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(epochs=KERAS_EPOCHS[0], **data)
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(epochs=KERAS_EPOCHS[1], **data)
    predicted = model.predict(numpy.asarray(test.images, "float32"), batch_size=32, verbose=0).argmax(1)
    return _scores(test.labels, predicted, list(test.class_names)) | {"test_paths": sorted(test.paths)}


def time_thousand(seed: int = 0) -> dict:
    """`heroes train` (default recipe) on 1,002 drawn 224 px images (167 per class): the time a 1,000-photo folder
    takes; drawn pictures stand in because there are not 1,000 real ones here (accuracy on them means little)."""
    from heroes.data.synthetic import dataset

    with tempfile.TemporaryDirectory(prefix="thousand-") as work:
        work = Path(work)
        dataset.write_dataset(work / "drawn", per_class=167, size=224, seed=seed, progress=False)
        shutil.rmtree(work / "drawn" / "probes", ignore_errors=True)
        start = time.perf_counter()
        result = _heroes_run(work / "drawn", seed, "fine_tune", None, work)
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images": 1002, "wall_s": wall, "peak_rss_mb": peak, "accuracy": result["accuracy"],
            "test_n": result["test_n"]}


def run_one(method: str, data_dir: str, seed: int) -> dict:
    """One (method, seed) in this process: scores, wall seconds and peak resident memory."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="real-photos-") as work:
        work = Path(work)
        if method == "majority":
            result = _majority(data_dir, seed, work)
        elif method == "keras_reference":
            result = _keras_reference(data_dir, seed, work)
        else:
            recipe, policy = {"linear_probe": ("study", "linear_probe"), "study": ("study", "study"),
                              "default": ("fine_tune", None)}[method]
            result = _heroes_run(data_dir, seed, recipe, policy, work)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result | {"method": method, "seed": seed, "wall_s": time.perf_counter() - start, "peak_rss_mb": peak}


def _child(method: str, data_dir: str, seed: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        command = [sys.executable, __file__, data_dir, "--one", method, "--seeds", str(seed), "--out", handle.name]
        subprocess.run(command, check=True, env=os.environ | {"HEROES_OFFLINE": "1"})
        return json.loads(Path(handle.name).read_text())


def summarise(runs: list, seeds: list) -> dict:
    """``rows``: per method the mean and sd over seeds of accuracy, macro-F1, wall time and peak memory."""
    rows = {}
    for method in METHODS:
        mine = [run for run in runs if run["method"] == method]
        if not mine:
            continue
        accuracy = [run["accuracy"] for run in mine]
        rows[method] = {
            "description": DESCRIPTIONS[method], "seeds": [run["seed"] for run in mine],
            "accuracy_mean": statistics.mean(accuracy),
            "accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
            "macro_f1_mean": statistics.mean(run["macro_f1"] for run in mine),
            "wall_s_mean": statistics.mean(run["wall_s"] for run in mine),
            "peak_rss_mb_max": max(run["peak_rss_mb"] for run in mine),
            "per_seed": [{key: value for key, value in run.items() if key not in ("method", "test_paths")}
                         for run in mine],
        }
    return rows


def markdown(result: dict) -> str:
    """The README table: one row per method."""
    lines = ["| method | test accuracy, mean ± sd over seeds | macro-F1 | wall time per seed | peak memory |",
             "|---|---|---:|---:|---:|"]
    for method, row in result["rows"].items():
        cis = ", ".join(f"[{100 * r['accuracy_ci95'][0]:.1f}, {100 * r['accuracy_ci95'][1]:.1f}]"
                        for r in row["per_seed"])
        lines.append(f"| {method} | {100 * row['accuracy_mean']:.1f}% ± {100 * row['accuracy_sd']:.1f} (exact 95% CIs "
                     f"{cis}) | {row['macro_f1_mean']:.3f} | {row['wall_s_mean']:.0f} s | "
                     f"{row['peak_rss_mb_max']:.0f} MB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="folder of class folders of real photos (e.g. ../shared/dev-photos)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds (default 0 1 2)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", default=str(ROOT / "reports/benchmarks/real-photos-dev.json"))
    parser.add_argument("--thousand", action="store_true", help="also time the default on 1,002 drawn images")
    parser.add_argument("--one", choices=(*METHODS, "thousand"), help=argparse.SUPPRESS)  # a child: one job
    args = parser.parse_args(argv)
    if args.one:
        job = time_thousand() if args.one == "thousand" else run_one(args.one, args.data_dir, args.seeds[0])
        Path(args.out).write_text(json.dumps(job))
        return 0

    from heroes import machine
    from heroes.reporting import run_card

    runs = []
    for seed in args.seeds:
        for method in args.methods:
            run = _child(method, args.data_dir, seed)
            print(f"seed {seed} {method}: accuracy {run['accuracy']:.3f} on {run['test_n']}, {run['wall_s']:.0f} s, "
                  f"{run['peak_rss_mb']:.0f} MB", flush=True)
            runs.append(run)
    same = {seed: {tuple(run["test_paths"]) for run in runs if run["seed"] == seed} for seed in args.seeds}
    if any(len(paths) != 1 for paths in same.values()):
        raise SystemExit("the methods did not score the same test images: splits differ")
    result = {"data_dir": os.path.basename(os.path.normpath(args.data_dir)), "seeds": args.seeds,
              "rows": summarise(runs, args.seeds), "machine": machine.describe(), "git": run_card.git_state(),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    if args.thousand:
        result["default_on_1002_drawn_images"] = _child("thousand", args.data_dir, 0)
        print(f"default on 1,002 drawn images: {result['default_on_1002_drawn_images']['wall_s']:.0f} s")
    if "default" in result["rows"] and "keras_reference" in result["rows"]:
        result["keras_reference_over_default_wall"] = (result["rows"]["keras_reference"]["wall_s_mean"]
                                                       / result["rows"]["default"]["wall_s_mean"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
