"""Where the raw images live, and drawing the embedded dataset there when the user brought none."""

import json
from pathlib import Path

from heroes import paths

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
EMBEDDED_NOTE = "embedded synthetic dataset (procedurally drawn, not real photographs)"


def raw_images_dir(data_dir=None) -> Path:
    """``<data>/raw/superheroes``: one sub-folder per class, never modified by the project."""
    return Path(data_dir or paths.DATA) / "raw" / "superheroes"


def truth_path(data_dir=None) -> Path:
    """Ground truth of the defects injected into the embedded dataset (beside, not inside, the images)."""
    return Path(data_dir or paths.DATA) / "raw" / "embedded_truth.csv"


def marker_path(data_dir=None) -> Path:
    """Record of how the embedded dataset was drawn; its presence means "these images are synthetic"."""
    return Path(data_dir or paths.DATA) / "raw" / "embedded.json"


def embedded_settings(data_dir=None) -> dict | None:
    """The settings the embedded dataset was drawn with, or None when the images are the user's."""
    marker = marker_path(data_dir)
    return json.loads(marker.read_text()) if marker.is_file() else None


def has_images(folder: Path) -> bool:
    """True when any file with an image suffix exists under ``folder``."""
    folder = Path(folder)
    return folder.is_dir() and any(
        path.suffix.lower() in IMAGE_SUFFIXES for path in folder.rglob("*") if path.is_file()
    )


def ensure_dataset(data_dir=None, per_class=250, size=224, seed=0, dirt=True, progress=True) -> dict:
    """Use the user's images when there are any; otherwise draw the embedded set, saying so.

    Returns ``{"images": folder, "source": "user" | "embedded", "truth": path or None, "message": str}``.
    """
    folder = raw_images_dir(data_dir)
    if has_images(folder):
        settings = embedded_settings(data_dir)
        if settings is not None:
            truth = truth_path(data_dir) if settings.get("dirt") else None
            return {"images": folder, "source": "embedded", "truth": truth,
                    "message": f"using the {EMBEDDED_NOTE} already drawn in {folder} ({settings})"}
        return {"images": folder, "source": "user", "truth": None,
                "message": f"using your images in {folder}"}
    from heroes import synthetic
    from heroes.io_utils import atomic_path

    truth = truth_path(data_dir) if dirt else None
    synthetic.write_dataset(folder, per_class=per_class, size=size, seed=seed, dirt=dirt,
                            truth_path=truth, progress=progress)
    with atomic_path(marker_path(data_dir)) as temporary:
        settings = {"per_class": per_class, "size": size, "seed": seed, "dirt": dirt}
        temporary.write_text(json.dumps(settings))
    return {"images": folder, "source": "embedded", "truth": truth,
            "message": f"{folder} held no images: drew the {EMBEDDED_NOTE}, {per_class} per class at {size} px"
                       f"{', with injected defects' if dirt else ''}"}
