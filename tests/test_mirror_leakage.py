"""The second leakage signal finds mirrored and re-lit copies across splits that the perceptual hashes miss."""

from pathlib import Path

import pandas
import pytest
from PIL import Image, ImageOps

from heroes.cleaning import leakage, mirror_leakage
from heroes.data import scan, split
from heroes.data.synthetic import dataset


@pytest.fixture(scope="module")
def leaky_split(tmp_path_factory):
    """Three classes of drawings; test images get a mirrored and a darkened copy filed into train."""
    root = tmp_path_factory.mktemp("mirror")
    dataset.write_dataset(root / "syn", per_class=10, size=96, seed=7, progress=False)
    for extra in [path for path in (root / "syn").iterdir() if path.name not in ("batman", "superman", "deadpool")]:
        for file in extra.rglob("*"):
            file.unlink() if file.is_file() else None
    manifest = scan.scan(root / "syn", progress=False)
    manifest = manifest[manifest["label"].isin(["batman", "superman", "deadpool"])]
    splits = split.make_splits(manifest, 6, 2, 2, seed=0)
    copies = []
    for index, row in enumerate(splits[splits["split"] == "test"].head(2).itertuples()):
        picture = Image.open(row.path).convert("RGB")
        changed = ImageOps.mirror(picture) if index == 0 else picture.point(lambda value: int(value * 0.6))
        target = Path(row.path).with_name(f"copy_{index}.png")
        changed.save(target)
        copies.append({**row._asdict(), "path": str(target), "split": "train", "sha256": f"copy{index}"})
    copies = pandas.DataFrame(copies).drop(columns="Index")
    return pandas.concat([splits, copies], ignore_index=True), copies


def test_mirrored_and_relit_copies_across_splits_are_found(leaky_split):
    splits, copies = leaky_split
    found = mirror_leakage.mirror_leaks(splits, progress=False)
    assert set(copies["path"]) <= set(found["path_a"]) | set(found["path_b"])
    mirrored = found[(found["path_a"] == copies["path"][0]) | (found["path_b"] == copies["path"][0])]
    assert mirrored["mirrored"].all() and (mirrored["correlation"] > 0.99).all()
    assert len(found) == 2  # nothing else: distinct drawings stay below the threshold


def test_the_hash_check_misses_the_mirrored_copy(leaky_split):
    splits, copies = leaky_split
    leaks = leakage.find_leaks(splits, progress=False)
    assert copies["path"][0] not in set(leaks["path_a"]) | set(leaks["path_b"])


def test_describe_says_how_many_and_what_they_may_be():
    empty = mirror_leakage.mirror_leaks(pandas.DataFrame(columns=["path", "label", "split"]), progress=False)
    assert "no train/val/test pair" in mirror_leakage.describe(empty)
