"""``make reproduce``: run the numbered notebooks headlessly with papermill, timing each, then write the summary."""

import importlib.util
import os
import resource
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from heroes import paths, progress
from heroes.data import sizing, sources
from heroes.errors import UserError
from heroes.io import write_json

NOTEBOOKS = ("01-data-cleaning", "02-batman-vs-human", "03-six-class-finetune", "04-vgg-vs-resnet")


# The range of each override: below it a notebook fails or learns nothing, above it a run would not end today (each
# seed trains every backbone again; notebook 01 decodes every image at SIZE px, 1,500 at 1024 px are 4.7 GB).
RANGES = {"SEEDS": (1, 100), "SIZE": (32, 1024), "PER_CLASS": (1, 10_000), "EPOCHS": (1, 1000)}
# Each make variable's `python -m heroes reproduce` option, named in range errors.
FLAGS = {"SEEDS": "--seeds", "SIZE": "--image-size", "PER_CLASS": "--per-class", "EPOCHS": "--epochs"}


def _check_ranges(**values) -> None:
    """A one-line ``UserError`` for the first value (None: not given) that is not a whole number in its range."""
    for name, value in values.items():
        low, high = RANGES[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise UserError(f"{name} ({FLAGS[name]}) must be a whole number from {low} to {high}, got {value!r}")


def overrides(seeds=None, size=None, per_class=None, epochs=None) -> dict:
    """Notebook parameters from ``make reproduce SEEDS=.. SIZE=.. PER_CLASS=.. EPOCHS=..``, each checked first."""
    _check_ranges(SEEDS=seeds, SIZE=size, PER_CLASS=per_class, EPOCHS=epochs)
    values = {}
    if seeds is not None:
        values["seeds"] = list(range(seeds))
    if size is not None:
        values["image_size"] = size
    if per_class is not None:
        values.update(per_class=per_class, **_study_proportions(per_class))
    if epochs is not None:
        values["epochs"] = epochs
    return values


def _study_proportions(per_class: int) -> dict:
    """Notebook 01's train/val/test counts for ``per_class`` images in the study's 200/25/25 proportions."""
    train, val, test = sizing.study_counts(per_class)
    if train < 2:
        raise UserError(f"PER_CLASS={per_class} leaves no training images after {val} validation and {test} test "
                        f"per class; use PER_CLASS=10 or more")
    return {"train_count": train, "val_count": val, "test_count": test}


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of finished child processes: the notebook kernels papermill started and reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_notebooks(parameters: dict, out_dir=None, names=NOTEBOOKS) -> list:
    """Execute each present notebook into ``reports/notebooks``; return one timing dict per notebook run.

    Each dict: name, seconds (wall), cpu_seconds (the kernel's user + system time), load_average (1-minute, at the
    start and at the end): on a shared machine wall time alone does not say how much work a notebook did.
    What the notebooks print (training epochs, reused runs) streams to the terminal as they run.
    """
    import papermill

    # Each kernel's own log says "running over TCP without encryption" (it listens on localhost only: not a
    # problem here); quiet unless verbose. Cell errors still arrive: they travel as messages, not as this log.
    quiet = {} if progress.verbose() else {"extra_arguments": ["--IPKernelApp.log_level=ERROR"]}
    if not progress.verbose():
        warnings.filterwarnings("ignore", message=".*running over TCP without encryption")
    out_dir = Path(out_dir or paths.NOTEBOOK_RUNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for name in names:
        source = paths.PROJ_ROOT / "notebooks" / f"{name}.ipynb"
        if not source.is_file():
            print(f"[reproduce] {name}: not written yet, skipped")
            continue
        declared = papermill.inspect_notebook(str(source))
        values = {key: value for key, value in parameters.items() if key in declared}
        print(f"[reproduce] {name} {values or ''}", flush=True)
        start, cpu, load = time.perf_counter(), _children_cpu_s(), os.getloadavg()[0]
        try:
            # Widget bars would never reach this terminal: text bars on the kernel's stderr, forwarded here.
            with progress.text_bars():
                papermill.execute_notebook(str(source), str(out_dir / source.name), parameters=values,
                                           cwd=str(source.parent), progress_bar=False, stdout_file=sys.stdout,
                                           stderr_file=sys.stderr, **quiet)
        except papermill.PapermillExecutionError as error:
            raise UserError(f"{name} failed ({error.ename}: {error.evalue}); "
                            f"see the executed copy {out_dir / source.name}") from None
        seconds = time.perf_counter() - start
        timings.append({"name": name, "seconds": round(seconds, 1), "cpu_seconds": round(_children_cpu_s() - cpu, 1),
                        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]})
        print(f"[reproduce] {name}: {seconds / 60:.1f} min", flush=True)
    return timings


def skipped_notebooks(data_dir=None) -> dict:
    """Notebooks after 01 that the classes found cannot support, each with the reason (read from 01's split)."""
    labels = set(sources.load_split(data_dir or paths.DATA)["label"])
    absent = [name for name in ("Batman", "Not a hero") if not sources.has_classes(labels, [name])]
    if not absent:
        return {}
    return {"02-batman-vs-human": f"no {' and no '.join(absent)} class among {', '.join(sources.ordered_labels(labels))}"
                                  ": the study's Batman-vs-human step needs both"}


def write_timings(timings: list, total_s: float, parameters: dict, reports_dir=None, skipped=None) -> Path:
    """``<reports_dir>/metrics/reproduce.json``: what ``make reproduce`` ran, with what, how long, what it skipped."""
    path = Path(reports_dir or paths.REPORTS) / "metrics" / "reproduce.json"
    record = {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parameters": parameters,
              "notebooks": timings, "skipped": skipped or {}, "total_s": round(total_s, 1),
              "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    return write_json(path, record)


def _check_drawable(size) -> None:
    """Refuse a SIZE at which notebook 01 would draw the embedded images below the cleaning's tiny threshold."""
    from heroes.cleaning.flags import CleanConfig

    minimum = CleanConfig().min_side
    if size is not None and size < minimum:
        raise UserError(f"SIZE={size} would draw the embedded images below the {minimum} px that cleaning keeps "
                        f"(all would be dropped as tiny); use SIZE={minimum} or more")


def reproduce(seeds=None, size=None, per_class=None, epochs=None) -> int:
    """Run the study end to end and say where to look."""
    start = time.perf_counter()
    parameters = overrides(seeds, size, per_class, epochs)
    # The run card in the notebooks' metrics names the command a person typed, not the kernel's own argv.
    os.environ.setdefault("HEROES_COMMAND", " ".join(["python -m heroes", *sys.argv[1:]]))
    if not sources.has_images(sources.raw_images_dir()):
        _check_drawable(size)
        print(f"[reproduce] {sources.raw_images_dir()} holds no images: notebook 01 draws the "
              f"{sources.EMBEDDED_NOTE} there first", flush=True)
    timings = run_notebooks(parameters, names=NOTEBOOKS[:1])
    skipped = skipped_notebooks()
    for name, reason in skipped.items():
        print(f"[reproduce] {name}: skipped: {reason}", flush=True)
    timings += run_notebooks(parameters, names=[name for name in NOTEBOOKS[1:] if name not in skipped])
    total = time.perf_counter() - start
    write_timings(timings, total, parameters, skipped=skipped)
    print("[reproduce] notebook times (wall / kernel CPU):")
    for item in timings:
        print(f"  {item['name']:28s} {item['seconds'] / 60:6.1f} min  {item['cpu_seconds'] / 60:6.1f} min")
    print(f"  {'total':28s} {total / 60:6.1f} min")
    if importlib.util.find_spec("heroes.reporting.summary") is not None:
        from heroes.reporting import summary

        print(f"[reproduce] summary: {summary.write_study_summary()}")
    print(f"[reproduce] executed notebooks: {paths.NOTEBOOK_RUNS}; figures: {paths.FIGURES}; "
          f"metrics: {paths.METRICS}")
    return 0
