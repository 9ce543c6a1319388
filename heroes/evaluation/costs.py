"""What a model costs to use: latency per image and size on disk."""

import os
import statistics
import time
from pathlib import Path

import numpy

from heroes.training import runs


def inference_latency(model, images, repeats=3, warmup=1) -> dict:
    """Milliseconds per image of the full model (raw pixels in), batch 1, median over images x repeats.

    ``predict_on_batch`` (Keras' predict for one batch, without building a dataset per call) after ``warmup``
    untimed passes; the 1-minute load average is recorded because the CPU may be shared.
    """
    images = numpy.asarray(images, dtype="float32")
    if images.ndim != 4 or len(images) == 0 or repeats < 1:
        raise ValueError(f"need a non-empty (N, H, W, 3) batch and repeats >= 1, got {images.shape} and {repeats}")
    for _ in range(warmup):
        for image in images:
            model.predict_on_batch(image[None])
    timings = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            model.predict_on_batch(image[None])
            timings.append(1000 * (time.perf_counter() - start))
    return {"latency_ms_per_image": float(statistics.median(timings)), "latency_ms_min": float(min(timings)),
            "latency_images": len(images), "latency_repeats": repeats, "latency_batch_size": 1,
            "latency_load_average": os.getloadavg()[0]}


def model_bytes(run_dir) -> int | None:
    """Size on disk of the run's ``model.keras`` (None when the run did not save it)."""
    path = Path(run_dir) / runs.MODEL
    return path.stat().st_size if path.is_file() else None
