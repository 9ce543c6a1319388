"""Project folders, resolved from this file so notebooks and the CLI agree wherever they run."""

from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJ_ROOT / "data"
RAW = DATA / "raw"
INTERIM = DATA / "interim"
PROCESSED = DATA / "processed"
REVIEW = DATA / "review"
MODELS = PROJ_ROOT / "models"
REPORTS = PROJ_ROOT / "reports"
FIGURES = REPORTS / "figures"
METRICS = REPORTS / "metrics"
NOTEBOOK_RUNS = REPORTS / "notebooks"
