"""Copy the test predictions behind the reports into ``reports/predictions/`` so committed numbers can be re-derived."""

from pathlib import Path

import pandas

from heroes import paths
from heroes.io import write_csv
from heroes.training import runs
from heroes.reporting.metrics_files import read_studies

FOLDER = "predictions"


def run_dirs(metrics_dir) -> list:
    """Every run folder the study metrics files under ``metrics_dir`` name (their ``run_dirs``), in order, once each."""
    studies, _, _ = read_studies(metrics_dir)
    return list(dict.fromkeys(run_dir for study in studies.values() for run_dir in study.run_dirs))


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
