"""Small pictures, dirty synthetic sets and a tiny saved model shared by the tests."""

import hashlib
import os
from pathlib import Path

import numpy
from PIL import Image

from heroes.data import scan
from heroes.data.synthetic import dataset


def picture(seed: int, size=(96, 96)) -> Image.Image:
    """A smooth random picture: distinct seeds give pictures far apart in every hash."""
    rng = numpy.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(6, 6, 3), dtype=numpy.uint8)
    return Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)


def save(image: Image.Image, path: Path, image_format="PNG", **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, image_format, **options)
    return path


def dirty_set(root: Path, per_class=40, size=96, seed=0):
    """A dirty embedded set with truth, and its scan: ``(images folder, manifest, truth path)``."""
    images, truth = root / "raw" / "superheroes", root / "raw" / "truth.csv"
    dataset.write_dataset(images, per_class=per_class, size=size, seed=seed, dirt=True, truth_path=truth,
                            progress=False)
    return images, scan.scan(images, progress=False), truth


def tree_digest(root: Path) -> dict:
    """Every path under ``root`` with its bytes' sha256, size, mtime and mode."""
    state = {}
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder) / name
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            state[path.relative_to(root).as_posix()] = (digest, info.st_size, info.st_mtime_ns, info.st_mode)
    return state


def tiny_model(path: Path, class_names) -> Path:
    """A softmax classifier of 8 px RGB images into ``class_names``, saved at ``path`` in a second or two."""
    import keras

    from heroes.models import saving

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(len(class_names), activation="softmax")(keras.layers.Flatten()(inputs))
    return saving.save_model(keras.Model(inputs, outputs), path, list(class_names))
