"""How fast VGG16's trainable suffix can train on this CPU at all: the floor under the span path, measured.

    python benchmarks/suffix_floor.py [--steps 75] [--out reports/benchmarks/suffix-floor.json]

The span path (``heroes.training.cached.span``) leaves fc2 (4,096 x 4,096) as the cost of each step: its exact SGD-momentum
update reads and writes 16.8 M weights, their gradient and their momentum, and its two matmuls read the weights twice
more, at batch 16. This benchmark times, in plain TensorFlow with no Keras bookkeeping, (1) the machine's memory
bandwidth (a numpy copy), (2) each part of fc2's step, with and without XLA, (3) one whole span-path step (fc1 in the
span, fc2 dense, output) and (4) the alternative of training fc2 in the span of each epoch's fc1 activations, exact
with the momentum carried from earlier epochs as a closed-form term: fewer dense writes, as many dense reads. With
``reports/benchmarks/latest.json`` beside it, it also prints the seconds per epoch the 15x target leaves for training.
Last, (5) the span path itself, through ``heroes``, in two fresh processes: malloc tuned (``heroes.machine``) and not.
The step functions are hand-written on purpose: they are what is being measured, the least work an exact step does.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy  # noqa: E402

from heroes import machine, paths  # noqa: E402
from heroes.io import write_json  # noqa: E402
from heroes.reporting import run_card  # noqa: E402

ROWS, UNITS, CLASSES, BATCH = 1200, 4096, 6, 16  # the study: 6 x 200 training images, VGG16's fc1/fc2, batch 16
MOMENTUM, LEARNING_RATE = 0.9, 0.001
DEFAULT_OUT = paths.REPORTS / "benchmarks" / "suffix-floor.json"


def memory_bandwidth(mebibytes: int = 256, repeats: int = 10) -> float:
    """GB/s of a large numpy copy, read and write bytes both counted."""
    source = numpy.ones(mebibytes * 2**18, dtype="float32")
    target = numpy.empty_like(source)
    numpy.copyto(target, source)
    start = time.perf_counter()
    for _ in range(repeats):
        numpy.copyto(target, source)
    return round(2 * source.nbytes * repeats / (time.perf_counter() - start) / 1e9, 1)


def _milliseconds(function, steps: int, jit: bool, arguments=lambda step: ()) -> float:
    import tensorflow

    compiled = tensorflow.function(function, jit_compile=jit)
    compiled(*arguments(0))  # trace and compile outside the clock
    start = time.perf_counter()
    for step in range(steps):
        compiled(*arguments(step))
    return round(1000 * (time.perf_counter() - start) / steps, 2)


def fc2_parts(steps: int) -> dict:
    """Milliseconds per step of each part of fc2's exact step, with XLA and without."""
    import tensorflow

    weights = tensorflow.Variable(tensorflow.random.normal((UNITS, UNITS)) * 0.01)
    momentum = tensorflow.Variable(tensorflow.zeros((UNITS, UNITS)))
    inputs, upstream = tensorflow.random.normal((BATCH, UNITS)), tensorflow.random.normal((BATCH, UNITS))

    def update():
        gradient = tensorflow.matmul(inputs, upstream, transpose_a=True)
        momentum.assign(MOMENTUM * momentum - LEARNING_RATE * gradient)
        weights.assign_add(momentum)
        return 0.0

    parts = {"forward x.W": lambda: tensorflow.reduce_sum(tensorflow.matmul(inputs, weights)),
             "input gradient d.W^T": lambda: tensorflow.reduce_sum(tensorflow.matmul(upstream, weights,
                                                                                     transpose_b=True)),
             "update (x^T d, momentum, weights)": update}
    return {name: {"xla": _milliseconds(part, steps, True), "no_xla": _milliseconds(part, steps, False)}
            for name, part in parts.items()}


def _variables(shapes: dict, scale: float = 0.0) -> dict:
    import tensorflow

    return {name: tensorflow.Variable(tensorflow.random.normal(shape) * scale if scale else tensorflow.zeros(shape))
            for name, shape in shapes.items()}


def _head(hidden, labels, output):
    """Softmax cross-entropy of the 6-way output layer; its gradient with respect to ``hidden``."""
    import tensorflow

    with tensorflow.GradientTape() as tape:
        tape.watch(hidden)
        loss = tensorflow.reduce_mean(tensorflow.nn.sparse_softmax_cross_entropy_with_logits(
            labels, tensorflow.matmul(hidden, output)))
    return loss, tape.gradient(loss, hidden)


def whole_steps(steps: int) -> dict:
    """Seconds per epoch (``steps`` steps) of a whole exact step, fc2 dense vs fc2 in each epoch's span, XLA."""
    import tensorflow

    span = _variables({"A": (ROWS, UNITS), "A_momentum": (ROWS, UNITS), "fc2_momentum": (UNITS, UNITS),
                       "C": (ROWS, UNITS), "C_momentum": (ROWS, UNITS), "H": (ROWS, UNITS)})
    dense = _variables({"fc2": (UNITS, UNITS), "fc2_start": (UNITS, UNITS), "carried": (UNITS, UNITS)}, 0.01)
    output = tensorflow.Variable(tensorflow.random.normal((UNITS, CLASSES)) * 0.01)
    relu_mask = lambda tensor: tensorflow.cast(tensor > 0, tensor.dtype)  # noqa: E731

    def fc1(kernel_rows, p0):
        return tensorflow.nn.relu(p0 + tensorflow.matmul(kernel_rows, span["A"]))

    def update_span(gradient_h1, h1, rows):
        scattered = tensorflow.math.unsorted_segment_sum(gradient_h1 * relu_mask(h1), rows, ROWS)
        span["A_momentum"].assign(MOMENTUM * span["A_momentum"] - LEARNING_RATE * scattered)
        span["A"].assign_add(span["A_momentum"])

    def dense_step(kernel_rows, p0, rows, labels, carried_scale, slots):
        h1 = fc1(kernel_rows, p0)
        z2 = tensorflow.matmul(h1, dense["fc2"])
        loss, gradient = _head(tensorflow.nn.relu(z2), labels, output)
        delta = gradient * relu_mask(z2)
        gradient_h1 = tensorflow.transpose(tensorflow.matmul(dense["fc2"], delta, transpose_b=True))
        span["fc2_momentum"].assign(MOMENTUM * span["fc2_momentum"]
                                    - LEARNING_RATE * tensorflow.matmul(h1, delta, transpose_a=True))
        dense["fc2"].assign_add(span["fc2_momentum"])
        update_span(gradient_h1, h1, rows)
        return loss

    def epoch_span_step(kernel_rows, p0, rows, labels, carried_scale, slots):
        # fc2 = start + carried_scale * carried momentum + Hᵀ C, H this epoch's fc1 outputs, C trained like A
        h1 = fc1(kernel_rows, p0)
        span["H"].scatter_nd_update(slots[:, None], h1)
        z2 = (tensorflow.matmul(h1, dense["fc2_start"]) + carried_scale * tensorflow.matmul(h1, dense["carried"])
              + tensorflow.matmul(tensorflow.matmul(h1, span["H"], transpose_b=True), span["C"]))
        loss, gradient = _head(tensorflow.nn.relu(z2), labels, output)
        delta = gradient * relu_mask(z2)
        gradient_h1 = tensorflow.transpose(tensorflow.matmul(dense["fc2_start"], delta, transpose_b=True)
                                           + carried_scale * tensorflow.matmul(dense["carried"], delta,
                                                                               transpose_b=True)) \
            + tensorflow.matmul(tensorflow.matmul(delta, span["C"], transpose_b=True), span["H"])
        scattered = tensorflow.math.unsorted_segment_sum(delta, slots, ROWS)
        span["C_momentum"].assign(MOMENTUM * span["C_momentum"] - LEARNING_RATE * scattered)
        span["C"].assign_add(span["C_momentum"])
        update_span(gradient_h1, h1, rows)
        return loss

    rng = numpy.random.default_rng(0)
    kernel_rows = tensorflow.constant(rng.standard_normal((BATCH, ROWS), dtype="float32"))
    p0 = tensorflow.constant(rng.standard_normal((BATCH, UNITS), dtype="float32"))
    labels = tensorflow.constant(rng.integers(0, CLASSES, BATCH), dtype="int32")

    def arguments(step):
        slots = tensorflow.range(BATCH) + BATCH * (step % (ROWS // BATCH))
        return kernel_rows, p0, slots, labels, tensorflow.constant(MOMENTUM ** (step + 1)), slots

    return {name: round(_milliseconds(step, steps, True, arguments) * steps / 1000, 3)
            for name, step in (("fc2 dense (the span path)", dense_step),
                               ("fc2 in each epoch's span", epoch_span_step))}


def span_epochs_child(epochs: int) -> dict:
    """In this process: VGG16's suffix on the span path through ``heroes`` (random features at the study's shape);
    its epoch seconds, system CPU seconds and minor page faults."""
    import resource

    from heroes import machine
    from heroes.benchmarking import suffix
    from heroes.benchmarking.settings import Settings
    from heroes.config import TrainConfig

    settings = Settings()
    config = TrainConfig(backbone="vgg16", image_size=224, weights=None, epochs=epochs, batch_size=BATCH,
                         seed=0, score_train_set=False, suffix_path="span")
    before = resource.getrusage(resource.RUSAGE_SELF)
    run = suffix.suffix_path_run(config, suffix.suffix_problem(settings, 7 * 7 * 512))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"malloc": machine.malloc_state(), "xla": run["xla"], "epoch_seconds": run["epoch_seconds"],
            "system_cpu_s": round(after.ru_stime - before.ru_stime, 2), "minor_page_faults": after.ru_minflt
            - before.ru_minflt}


def allocator_effect(epochs: int) -> dict:
    """``span_epochs_child`` in a fresh process with malloc tuned, then with ``HEROES_MALLOC=default``."""
    import os
    import subprocess

    from heroes import machine

    runs = {}
    for name, extra in (("tuned", {}), ("default", {machine.OPT_OUT: "default"})):
        done = subprocess.run([sys.executable, __file__, "--child-epochs", str(epochs)], capture_output=True,
                              text=True, check=True, env={**os.environ, "HEROES_OFFLINE": "1", **extra})
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return runs


def training_budget(latest: Path, target: float = 15.0) -> dict | None:
    """Seconds per epoch the target leaves for training, from the study-configuration benchmark."""
    if not latest.is_file():
        return None
    result = json.loads(latest.read_text())
    naive, cached = result["vgg16"]["naive"], result["vgg16"]["cached"]
    rest = cached["wall_s"] - cached["steps_s"]["fit"]
    epochs = result["settings"]["epochs"]
    return {"from": str(latest.relative_to(paths.PROJ_ROOT)), "commit": (result.get("git") or {}).get("commit"),
            "naive_wall_s": naive["wall_s"], "cached_wall_s_without_training": round(rest, 1),
            "target": target, "training_s_per_epoch_left": round((naive["wall_s"] / target - rest) / epochs, 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=ROWS // BATCH, help="steps timed (default: one epoch, 75)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON to write")
    parser.add_argument("--allocator-epochs", type=int, default=6, help="epochs of the span path per allocator "
                                                                        "setting (0 skips it)")
    parser.add_argument("--child-epochs", type=int, help=argparse.SUPPRESS)  # the subprocess of allocator_effect
    args = parser.parse_args(argv)
    if args.child_epochs:
        print(json.dumps(span_epochs_child(args.child_epochs)))
        return {}
    parts = fc2_parts(args.steps)
    fastest = {name: min(times.values()) for name, times in parts.items()}
    result = {
        "benchmark": "suffix_floor", "date": time.strftime("%Y-%m-%d"), "git": run_card.git_state(),
        "command": "python benchmarks/suffix_floor.py" + "".join(f" {arg}" for arg in (argv or sys.argv[1:])),
        "hardware": machine.describe(), "batch_size": BATCH, "steps": args.steps,
        "memory_bandwidth_gb_s": memory_bandwidth(), "fc2_ms_per_step": parts,
        "fc2_floor_s_per_epoch": round(sum(fastest.values()) * (ROWS // BATCH) / 1000, 2),
        "whole_step_s_per_epoch_xla": whole_steps(args.steps),
        "budget": training_budget(paths.REPORTS / "benchmarks" / "latest.json"),
        "span_path_by_allocator": allocator_effect(args.allocator_epochs) if args.allocator_epochs else None,
    }
    write_json(Path(args.out), result)
    print(json.dumps({key: result[key] for key in ("memory_bandwidth_gb_s", "fc2_ms_per_step", "fc2_floor_s_per_epoch",
                                                   "whole_step_s_per_epoch_xla", "budget", "span_path_by_allocator")},
                     indent=2))
    return result


if __name__ == "__main__":
    main()
