"""Copy the test predictions behind the reports into ``reports/predictions/`` so committed numbers can be re-derived."""

from pathlib import Path

import pandas

from heroes import paths
from heroes.io import write_csv
from heroes.training import runs
from heroes.reporting.metrics_files import read_metrics, walk

FOLDER = "predictions"


def run_dirs(metrics_dir) -> list:
    """Every ``run_dir`` named (at any depth) in the metrics files under ``metrics_dir``, in order, once each."""
    found, _ = read_metrics(metrics_dir)
    named = [value for key_path, value in walk(found) if key_path[-1:] == ("run_dir",) and isinstance(value, str)]
    return list(dict.fromkeys(named))


def publish_predictions(reports_dir) -> list:
    """Copy each named run's ``predictions.csv`` to ``<reports_dir>/predictions/<run name>.csv``, image paths made
    relative to the project root where they lie inside it (a run folder that is gone leaves its earlier copy alone);
    return the copies written. Small: one row per test image."""
    target = Path(reports_dir) / FOLDER
    written = []
    for run_dir in run_dirs(Path(reports_dir) / "metrics"):
        source = paths.resolve(run_dir) / runs.PREDICTIONS
        if source.is_file():
            target.mkdir(parents=True, exist_ok=True)
            frame = pandas.read_csv(source, keep_default_na=False)
            if "path" in frame:
                frame["path"] = [paths.portable(path) for path in frame["path"]]
            written.append(Path(write_csv(frame, target / f"{Path(run_dir).name}.csv")))
    return written
