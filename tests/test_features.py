"""Frozen-feature cache: deterministic views, reuse without recomputation, bf16 extraction close to float32."""

import hashlib

import keras
import numpy
import pytest

from heroes.data import augment
from heroes.data.arrays import ImageSet
from heroes.models import build, surgery
from heroes.training.cached import features


def coloured_set(count, size, seed, class_names=("batman", "not_a_hero")) -> ImageSet:
    """Noisy images whose mean colour depends on the class, so a small model can learn them."""
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(count) % len(class_names)
    colours = numpy.array([[200, 40, 40], [40, 40, 200], [40, 200, 40]])[labels]
    noise = rng.normal(0, 40, (count, size, size, 3))
    images = numpy.clip(colours[:, None, None, :] + noise, 0, 255).astype("uint8")
    sha256 = tuple(hashlib.sha256(image.tobytes()).hexdigest() for image in images)
    paths = tuple(f"raw/{class_names[label]}/{seed}-{index:03d}.png" for index, label in enumerate(labels))
    return ImageSet(images, labels.astype("int64"), paths, sha256, tuple(class_names))


@pytest.fixture(scope="module")
def vgg_prefix():
    keras.utils.set_random_seed(0)
    model = build.build_model("vgg16", 2, 32, weights=None)
    prefix, _ = surgery.split_at_first_trainable(model)
    return prefix


def test_views_are_deterministic_and_view_zero_is_the_image():
    image = coloured_set(1, 48, 0).images[0]
    sha = "ab" * 32
    assert augment.augment_view(image, sha, 0) is image
    first, again = augment.augment_view(image, sha, 3), augment.augment_view(image, sha, 3)
    numpy.testing.assert_array_equal(first, again)
    assert first.shape == image.shape and first.dtype == numpy.uint8
    others = [augment.augment_view(image, sha, view) for view in (1, 2, 4)]
    assert all(not numpy.array_equal(first, other) for other in others)


def test_second_extraction_reuses_the_cache(vgg_prefix, tmp_path, monkeypatch):
    images = coloured_set(10, 32, 1)
    store = features.open_store(vgg_prefix, "vgg16", "random (weights=None)", 32, "float32", tmp_path)
    features.ensure_features(vgg_prefix, store, images, views=(0, 1), progress=False)
    assert (store.computed, store.reused) == (20, 0)
    first = store.load_many(images.sha256, [1] * len(images))
    direct = numpy.asarray(vgg_prefix.predict_on_batch(augment.view_batch(images.images, images.sha256, [1] * 10)))
    numpy.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-5)

    monkeypatch.setattr(features, "run_prefix", lambda *args: pytest.fail("features computed again"))
    again = features.open_store(vgg_prefix, "vgg16", "random (weights=None)", 32, "float32", tmp_path)
    assert again.directory == store.directory
    features.ensure_features(vgg_prefix, again, images, views=(0, 1), progress=False)
    assert (again.computed, again.reused) == (0, 20)
    numpy.testing.assert_array_equal(again.load_many(images.sha256, [1] * len(images)), first)


def test_other_weights_get_another_cache_directory(vgg_prefix, tmp_path):
    keras.utils.set_random_seed(1)
    other, _ = surgery.split_at_first_trainable(build.build_model("vgg16", 2, 32, weights=None))
    first = features.open_store(vgg_prefix, "vgg16", "random (weights=None)", 32, "float32", tmp_path)
    second = features.open_store(other, "vgg16", "random (weights=None)", 32, "float32", tmp_path)
    assert first.directory != second.directory


def test_bfloat16_features_are_close_and_stored_in_half_the_bytes(vgg_prefix, tmp_path):
    images = coloured_set(8, 32, 2)
    policy = keras.mixed_precision.global_policy().name
    bf16 = features.bfloat16_prefix(vgg_prefix)
    assert keras.mixed_precision.global_policy().name == policy
    store16 = features.open_store(vgg_prefix, "vgg16", "random", 32, "bfloat16", tmp_path)
    store32 = features.open_store(vgg_prefix, "vgg16", "random", 32, "float32", tmp_path)
    features.ensure_features(bf16, store16, images, progress=False)
    features.ensure_features(vgg_prefix, store32, images, progress=False)
    low, full = store16.load_many(images.sha256, [0] * 8), store32.load_many(images.sha256, [0] * 8)
    assert low.dtype == numpy.float32
    assert numpy.linalg.norm(low - full) / numpy.linalg.norm(full) < 0.03
    sizes = [store.path(images.sha256[0], 0).stat().st_size for store in (store16, store32)]
    assert sizes[0] < 0.6 * sizes[1]


def test_unknown_feature_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match="feature_dtype must be one of"):
        features.resolve_feature_dtype("float16")


def test_auto_extracts_in_bf16_only_where_native_and_the_backbone_gains(monkeypatch):
    from heroes.training import train
    from heroes.training import spec
    from heroes.models.backbones import get_backbone

    assert get_backbone("vgg16").bf16_features and not get_backbone("efficientnet_lite0").bf16_features
    for native in (True, False):
        monkeypatch.setattr(features, "bf16_is_fast", lambda native=native: native)
        for backbone, expected in (("vgg16", "bfloat16" if native else "float32"), ("efficientnet_lite0", "float32")):
            config = train.TrainConfig(backbone=backbone, feature_dtype="auto")
            assert spec.final_config(config).feature_dtype == expected
        assert features.resolve_feature_dtype("bfloat16", bf16_pays=False) == "bfloat16"  # asked for: honoured
