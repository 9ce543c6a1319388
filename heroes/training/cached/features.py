"""Frozen-feature cache: run a model's frozen prefix once per image (and augmented view), keep the outputs on disk.

Layout: ``data/processed/features/<backbone>-<weights>-<size>px-<dtype>-<cut>-<fingerprint>/`` holds ``meta.json``
and one ``.npy`` per (image sha256, view): ``ab/<sha256>-v0.npy`` for the original image, and
``ab/<sha256>-<augment tag>-v<k>.npy`` for augmented view ``k``. The fingerprint hashes the prefix's layer
types and weight values, so random initialisations with different seeds never share features, while every run
with the same ImageNet weights does. float32 features are stored as float32; bfloat16 features as their raw
16 bits (half the size; a VGG16 image at 224 px is 98 KiB in float32, a ResNet50 conv4 map 784 KiB).
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import ml_dtypes
import numpy

from heroes import paths
from heroes.data.augment import AUGMENT_SPEC, AUGMENT_TAG, view_batch
from heroes.errors import UserError
from heroes.machine import bf16_is_fast
from heroes.io import atomic_path, write_json
from heroes.progress import bar

FEATURE_DTYPES = ("float32", "bfloat16", "auto")
EXTRACT_BATCH = 32


def resolve_feature_dtype(name: str, bf16_pays: bool = True) -> str:
    """``float32`` | ``bfloat16``; ``auto`` picks bfloat16 only where the hardware runs it natively and the backbone
    extracts faster in it (``bf16_pays``: its ``BackboneSpec.bf16_features``)."""
    if name not in FEATURE_DTYPES:
        raise UserError(f"feature_dtype must be one of {', '.join(FEATURE_DTYPES)}, not {name!r}")
    if name == "auto":
        return "bfloat16" if bf16_pays and bf16_is_fast() else "float32"
    return name


def bfloat16_prefix(prefix: keras.Model) -> keras.Model:
    """A copy of ``prefix`` computing in ``mixed_bfloat16`` (float32 weights, bf16 maths), same weights.

    Layers before the first layer with weights (the preprocessing) keep their dtype: the caffe mean
    subtraction on 0-255 values would lose a unit of precision in bf16 for no speed gain. Features differ from
    float32 by ~0.7% (relative L2, VGG16 and ResNet50). Only worth it where ``bf16_is_fast()``: on an AVX2-only
    CPU oneDNN emulates bf16 and VGG16 at 224 px runs no faster (benchmarks/feature_benchmark.py).
    """
    first_weighted = next(index for index, layer in enumerate(prefix.layers) if layer.weights)
    keep = {id(layer) for layer in prefix.layers[:first_weighted]}

    def clone(layer):
        config = layer.get_config()
        if id(layer) not in keep:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(prefix, clone_function=clone)
    copy.set_weights(prefix.get_weights())
    return copy


def prefix_fingerprint(prefix: keras.Model) -> str:
    """Hash of the prefix's layer types, weight shapes and weight values: same hash, same features."""
    digest = hashlib.sha256(repr((prefix.input_shape, prefix.output_shape)).encode())
    for layer in prefix.layers:
        digest.update(type(layer).__name__.encode())
        for weight in layer.weights:
            value = numpy.ascontiguousarray(weight.numpy())
            digest.update(f"{value.shape}{value.dtype}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "unknown"


@dataclass
class FeatureStore:
    """One cache directory: the prefix outputs of one (backbone, weights, size, dtype, cut), by (sha256, view)."""

    directory: Path
    dtype: str
    computed: int = 0
    reused: int = 0
    meta: dict = field(default_factory=dict)

    def path(self, sha256: str, view: int) -> Path:
        name = f"{sha256}-v0.npy" if view == 0 else f"{sha256}-{AUGMENT_TAG}-v{view}.npy"
        return self.directory / sha256[:2] / name

    def save(self, sha256: str, view: int, value: numpy.ndarray) -> None:
        stored = value.astype(ml_dtypes.bfloat16).view(numpy.uint16) if self.dtype == "bfloat16" else value
        with atomic_path(self.path(sha256, view)) as temporary:
            with open(temporary, "wb") as handle:
                numpy.save(handle, numpy.ascontiguousarray(stored.astype(_storage_dtype(self.dtype))))

    def load(self, sha256: str, view: int) -> numpy.ndarray:
        """The stored value in its storage dtype (bfloat16 comes back as ``ml_dtypes.bfloat16``)."""
        path = self.path(sha256, view)
        try:
            value = numpy.load(path)
        except (OSError, ValueError) as error:
            raise UserError(f"feature cache file {path} is unreadable ({error}); delete {self.directory}") from None
        return value.view(ml_dtypes.bfloat16) if self.dtype == "bfloat16" else value

    def load_many(self, sha256s, views) -> numpy.ndarray:
        """float32 array of the stored features of ``sha256s[i]`` as view ``views[i]``."""
        return numpy.stack([self.load(sha, int(view)) for sha, view in zip(sha256s, views)]).astype("float32")


def _storage_dtype(dtype: str):
    return numpy.uint16 if dtype == "bfloat16" else numpy.float32


def open_store(prefix, backbone, weights_source, image_size, dtype, cache_dir=None) -> FeatureStore:
    """The store for this prefix, created with its ``meta.json`` when new."""
    cut = prefix.layers[-1].name  # the layer whose output is cached: flatten (VGG), conv4_block6_out (ResNet50)
    fingerprint = prefix_fingerprint(prefix)
    name = f"{_slug(backbone)}-{_slug(weights_source)}-{image_size}px-{dtype}-{_slug(cut)}-{fingerprint}"
    directory = Path(cache_dir or paths.PROCESSED / "features") / name
    meta = {
        "backbone": backbone, "weights": weights_source, "image_size": image_size, "dtype": dtype, "cut": cut,
        "fingerprint": fingerprint, "feature_shape": list(prefix.output_shape[1:]), "augment": AUGMENT_SPEC,
        "augment_tag": AUGMENT_TAG,
    }
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        write_json(meta_path, meta)
    return FeatureStore(directory, dtype, meta=meta)


def run_prefix(prefix, batch: numpy.ndarray) -> numpy.ndarray:
    """One forward pass of the frozen prefix (a separate function so tests can spy on recomputation)."""
    return numpy.asarray(prefix.predict_on_batch(batch))


def ensure_features(prefix, store: FeatureStore, image_set, views=(0,), progress=True, batch_size=EXTRACT_BATCH):
    """Compute and store every missing (image, view) of ``image_set`` for each view in ``views``; return the store.

    Images with the same sha256 (exact duplicates) are computed once.
    """
    todo, seen = [], set()
    for index, sha in enumerate(image_set.sha256):
        for view in views:
            if (sha, view) in seen:
                continue
            seen.add((sha, view))
            if store.path(sha, view).is_file():
                store.reused += 1
            else:
                todo.append((index, sha, view))
    description = f"features {store.meta.get('backbone', '')} {store.dtype}"
    chunks = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    for chunk in bar(chunks, desc=description, unit="batch", disable=not progress or not chunks):
        indices, shas, chunk_views = zip(*chunk)
        outputs = run_prefix(prefix, view_batch(image_set.images[list(indices)], shas, chunk_views))
        for sha, view, value in zip(shas, chunk_views, outputs):
            store.save(sha, view, value)
        store.computed += len(chunk)
    return store
