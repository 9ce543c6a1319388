"""Grad-CAM on every backbone (built, reloaded, split-trained), top losses, most-confused pairs and their figures."""

import keras
import numpy
import pandas
import pytest
import tensorflow
from PIL import Image

from heroes.errors import UserError
from heroes.evaluation import explain, predictions
from heroes.models import backbones, build, saving, surgery
from heroes.reporting.plots import gradcam

SIZE = 64  # 2 x 2 feature maps at the last stage of every backbone: the smallest size with any spatial layout
CLASSES = ("batman", "superman", "not_a_hero")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, and an empty Keras cache, in every test."""
    monkeypatch.setenv("HEROES_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture(scope="module")
def built():
    """One model per backbone for the whole file (building dominates the runtime on two cores), freed after it."""
    cache = {}

    def get(name):
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = build.build_model(name, len(CLASSES), SIZE)
        return cache[name]

    yield get
    cache.clear()
    keras.backend.clear_session()


def images(count=2, size=SIZE, seed=0):
    """Raw uint8 RGB images with some structure (a bright square on noise), as the evaluation set holds them."""
    rng = numpy.random.default_rng(seed)
    batch = rng.integers(0, 120, (count, size, size, 3), dtype=numpy.uint8)
    for index in range(count):
        top, left = rng.integers(0, size // 2, 2)
        batch[index, top:top + size // 3, left:left + size // 3] = (230, 200, 40)
    return batch


def assert_heatmaps(heatmaps, count=2, size=SIZE):
    assert heatmaps.shape == (count, size, size)
    assert not numpy.isnan(heatmaps).any()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0


# ---------------------------------------------------------------- Grad-CAM


@pytest.mark.parametrize("name", backbones.list_backbones())
def test_gradcam_on_every_backbone(name, built):
    model = built(name)
    heatmaps, probabilities = explain.gradcam_and_probabilities(model, images())
    assert_heatmaps(heatmaps)
    numpy.testing.assert_allclose(probabilities, model(images().astype("float32"), training=False), atol=1e-5)


def test_gradcam_on_a_model_saved_and_loaded_back(tmp_path, built):
    model = built("mobilenetv2")  # the smallest file: saving ResNet50's 94 MB takes longer than all else here
    path = saving.save_model(model, tmp_path / "model.keras", CLASSES)
    loaded, class_names = saving.load_model(path)
    assert class_names == list(CLASSES)
    for class_index in (None, [0, 2]):
        expected = explain.gradcam(model, images(), class_index)
        numpy.testing.assert_allclose(explain.gradcam(loaded, images(), class_index), expected, atol=1e-4)


def test_gradcam_after_training_the_suffix_of_a_split(built):
    """The Grad-CAM layer (conv5) sits in the suffix, so it has a second call outside the model's graph."""
    model = build.apply_policy(built("resnet50"), "study")
    prefix, suffix = surgery.split_at_first_trainable(model)
    with tensorflow.GradientTape() as tape:  # one eager SGD step on cached-style features, as training does
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            numpy.array([0, 1]), suffix(prefix(images().astype("float32")), training=True)))
    keras.optimizers.SGD(0.1).apply(tape.gradient(loss, suffix.trainable_weights), suffix.trainable_weights)
    assert len(model.get_layer("conv5_block3_out")._inbound_nodes) == 2
    heatmaps, probabilities = explain.gradcam_and_probabilities(model, images())
    assert_heatmaps(heatmaps)
    numpy.testing.assert_allclose(probabilities, model(images().astype("float32")), atol=1e-5)


def test_a_frozen_model_explains_the_same_as_a_trainable_one(built):
    model = built("vgg16")
    expected = explain.gradcam(model, images())
    assert expected.max() > 0, "random VGG16 should give some positive evidence"
    model.trainable = False  # linear probes and loaded models may be fully frozen: the gradient must still flow
    try:
        numpy.testing.assert_allclose(explain.gradcam(model, images()), expected, atol=1e-5)
    finally:
        build.apply_policy(model, "study")


def test_zero_gradients_give_zero_heatmaps_not_nan(built):
    model = built("mobilenetv2")
    head = model.get_layer("predictions")
    saved = head.get_weights()
    head.set_weights([numpy.zeros_like(weight) for weight in saved])  # constant output: every gradient is 0
    try:
        heatmaps, probabilities = explain.gradcam_and_probabilities(model, images())
    finally:
        head.set_weights(saved)
    numpy.testing.assert_array_equal(heatmaps, 0.0)
    numpy.testing.assert_allclose(probabilities, 1 / len(CLASSES), atol=1e-6)


def tiny_model():
    """8 x 8 image -> one channel = red / 255 -> average -> softmax([+w, -w]): class 0 is "red", class 1 "not red"."""
    inputs = keras.Input((8, 8, 3))
    only_red = keras.initializers.Constant([[[[1 / 255], [0], [0]]]])
    red = keras.layers.Conv2D(1, 1, name="red", kernel_initializer=only_red, use_bias=False)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(red)
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[4, -4]]),
                                 bias_initializer="zeros")(pooled)
    return keras.Model(inputs, outputs)


def test_gradcam_points_at_the_evidence_for_the_class():
    image = numpy.zeros((1, 8, 8, 3), dtype=numpy.uint8)
    image[0, :4, :4, 0] = 255  # red top-left quadrant
    model = tiny_model()
    red = explain.gradcam(model, image)  # no heroes backbone: the last 4-D layer ("red") is explained
    assert red[0, :4, :4].min() > 0.5 and red[0, 6:, 6:].max() == 0.0
    numpy.testing.assert_array_equal(explain.gradcam(model, image, class_index=1), 0.0)  # only counter-evidence


def test_gradcam_refuses_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"shape \(N, 8, 8, 3\).*fit_and_crop"):
        explain.gradcam(model, numpy.zeros((1, 16, 16, 3), numpy.uint8))
    with pytest.raises(ValueError, match=r"class_index must be in 0\.\.1"):
        explain.gradcam(model, numpy.zeros((2, 8, 8, 3), numpy.uint8), class_index=[0, 2])
    with pytest.raises(ValueError, match="no layer 'block5_conv3'"):
        explain.gradcam(model, numpy.zeros((1, 8, 8, 3), numpy.uint8), layer_name="block5_conv3")
    nested = keras.Sequential([keras.Input((8, 8, 3)), model])
    with pytest.raises(ValueError, match="nested model"):
        explain.gradcam(nested, numpy.zeros((1, 8, 8, 3), numpy.uint8), layer_name="red")


def test_overlay():
    image = numpy.full((16, 16, 3), 100, numpy.uint8)
    heatmap = numpy.zeros((4, 4))
    heatmap[0, 0] = 1.0
    blended = explain.overlay(image, heatmap, alpha=0.5)  # heatmap resized to the image
    assert blended.shape == (16, 16, 3) and blended.dtype == numpy.uint8
    assert not numpy.array_equal(blended[0, 0], blended[15, 15])  # jet: red at 1, dark blue at 0
    numpy.testing.assert_array_equal(explain.overlay(image, heatmap, alpha=0.0), image)
    with pytest.raises(ValueError, match="alpha"):
        explain.overlay(image, heatmap, alpha=1.5)


# ---------------------------------------------------------------- top losses and confusions


def hand_made_predictions():
    """Five images with known losses: d and e tie (same p(true)), c is confidently wrong, a is right."""
    probabilities = [
        [0.80, 0.15, 0.05],  # a: batman, right
        [0.10, 0.30, 0.60],  # b: superman -> not_a_hero
        [0.00, 0.99, 0.01],  # c: batman -> superman, p(true) = 0
        [0.20, 0.70, 0.10],  # e: batman -> superman
        [0.20, 0.10, 0.70],  # d: batman -> not_a_hero, same loss as e
    ]
    frame = pandas.DataFrame({
        "path": ["a.png", "b.png", "c.png", "e.png", "d.png"], "sha256": list("12345"),
        "label": ["batman", "superman", "batman", "batman", "batman"],
        "predicted": ["batman", "not_a_hero", "superman", "superman", "not_a_hero"],
    })
    for index, name in enumerate(CLASSES):
        frame[f"prob_{name}"] = [row[index] for row in probabilities]
    return frame


def test_top_losses_order_ties_and_values():
    losses = explain.top_losses(hand_made_predictions(), k=4)
    assert list(losses["path"]) == ["c.png", "d.png", "e.png", "b.png"]
    assert numpy.isfinite(losses["loss"]).all() and losses["loss"].iloc[0] > 700  # p(true) = 0 stays finite
    d = losses.iloc[1]
    assert (d["true"], d["predicted"]) == ("batman", "not_a_hero")
    assert d["probability"] == pytest.approx(0.7) and d["probability_true"] == pytest.approx(0.2)
    assert d["loss"] == pytest.approx(-numpy.log(0.2))
    everything = explain.top_losses(predictions.load_predictions(hand_made_predictions()), k=None)
    assert list(everything["path"])[-1] == "a.png" and not everything["correct"].iloc[0]
    with pytest.raises(ValueError, match="k must be"):
        explain.top_losses(hand_made_predictions(), k=0)


def test_most_confused_counts():
    frame = explain.most_confused(hand_made_predictions())
    assert frame.to_dict("list") == {
        "true": ["batman", "batman", "superman"], "predicted": ["superman", "not_a_hero", "not_a_hero"],
        "count": [2, 1, 1], "share_of_true": [0.5, 0.25, 1.0],
    }
    assert list(explain.most_confused(hand_made_predictions(), min_count=2)["count"]) == [2]
    assert explain.most_confused(hand_made_predictions(), min_count=3).empty


# ---------------------------------------------------------------- figures


def write_images(folder, count=3, size=80):
    """PNG files of another size than the models take, so the grid has to decode and crop them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images(count, size, seed=1)):
        paths.append(folder / f"hero_{index}.png")
        Image.fromarray(image[:, : size - 10]).save(paths[-1])  # not square either
    return paths


def assert_png(saved, path):
    assert saved.path == path and path.stat().st_size > 5000
    with Image.open(path) as image:
        assert image.format == "PNG"
    assert not list(path.parent.glob(".*.tmp"))


def test_gradcam_grid(tmp_path, built):
    paths = write_images(tmp_path / "test")
    path = tmp_path / "figures" / "gradcam.png"
    saved = gradcam.gradcam_grid({"VGG16": built("vgg16"), "ResNet50": built("resnet50")}, paths, SIZE,
                                       path, CLASSES, true_labels=["batman", "superman", "not_a_hero"])
    assert_png(saved, path)
    titles = [axis.get_title() for axis in saved.figure.axes]
    assert titles[1].startswith("VGG16\n") and titles[2].startswith("ResNet50\n") and "true: Batman" in titles[0]
    with pytest.raises(ValueError, match="takes 64 px"):
        gradcam.gradcam_grid({"VGG16": built("vgg16")}, paths, 32, path, CLASSES)
    with pytest.raises(UserError, match="missing.png"):
        gradcam.gradcam_grid({"VGG16": built("vgg16")}, [tmp_path / "missing.png"], SIZE, path, CLASSES)


def test_top_losses_grid(tmp_path):
    paths = write_images(tmp_path / "test", count=4)
    frame = hand_made_predictions()
    frame["path"] = [str(path.relative_to(tmp_path)) for path in paths] + ["test/gone.png"]
    path = tmp_path / "top_losses.png"
    saved = gradcam.top_losses_grid(frame, path, k=5, image_root=tmp_path, title="VGG16: top losses")
    assert_png(saved, path)
    titles = [axis.get_title() for axis in saved.figure.axes if axis.get_title()]
    assert len(titles) == 5 and titles[0].startswith("true: Batman\npredicted: Superman 0.99")
