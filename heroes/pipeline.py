"""``make reproduce``: run the numbered notebooks headlessly with papermill, timing each."""

import importlib.util
import time
from pathlib import Path

from heroes import paths
from heroes.errors import UserError

NOTEBOOKS = ("01-data-cleaning", "02-batman-vs-human", "03-six-class-finetune", "04-vgg-vs-resnet")


def overrides(seeds=None, size=None, per_class=None, epochs=None) -> dict:
    """Notebook parameters from ``make reproduce SEEDS=.. SIZE=.. PER_CLASS=.. EPOCHS=..``."""
    values = {}
    if seeds is not None:
        if seeds < 1:
            raise UserError(f"SEEDS must be at least 1, got {seeds}")
        values["seeds"] = list(range(seeds))
    if size is not None:
        values["image_size"] = size
    if per_class is not None:
        values["per_class"] = per_class
    if epochs is not None:
        values["epochs"] = epochs
    return values


def run_notebooks(parameters: dict, out_dir=None, names=NOTEBOOKS) -> list:
    """Execute each present notebook into ``reports/notebooks``; return ``(name, seconds)`` pairs."""
    import papermill

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
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(source), str(out_dir / source.name), parameters=values,
                                       cwd=str(source.parent), progress_bar=True)
        except papermill.PapermillExecutionError as error:
            raise UserError(f"{name} failed ({error.ename}: {error.evalue}); "
                            f"see the executed copy {out_dir / source.name}") from None
        timings.append((name, time.perf_counter() - start))
    return timings


def reproduce(seeds=None, size=None, per_class=None, epochs=None) -> int:
    """Run the study end to end and say where to look."""
    start = time.perf_counter()
    timings = run_notebooks(overrides(seeds, size, per_class, epochs))
    if importlib.util.find_spec("heroes.report") is not None:
        from heroes import report

        summary = report.write_summary()
        print(f"[reproduce] summary: {summary}")
    print("[reproduce] notebook times:")
    for name, seconds in timings:
        print(f"  {name:28s} {seconds:7.1f} s")
    print(f"  {'total':28s} {time.perf_counter() - start:7.1f} s")
    print(f"[reproduce] executed notebooks: {paths.NOTEBOOK_RUNS}; figures: {paths.FIGURES}")
    return 0
