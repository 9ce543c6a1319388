"""Weights: None, local files (checked, never half-loaded), the Keras cache, offline ImageNet and the auto fallback."""

import dataclasses
import hashlib
import io
import re
import warnings

import h5py
import keras
import numpy
import pytest

from heroes.errors import UserError
from heroes.models import backbones, build, weights

SIZE = 32


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network and an empty Keras cache unless a test says otherwise."""
    monkeypatch.setenv("HEROES_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def raw_images(count=2, size=SIZE, seed=0):
    return numpy.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def save_legacy_h5(model, path):
    """Write weights in the legacy HDF5 layout of the official keras.applications files."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


def truncated_copy(source, target):
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def features(model, layer_name):
    return keras.Model(model.input, model.get_layer(layer_name).output)


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stock_vgg16():
    """A stock keras.applications VGG16 without its classifier, random weights, 32 px."""
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))


def test_none_is_random():
    for value in (None, "none", "random"):
        choice = weights.resolve_weights("vgg16", value)
        assert choice.random and choice.source == weights.RANDOM_NONE and choice.path is None
    assert weights.RANDOM_UNAVAILABLE == "random (ImageNet unavailable)"


def test_missing_or_wrong_kind_of_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=re.escape(str(tmp_path / "nowhere.h5"))):
        weights.resolve_weights("vgg16", tmp_path / "nowhere.h5")
    (tmp_path / "model.keras").write_bytes(b"zip")
    with pytest.raises(UserError, match="load_model"):
        weights.resolve_weights("vgg16", tmp_path / "model.keras")


def test_weights_of_a_saved_heroes_model_load_with_equal_predictions(tmp_path):
    source = build.build_model("vgg16", 3, SIZE)
    path = tmp_path / "source.weights.h5"
    source.save_weights(path)
    choice = build.choose_weights("vgg16", path, SIZE)
    assert choice.source == f"file {path}" and not choice.random and not choice.imagenet
    loaded = build.build_model("vgg16", 3, SIZE, weights=choice)
    images = raw_images()
    numpy.testing.assert_allclose(loaded(images).numpy(), source(images).numpy(), atol=1e-6)


@pytest.mark.parametrize("file_name", ["backbone.weights.h5", "backbone.h5"])
def test_a_stock_backbone_file_fills_the_backbone(tmp_path, stock_vgg16, file_name):
    path = tmp_path / file_name
    stock_vgg16.save_weights(path) if file_name.endswith(".weights.h5") else save_legacy_h5(stock_vgg16, path)
    model = build.build_model("vgg16", 3, SIZE, weights=path)
    images = raw_images()
    expected = stock_vgg16(keras.applications.vgg16.preprocess_input(images.copy())).numpy()
    numpy.testing.assert_allclose(features(model, "block5_pool")(images).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_a_truncated_file_is_reported_with_its_path_and_never_loaded(tmp_path):
    source = build.build_model("mobilenetv2", 3, SIZE)
    good = tmp_path / "good.weights.h5"
    source.save_weights(good)
    bad = truncated_copy(good, tmp_path / "bad.weights.h5")
    with pytest.raises(UserError, match=re.escape(str(bad)) + ".*truncated or corrupt"):
        build.build_model("mobilenetv2", 3, SIZE, weights=bad)


def test_a_file_from_another_architecture_is_refused(tmp_path):
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*another architecture"):
        build.build_model("vgg16", 3, SIZE, weights=path)


def test_official_file_names_are_checked_against_the_published_hash(tmp_path, stock_vgg16):
    path = save_legacy_h5(stock_vgg16, tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    with pytest.raises(UserError, match=re.escape(str(path)) + ".*md5 .* differs from the published 6d6bbae1"):
        weights.resolve_weights("vgg16", path)
    with pytest.raises(UserError, match="ImageNet file for vgg16, not for resnet50"):
        weights.resolve_weights("resnet50", path)


def test_auto_offline_with_an_empty_cache_is_random_with_a_warning():
    with pytest.warns(UserWarning, match=re.escape(weights.RANDOM_UNAVAILABLE)):
        choice = build.choose_weights("vgg16", "auto", SIZE)
    assert choice.random and choice.source == weights.RANDOM_UNAVAILABLE and choice.path is None
    with pytest.warns(UserWarning, match=re.escape(weights.RANDOM_UNAVAILABLE)):
        model = build.build_model("mobilenetv2", 2, SIZE, weights="auto")
    assert model.output_shape == (None, 2)


def test_imagenet_offline_is_a_user_error_naming_the_files_and_the_remedy():
    with pytest.raises(UserError) as caught:
        build.choose_weights("vgg16", "imagenet", 224)
    message = str(caught.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "weights='/path/to/" in message and str(weights.keras_cache_dir()) in message
    assert "\n" not in message


def test_imagenet_from_the_keras_cache_loads_offline():
    stock = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    official = weights.official_file("mobilenetv2", False, SIZE)
    assert official.name == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    weights.keras_cache_dir().mkdir(parents=True)
    save_legacy_h5(stock, weights.keras_cache_dir() / official.name)
    for value in ("auto", "imagenet"):
        choice = build.choose_weights("mobilenetv2", value, SIZE)
        assert choice.source == "imagenet" and choice.imagenet and choice.path.parent == weights.keras_cache_dir()
    model = build.build_model("mobilenetv2", 3, SIZE, weights=choice)
    images = raw_images()
    expected = stock(keras.applications.mobilenet_v2.preprocess_input(images.copy())).numpy()
    numpy.testing.assert_allclose(features(model, "out_relu")(images).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_a_corrupt_cached_file_is_removed_and_auto_falls_back(tmp_path):
    official = weights.official_file("vgg16", False)
    cached = weights.keras_cache_dir() / official.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    with pytest.warns(UserWarning) as record:
        choice = weights.resolve_weights("vgg16", "auto")
    assert choice.source == weights.RANDOM_UNAVAILABLE
    assert not cached.exists()
    assert any("removing corrupt cached weights" in str(item.message) for item in record)


class FlakyResponse(io.BytesIO):
    """A download that delivers ``payload`` and then, optionally, breaks."""

    def __init__(self, payload, fail=False):
        super().__init__(payload)
        self.fail = fail

    def read(self, *args):
        chunk = super().read(*args)
        if self.fail and not chunk:
            raise TimeoutError("connection reset mid-download")
        return chunk

    def __exit__(self, *exc):
        self.close()


def test_a_failed_or_bad_download_leaves_nothing_in_the_cache(monkeypatch):
    monkeypatch.delenv("HEROES_OFFLINE")
    for response in (FlakyResponse(b"x" * 5000, fail=True), FlakyResponse(b"not the published file")):
        monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, response=response, **k: response)
        with pytest.raises(UserError, match="download of https://storage.googleapis.com/.*failed"):
            weights.resolve_weights("vgg16", "imagenet")
        assert not any(weights.keras_cache_dir().iterdir())


def test_a_good_download_lands_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("HEROES_OFFLINE")
    stock = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    payload = save_legacy_h5(stock, tmp_path / "payload.h5").read_bytes()
    seen = []

    def fake_urlopen(request, timeout):
        seen.append((request.full_url, timeout))
        return FlakyResponse(payload)

    monkeypatch.setattr(weights.urllib.request, "urlopen", fake_urlopen)
    choice = weights.resolve_weights("mobilenetv2", "auto", image_size=SIZE)
    assert choice.imagenet and choice.path.read_bytes() == payload
    assert seen[0][0].endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    assert seen[0][1] == weights.DEFAULT_TIMEOUT_S
    assert [p.name for p in weights.keras_cache_dir().iterdir()] == [choice.path.name]


def test_efficientnet_official_file_matches_keras_imagenet_model(tmp_path, monkeypatch):
    """EfficientNet adds a Rescaling only for weights="imagenet"; the flat model folds it into its Normalization."""
    stock = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    normalization = next(layer for layer in stock.layers if isinstance(layer, keras.layers.Normalization))
    normalization.set_weights([numpy.array([0.485, 0.456, 0.406]), numpy.array([0.229, 0.224, 0.225]) ** 2,
                               numpy.array(0)])
    path = save_legacy_h5(stock, tmp_path / "efficientnetb0_notop.h5")
    table = weights._OFFICIAL["efficientnetb0"]
    monkeypatch.setitem(table, False, dataclasses.replace(table[False], file_hash=md5(path)))
    model = build.build_model("efficientnetb0", 3, SIZE, weights=path)

    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(path))
    reference = keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3))
    images = raw_images()
    numpy.testing.assert_allclose(
        features(model, "top_activation")(images).numpy(), reference(images).numpy(), rtol=1e-4, atol=1e-4
    )


def test_vgg_keeps_the_imagenet_fc1_fc2_when_the_file_has_them(tmp_path):
    """At the backbone's native size a classifier file fills fc1/fc2; the new output is never copied."""
    backbones.register_backbone("tiny_vgg16", family="vgg16", gradcam_layer="block5_conv3", head="dense",
                             dense_units=(4096, 4096), default_size=SIZE)(backbones._vgg16)
    try:
        stock = keras.applications.VGG16(include_top=True, weights=None, input_shape=(SIZE, SIZE, 3))
        path = save_legacy_h5(stock, tmp_path / "with_top.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = build.build_model("tiny_vgg16", 3, SIZE, weights=path)
        for name in ("block1_conv1", "block5_conv3", "fc1", "fc2"):
            for ours, theirs in zip(model.get_layer(name).get_weights(), stock.get_layer(name).get_weights()):
                numpy.testing.assert_array_equal(ours, theirs)
        assert model.get_layer("predictions").get_weights()[0].shape == (4096, 3)
        assert [layer.name for layer in model.layers if layer.trainable_weights] == ["fc1", "fc2", "predictions"]
        other_size = build.build_model("tiny_vgg16", 3, 2 * SIZE, weights=path)  # fc1 no longer fits: both fresh
        kernel = other_size.get_layer("block1_conv1").kernel
        numpy.testing.assert_array_equal(kernel, stock.get_layer("block1_conv1").kernel)
        assert not numpy.array_equal(other_size.get_layer("fc2").kernel, stock.get_layer("fc2").kernel)
    finally:
        backbones.unregister_backbone("tiny_vgg16")
