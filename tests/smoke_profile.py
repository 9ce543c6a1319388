"""Prepare every notebook for nbval with the smoke profile: small data, small images, one epoch.

``papermill --prepare-only`` injects the smoke parameters after each notebook's
``parameters`` cell without executing it, so the committed defaults stay the
study's; ``pytest --nbval-lax`` then executes the prepared copies and compares the
cells marked ``# NBVAL_CHECK_OUTPUT`` with the outputs committed in the source.
Only parameters a notebook declares are injected.
"""

import argparse
import shutil
import sys
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]

# One value per parameter name used across notebooks; each notebook takes those it declares.
SMOKE_PARAMETERS = {
    "per_class": 16,
    "image_size": 64,
    "epochs": 1,
    "seeds": [0],
    "train_count": 10,
    "val_count": 3,
    "test_count": 3,
    "dirt": True,
    "feature_dtype": "float32",
    # Relative: nbval runs each prepared copy in its own folder, so smoke models land in .smoke/models, never
    # in the project's models/ where they would overwrite full-size runs of the same name.
    "models_dir": "models",
    "latency_images": 2,
    "latency_repeats": 1,
    "gradcam_count": 2,
    "top_losses": 4,
    "n_resamples": 999,
}


def prepare(out_dir: Path) -> list:
    """Write smoke copies of ``notebooks/*.ipynb`` into ``out_dir``; return their paths."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    shared = {"data_dir": str(out_dir / "data"), "reports_dir": str(out_dir / "reports")}
    written = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        declared = papermill.inspect_notebook(str(source))
        values = {name: value for name, value in {**SMOKE_PARAMETERS, **shared}.items() if name in declared}
        target = out_dir / source.name
        papermill.execute_notebook(str(source), str(target), parameters=values, prepare_only=True, progress_bar=False)
        written.append(target)
        print(f"smoke: {source.name} with {values}")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".smoke")
    args = parser.parse_args()
    if not prepare(args.out.resolve()):
        print("smoke: no notebooks yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
