"""Notebook helpers for the study's runs (02, 03): notebook 01's split, honest banners, probe predictions, summaries."""

import json
from pathlib import Path

import pandas

from heroes import paths
from heroes.config import CLASSES
from heroes.data import scan, split
from heroes.errors import UserError
from heroes.io import write_json

CLEAN_MANIFEST = "clean_manifest.csv"
SPLITS_FILE = "splits.csv"
DATA_NOTEBOOK = "notebooks/01-data-cleaning.ipynb"


def interim_file(data_dir, name: str) -> Path:
    """``<data_dir>/interim/<name>``, or a ``UserError`` saying to run notebook 01 first when it is missing."""
    path = Path(data_dir) / "interim" / name
    if not path.is_file():
        raise UserError(f"{path} not found: run {DATA_NOTEBOOK} first with the same data_dir; it cleans the "
                        f"images and writes {CLEAN_MANIFEST} and {SPLITS_FILE} to {path.parent}")
    return path


def ordered_labels(labels) -> list:
    """Labels in the study's class order (matched by class id, so ``Not a hero/`` sorts as ``not_a_hero``), then A-Z."""
    known = {name: index for index, name in enumerate(CLASSES)}
    return sorted(set(labels), key=lambda label: (known.get(scan.class_id_for(label), len(known)), label))


def labels_for(available, wanted) -> list:
    """The labels of ``available`` (folder names) that ``wanted`` names, matched by class id (case, spaces, hyphens
    and underscores do not matter: ``not_a_hero`` finds ``Not a hero``); ``UserError`` naming what is missing."""
    by_id = {scan.class_id_for(label): label for label in set(available)}
    missing = [name for name in wanted if scan.class_id_for(name) not in by_id]
    if missing:
        raise UserError(f"class(es) {', '.join(missing)} not in the split; it has "
                        f"{', '.join(ordered_labels(available))}")
    return [by_id[scan.class_id_for(name)] for name in wanted]


def has_classes(available, wanted) -> bool:
    """Whether every class of ``wanted`` is among the labels ``available`` (matched by class id)."""
    ids = {scan.class_id_for(label) for label in available}
    return all(scan.class_id_for(name) in ids for name in wanted)


def load_split(data_dir, classes=None) -> pandas.DataFrame:
    """Notebook 01's split (``<data_dir>/interim/splits.csv``), restricted to ``classes`` (ids or names) when given."""
    splits = split.read_splits(interim_file(data_dir, SPLITS_FILE))
    if classes is None:
        return splits
    labels = labels_for(splits["label"], list(classes))
    if len(set(labels)) < 2:
        raise UserError(f"need at least two distinct classes, got {list(classes)}")
    return splits[splits["label"].isin(labels)].reset_index(drop=True)


def data_title(splits: pandas.DataFrame) -> str:
    """What the data holds, for a notebook's opening line: ``10 classes: Batman, Captain Marvel, … (1,500 images)``."""
    used = splits[splits["split"].isin(split.SPLIT_NAMES)]
    labels = ordered_labels(used["label"])
    return f"{len(labels)} classes: {', '.join(labels)} ({len(used):,} images in train/val/test)"


def split_counts(splits: pandas.DataFrame) -> pandas.DataFrame:
    """Images per class (rows, in the study's order) and split (train, val, test), with a total row."""
    used = splits[splits["split"].isin(split.SPLIT_NAMES)]
    table = (pandas.crosstab(used["label"], used["split"])
             .reindex(index=ordered_labels(used["label"]), columns=list(split.SPLIT_NAMES), fill_value=0))
    table.loc["total"] = table.sum()
    table.index.name, table.columns.name = "class", None
    return table


def read_clean_manifest(data_dir) -> pandas.DataFrame:
    """Notebook 01's cleaned manifest."""
    return scan.read_manifest(interim_file(data_dir, CLEAN_MANIFEST))


def probe_rows(manifest: pandas.DataFrame, classes=None) -> pandas.DataFrame:
    """Decodable unmasked-hero probes (``role == "probe"``), in the study's class order then path.

    ``classes`` keeps only probes of those labels (probes of heroes the model was not trained on are still
    informative: the model must call them something).
    """
    probes = manifest[scan.data_rows(manifest, usable=True, role="probe")]
    if classes is not None:
        wanted = {scan.class_id_for(name) for name in classes}
        probes = probes[probes["label"].map(scan.class_id_for).isin(wanted)]
    order = {label: index for index, label in enumerate(ordered_labels(probes["label"]))}
    return (probes.assign(_order=probes["label"].map(order)).sort_values(["_order", "path"])
            .drop(columns="_order").reset_index(drop=True))


def data_note(data_dir) -> str:
    """Whether the images are the embedded synthetic set (with its settings) or the user's."""
    settings = embedded_settings(data_dir)
    if settings is None:
        return f"data: your images in {raw_images_dir(data_dir)}"
    return f"data: THE {EMBEDDED_NOTE.upper()}, drawn with {settings}"


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
    from heroes.data.synthetic import dataset

    truth = truth_path(data_dir) if dirt else None
    dataset.write_dataset(folder, per_class=per_class, size=size, seed=seed, dirt=dirt,
                            truth_path=truth, progress=progress)
    write_json(marker_path(data_dir), {"per_class": per_class, "size": size, "seed": seed, "dirt": dirt})
    return {"images": folder, "source": "embedded", "truth": truth,
            "message": f"{folder} held no images: drew the {EMBEDDED_NOTE}, {per_class} per class at {size} px"
                       f"{', with injected defects' if dirt else ''}"}
