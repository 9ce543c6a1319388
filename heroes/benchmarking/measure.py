"""Naive Keras fine-tuning against the frozen-feature cache (float32, bf16), side by side, near the machine's limit.

In one process, on one embedded synthetic dataset (six classes, 200/25/25 per class at 224 px, seed 0), for each
backbone under its study policy (batch 16, SGD lr 0.001 momentum 0.9, ``weights=None``: random weights cost the
same to run as ImageNet ones):

1. **naive** -- ``model.fit`` on the whole model, float32, frozen base inside: the frozen stack runs for every
   training and validation image in every epoch. For the backbones in ``measured_naive`` (VGG16 by default) every
   epoch really trains (``heroes.training.train.train_run(use_cache=False)``) and the test accuracy is measured;
   the others are timed for ``naive_epochs`` epochs (optionally only ``naive_batches`` training batches of each) and
   extrapolated to ``epochs``, with no test accuracy (never estimated).
2. **cached float32** and 3. **cached bf16** -- ``heroes.training.train.train_run`` with the frozen-feature cache in a
   fresh temporary folder: the frozen prefix runs once per image, then only the trainable suffix trains, VGG16's
   fc1 on the span path (``heroes.training.cached.span``), a convolutional suffix of the bf16 row in mixed bf16 where
   the CPU has native bf16. Each records the seconds of every step of the run (build, extraction, fit, test, writing).

Before them, **VGG16's suffix alone** (fc1, fc2, output on ``suffix_rows`` random features at the study's shape,
1,200 x 25,088 -> 4,096 -> 4,096 -> 6): the direct path, then the span path, same batches and seed; seconds per
epoch of each and the largest difference in loss, validation probability and fc1 weight.

Per row: extraction images/s, seconds per epoch, end-to-end wall time, CPU time, peak RSS (sampled), the load
average while it ran and the test accuracy. Around them: the float32 and bf16 matmul ceiling (GFLOP/s, and GFLOP
per CPU-second, which contention distorts less), the frozen prefix's analytic FLOPs per image, and a short
alternating probe of each prefix in float32 and bf16, as a fraction of the ceiling. The JSON (``reports/benchmarks/
latest.json``, ``--quick``: ``latest-quick.json``) leads with ``bf16_native``, ``<backbone>.naive.wall_s``,
``<backbone>.cached.wall_s`` (the cached path this machine runs by default), ``<backbone>.speedup`` and
``suffix.{direct,span}_s_per_epoch``, ``suffix.max_probability_difference``; ``report.markdown`` turns it into the
tables ``command`` prints last.
"""

import dataclasses
import resource
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy

from heroes.benchmarking.analysis import analyse, headline, notes, targets
from heroes.benchmarking.clocks import Monitor
from heroes.benchmarking.probes import machine_record, matmul_ceilings, prefix_probe
from heroes.benchmarking.rows import cached, make_sets, naive_measured, naive_timed, train_config
from heroes.benchmarking.settings import DEFAULT_OUT, FULL, Settings
from heroes.benchmarking.suffix import suffix_paths
from heroes.io import write_json
from heroes.reporting import run_card
from heroes.training import fit


def bench_backbone(backbone, sets, settings, monitor, folder) -> dict:
    """The prefix probe and the three rows for one backbone."""
    num_classes = len(sets["train"].class_names)
    config = train_config(settings, backbone)
    images = numpy.asarray(sets["train"].images[: settings.probe_images], dtype="float32")
    with monitor.phase(f"{backbone} prefix probe float32/bf16") as probe_phase:
        probe = prefix_probe(config, num_classes, images, settings.batch_size)
    probe["resources"] = probe_phase["resources"]
    rows = {}
    measured = backbone in settings.measured_naive or (settings.naive_epochs >= settings.epochs
                                                        and not settings.naive_batches)
    naive_label = "naive (measured)" if measured else "naive (timed, extrapolated)"
    with monitor.phase(f"{backbone} {naive_label}") as phase:
        if naive_label == "naive (measured)":
            phase.update(naive_measured(config, sets, folder / backbone))
        else:
            phase.update(naive_timed(config, sets, settings))
    rows["naive"] = phase
    for dtype in ("float32", "bfloat16"):
        with monitor.phase(f"{backbone} cached {dtype}") as phase:
            phase.update(cached(train_config(settings, backbone, dtype), sets, folder / backbone))
        rows[f"cached {dtype}"] = phase
    fit.fresh_session(config)
    return {"backbone": backbone, "policy": "study", "probe": probe, "rows": rows}


def run_benchmark(settings: Settings = FULL, out=DEFAULT_OUT, verbose: bool = True) -> dict:
    """Measure everything in this process, write the JSON to ``out`` (unless None) and return it."""
    started = datetime.now(timezone.utc)
    result = {
        "benchmark": "naive Keras fine-tuning vs frozen-feature cache (float32, bf16)",
        "date": started.date().isoformat(), "started": started.isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(settings), "machine": machine_record(), "notes": notes(settings),
        "git": run_card.git_state(),  # the code that runs: read before, not after, the long rows
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    monitor = Monitor(settings.sample_seconds, verbose)
    with monitor, tempfile.TemporaryDirectory(prefix="heroes-bench-") as tmp:
        folder = Path(tmp)
        with monitor.phase("matmul ceiling (before)") as before_phase:
            before = matmul_ceilings(settings)
        if settings.suffix_rows:
            with monitor.phase("vgg16 suffix alone: direct vs span") as suffix_phase:
                result["suffix"] = suffix_paths(settings)
            result["suffix"]["resources"] = suffix_phase["resources"]
        counts = {}
        if settings.backbones:
            with monitor.phase("synthetic data") as data_phase:
                sets = make_sets(folder / "data", settings)
            counts = {name: len(sets[name]) for name in ("train", "val", "test")}
            result["data"] = {**counts, "classes": list(sets["train"].class_names),
                              "image_size": settings.image_size, "resources": data_phase["resources"]}
        backbones = []
        for name in settings.backbones:
            backbones.append(bench_backbone(name, sets, settings, monitor, folder))
            if out is not None:  # a run stopped later still leaves what it measured
                write_json(_partial_path(out), {**result, "complete": False, "backbones": backbones})
        with monitor.phase("matmul ceiling (after)") as after_phase:
            after = matmul_ceilings(settings)
        loads = list(monitor.all_loads)
    ceilings = {dtype: max(before[dtype] + after[dtype], key=lambda item: item["gflops"]) for dtype in before}
    result["ceiling"] = {"best": ceilings, "before": before, "after": after,
                         "resources": {"before": before_phase["resources"], "after": after_phase["resources"]}}
    result["bf16_native"] = result["machine"]["bf16_native"]
    for entry in backbones:
        entry["analysis"] = analyse(entry["rows"], settings, counts, entry["probe"], ceilings)
        result[entry["backbone"]] = headline(entry, result["bf16_native"])
    result["backbones"] = backbones
    finished = datetime.now(timezone.utc)
    result["finished"] = finished.isoformat(timespec="seconds")
    result["total_wall_s"] = round((finished - started).total_seconds(), 1)
    result["load_1min"] = {"mean": round(float(numpy.mean(loads)), 2), "min": round(float(numpy.min(loads)), 2),
                           "max": round(float(numpy.max(loads)), 2), "samples": len(loads)}
    result["process_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["targets"] = targets(result)
    result["complete"] = True
    if out is not None:
        write_json(out, result)
        Path(_partial_path(out)).unlink(missing_ok=True)
        result["written_to"] = str(out)
    return result


def _partial_path(out) -> Path:
    """Where a run still going keeps what it has measured: ``NAME.partial.json`` beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix}")
