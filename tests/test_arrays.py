"""Decoded-array cache and batches: decoded once, reused, and every example keeps its file path."""

import hashlib

import numpy
import pandas
import pytest
from PIL import Image

from heroes.data.arrays import class_names_of, load_split_arrays


@pytest.fixture()
def split_frame(tmp_path):
    """Twelve small images of distinct flat colours, with a split and labels."""
    rows = []
    for index in range(12):
        label = ("superman", "batman", "Wonder Woman")[index % 3]
        path = tmp_path / "raw" / label / f"{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Wide images with a coloured centre: the centre crop must keep the centre colour.
        image = Image.new("RGB", (90, 60), (0, 0, 0))
        image.paste((index * 20, 255 - index * 20, 7), (15, 0, 75, 60))
        image.save(path)
        rows.append({"path": str(path), "label": label, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "split": ("train", "train", "val", "test")[index % 4]})
    return pandas.DataFrame(rows)


def test_arrays_keep_paths_labels_and_centre_crop(split_frame, tmp_path):
    sets = load_split_arrays(split_frame, size=32, cache_dir=tmp_path / "cache", progress=False)
    assert set(sets) == {"train", "val", "test"}
    assert sets["train"].class_names == ("batman", "superman", "Wonder Woman")
    for image_set in sets.values():
        assert image_set.images.dtype == numpy.uint8 and image_set.images.shape[1:] == (32, 32, 3)
        for image, label, path in zip(image_set.images, image_set.labels, image_set.paths):
            row = split_frame.set_index("path").loc[path]
            assert image_set.class_names[label] == row["label"]
            index = int(path.rsplit("/", 1)[1][:2])
            # The crop is centred: no black border from the 90x60 original survives.
            numpy.testing.assert_allclose(image.reshape(-1, 3).mean(0), (index * 20, 255 - index * 20, 7), atol=3)


def test_second_load_comes_from_the_cache(split_frame, tmp_path, monkeypatch):
    first = load_split_arrays(split_frame, size=24, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("arrays-24px-*.npy"))) == 1
    monkeypatch.setattr("heroes.data.arrays._decode_all", lambda *args: pytest.fail("decoded again"))
    second = load_split_arrays(split_frame, size=24, cache_dir=tmp_path / "cache", progress=False)
    numpy.testing.assert_array_equal(first["test"].images, second["test"].images)
    assert first["test"].paths == second["test"].paths


def test_study_classes_come_in_the_study_order():
    frame = pandas.DataFrame({"label": ["not_a_hero", "deadpool", "batman"]})
    assert class_names_of(frame) == ("batman", "deadpool", "not_a_hero")
