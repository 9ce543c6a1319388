"""One backbone's rows: naive ``model.fit`` (measured, or timed and extrapolated), cached float32 and bf16; data."""

import time
from pathlib import Path

import keras
import numpy

from heroes.benchmarking.clocks import clock, steady
from heroes.config import TrainConfig
from heroes.data import arrays, augment, scan, split
from heroes.data.synthetic import dataset
from heroes.training import train
from heroes.training import fit
from heroes.training.callbacks import BestWeights


def make_sets(folder: Path, settings) -> dict:
    """Draw the embedded dataset, scan it, split it per class and decode it: train/val/test ``ImageSet``s."""
    per_class = settings.train + settings.val + settings.test
    dataset.write_dataset(folder / "raw", per_class=per_class, size=settings.image_size, seed=settings.seed,
                            progress=False)
    splits = split.make_splits(scan.scan(folder / "raw", progress=False), train=settings.train, val=settings.val,
                               test=settings.test, seed=settings.seed)
    return arrays.load_split_arrays(splits, settings.image_size, cache_dir=folder / "arrays", progress=False)


def train_config(settings, backbone: str, feature_dtype="float32") -> TrainConfig:
    """The study's run; float32 features train a float32 suffix, bf16 ones the suffix precision ``auto`` picks (mixed
    bf16 for a convolutional suffix where native), so the two cached rows show what bf16 does to accuracy.

    No per-epoch re-scoring of the training set (notebook 04's overfitting curves): every row, naive included, times
    the same work, training plus validation each epoch and one test pass."""
    return TrainConfig(backbone=backbone, policy="study", image_size=settings.image_size, weights=None,
                       epochs=settings.epochs, batch_size=settings.batch_size, seed=settings.seed,
                       feature_dtype=feature_dtype, suffix_precision="float32" if feature_dtype == "float32" else "auto",
                       score_train_set=False)


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
    epoch = steady(history["seconds"])
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
    model = train.build_run_model(config, len(sets["train"].class_names))[0]  # as train_run builds it
    fit.compile_for_training(model, config)
    image_set = sets["train"]
    sha = numpy.asarray(image_set.sha256)
    batches = fit.EpochBatches(lambda indices, views: augment.view_batch(image_set.images[indices], sha[indices],
                                                                            views),
                                 image_set.labels, config.batch_size, config.seed)
    steps = len(batches) if settings.naive_batches is None else min(settings.naive_batches, len(batches))
    validation = (numpy.asarray(sets["val"].images, dtype="float32"), sets["val"].labels)
    clock = FitClock()
    setup = time.perf_counter() - start
    fitted = model.fit(batches, validation_data=validation, epochs=settings.naive_epochs, steps_per_epoch=steps,
                       callbacks=[BestWeights("val_loss"), clock], verbose=0)
    fit.release_optimizer_graphs()
    start = time.perf_counter()
    model.predict(numpy.asarray(sets["test"].images, dtype="float32"), batch_size=fit.PREDICT_BATCH, verbose=0)
    test_pass = time.perf_counter() - start
    timed = len(clock.batches)
    batch = (sum(clock.train_parts) - clock.batches[0]) / (timed - 1) if timed > 1 else clock.batches[0]
    trace = max(clock.batches[0] - batch, 0.0)
    validation_s = steady(clock.validations)
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
    with clock() as call:
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
        "seconds_per_epoch": round(steady(history["seconds"]), 2),
        "epoch_seconds": [round(value, 2) for value in history["seconds"]],
        "wall_s": round(metrics["wall_time_s"], 1), "train_s": round(metrics["train_time_s"], 1),
        "test_accuracy": metrics["test_accuracy"], "test_n": metrics["test_n"], **_epoch1(history),
        "feature_dtype": metrics["feature_dtype"], "suffix_path": metrics["suffix_path"],
        "suffix_path_reason": metrics["suffix_path_reason"], "suffix_precision": metrics["suffix_precision"],
        "suffix_xla": metrics["suffix_xla"], "steps_s": steps,
    }
