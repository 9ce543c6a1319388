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
PREDICTIONS = REPORTS / "predictions"


def portable(path) -> str:
    """``path`` relative to the project root when it lies inside it (reports stay valid in any clone), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(PROJ_ROOT))
    except ValueError:
        return str(path)


def resolve(path) -> Path:
    """The inverse of ``portable``: a relative path is read against the project root."""
    path = Path(path)
    return path if path.is_absolute() else PROJ_ROOT / path
