"""Backbone registry: every backbone builds, splits exactly, and keeps its preprocessing through save/load."""

import json

import keras
import numpy
import pytest
import tensorflow

from heroes.errors import UserError
from heroes.models import backbones, build, saving, surgery

SIZE = 32  # the minimum every registered backbone accepts: keeps the whole file quick on two cores


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, and an empty Keras cache, in every test."""
    monkeypatch.setenv("HEROES_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def raw_images(count=2, size=SIZE, seed=0):
    """Raw 0-255 RGB float images, as the models take them."""
    return numpy.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def trainable_names(model):
    return [layer.name for layer in model.layers if layer.trainable_weights]


@pytest.fixture(scope="module")
def vgg16():
    return build.build_model("vgg16", 3, SIZE)


@pytest.fixture(scope="module")
def resnet50():
    return build.build_model("resnet50", 3, SIZE)


def test_registry_lists_the_six_backbones():
    assert set(backbones.list_backbones()) >= {"vgg16", "vgg19", "resnet50", "resnet50v2", "mobilenetv2", "efficientnetb0"}
    for name in backbones.list_backbones():
        spec = backbones.get_backbone(name)
        assert spec.default_size == 224 and spec.min_size == 32


@pytest.mark.parametrize("name", backbones.list_backbones())
def test_every_backbone_builds_predicts_and_splits_exactly(name):
    model = build.build_model(name, 4, SIZE)
    images = raw_images(1)
    probabilities = model(images, training=False).numpy()
    assert probabilities.shape == (1, 4)
    assert not numpy.isnan(probabilities).any()
    numpy.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "backbone must be flat"
    assert build.backbone_of(model) == name
    gradcam = keras.Model(model.input, [model.get_layer(build.gradcam_layer_name(model)).output, model.output])
    feature_map, again = gradcam(images)
    assert len(feature_map.shape) == 4
    numpy.testing.assert_allclose(again.numpy(), probabilities, atol=1e-6)
    for policy in build.POLICIES:
        build.apply_policy(model, policy)
        prefix, suffix = surgery.split_at_first_trainable(model)
        assert not prefix.trainable_weights, f"{name}/{policy}: prefix must be frozen"
        first = build.describe_model(model)["first_trainable_layer"]
        assert first in [layer.name for layer in suffix.layers]
        numpy.testing.assert_allclose(suffix(prefix(images)).numpy(), probabilities, atol=1e-5)
    keras.Model(model.input, model.get_layer(build.gradcam_layer_name(model)).output)  # still connected after splits
    keras.backend.clear_session()


@pytest.mark.parametrize("family", ["vgg16", "vgg19", "resnet50", "resnet_v2", "mobilenet_v2", "efficientnet"])
def test_preprocess_layer_matches_keras_and_survives_serialisation(family):
    images = raw_images(2, 8)
    expected = getattr(keras.applications, family).preprocess_input(images.copy())
    layer = backbones.Preprocess(family, backbone="x")
    numpy.testing.assert_allclose(layer(images).numpy(), expected, atol=1e-4)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert (revived.family, revived.backbone) == (family, "x")
    numpy.testing.assert_allclose(revived(images).numpy(), expected, atol=1e-4)


def test_vgg_preprocessing_is_caffe_bgr_inside_the_model(vgg16):
    pixel = numpy.array([[[[255.0, 0.0, 0.0]]]], dtype="float32")  # pure red, RGB
    out = vgg16.get_layer(backbones.PREPROCESS_LAYER)(pixel).numpy()[0, 0, 0]
    numpy.testing.assert_allclose(out, [0.0 - 103.939, 0.0 - 116.779, 255.0 - 123.68], atol=1e-3)


def test_vgg16_study_trains_exactly_fc1_fc2_and_the_new_output(vgg16):
    build.apply_policy(vgg16, "study")
    assert trainable_names(vgg16) == ["fc1", "fc2", "predictions"]
    assert vgg16.get_layer("fc1").units == 4096 and vgg16.get_layer("fc2").units == 4096
    assert vgg16.get_layer("predictions").units == 3
    prefix, suffix = surgery.split_at_first_trainable(vgg16)
    assert prefix.output.shape[1:] == (512,)  # flattened block5 output at 32 px: the cut is right before fc1
    assert [layer.name for layer in suffix.layers][1:] == ["fc1", "fc2", "predictions"]


def test_vgg16_linear_probe_and_full(vgg16):
    build.apply_policy(vgg16, "linear_probe")
    assert trainable_names(vgg16) == ["predictions"]
    build.apply_policy(vgg16, "full")
    assert trainable_names(vgg16) == [layer.name for layer in vgg16.layers if layer.weights]
    build.apply_policy(vgg16, "study")


def test_resnet50_study_trains_only_its_last_residual_block_and_the_output(resnet50):
    build.apply_policy(resnet50, "study")
    names = trainable_names(resnet50)
    assert names[-1] == "predictions"
    assert all(name.startswith("conv5_block3_") for name in names[:-1])
    assert "conv5_block3_1_conv" in names and "conv5_block3_3_conv" in names
    assert "conv5_block2_3_conv" not in names and "conv5_block1_0_conv" not in names
    assert not [layer for layer in resnet50.layers if isinstance(layer, keras.layers.BatchNormalization)
                and layer.trainable]
    prefix, _ = surgery.split_at_first_trainable(resnet50)
    assert prefix.output is resnet50.get_layer("conv5_block2_out").output  # feeds both branches of conv5_block3


def test_resnet50_batchnorm_stays_in_inference_mode_while_training(resnet50):
    build.apply_policy(resnet50, "study")
    images = raw_images(4)
    numpy.testing.assert_allclose(
        resnet50(images, training=True).numpy(), resnet50(images, training=False).numpy(), atol=1e-6
    )
    batchnorm = resnet50.get_layer("conv5_block3_1_bn")
    frozen_conv, trained_conv = resnet50.get_layer("conv5_block2_3_conv"), resnet50.get_layer("conv5_block3_1_conv")
    before = [variable.numpy().copy() for variable in (batchnorm.moving_mean, frozen_conv.kernel, trained_conv.kernel)]
    with tensorflow.GradientTape() as tape:  # one eager SGD step: much quicker than compiling fit on two cores
        predictions = resnet50(images, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(numpy.array([0, 1, 2, 0]), predictions))
    gradients = tape.gradient(loss, resnet50.trainable_weights)
    keras.optimizers.SGD(0.1).apply(gradients, resnet50.trainable_weights)
    numpy.testing.assert_array_equal(batchnorm.moving_mean.numpy(), before[0])
    numpy.testing.assert_array_equal(frozen_conv.kernel.numpy(), before[1])
    assert not numpy.array_equal(trained_conv.kernel.numpy(), before[2])


def test_resnet50_linear_probe_and_full(resnet50):
    build.apply_policy(resnet50, "linear_probe")
    assert trainable_names(resnet50) == ["predictions"]
    build.apply_policy(resnet50, "full")
    weighted = [layer.name for layer in resnet50.layers
                if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert trainable_names(resnet50) == weighted
    build.apply_policy(resnet50, "study")


def test_dropout_stays_on_the_trainable_side_of_the_cut():
    model = build.build_model("mobilenetv2", 3, SIZE, policy="linear_probe", dropout=0.5)
    prefix, suffix = surgery.split_at_first_trainable(model)
    assert prefix.output is model.get_layer("avg_pool").output
    assert "head_dropout" in [layer.name for layer in suffix.layers]


def test_describe_model(vgg16):
    build.apply_policy(vgg16, "study")
    summary = build.describe_model(vgg16)
    assert summary["backbone"] == "vgg16" and summary["first_trainable_layer"] == "fc1"
    assert summary["trainable_parameters"] == 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 3 + 3
    assert summary["total_parameters"] == summary["trainable_parameters"] + summary["non_trainable_parameters"]
    json.dumps(summary)


def test_save_and_load_keep_predictions_and_class_names(tmp_path):
    model = build.build_model("mobilenetv2", 3, SIZE, policy="study")
    surgery.split_at_first_trainable(model)  # as the feature cache does before saving: layers gain a second node
    images = raw_images(3)
    expected = model(images).numpy()
    path = saving.save_model(model, tmp_path / "run" / "model.keras", ["batman", "superman", "not_a_hero"])
    assert saving.class_names_path(path).name == "model.class_names.json"
    loaded, class_names = saving.load_model(path)
    assert class_names == ["batman", "superman", "not_a_hero"]
    numpy.testing.assert_allclose(loaded(images).numpy(), expected, atol=1e-6)
    assert build.backbone_of(loaded) == "mobilenetv2"
    assert [layer.name for layer in loaded.layers if layer.trainable_weights] == trainable_names(model)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.class_names.json", "model.keras"]


def test_save_and_load_errors(tmp_path, vgg16):
    with pytest.raises(UserError, match="3 distinct class names"):
        saving.save_model(vgg16, tmp_path / "m.keras", ["a", "b"])
    with pytest.raises(UserError, match=r"\.keras"):
        saving.save_model(vgg16, tmp_path / "m.h5", ["a", "b", "c"])
    with pytest.raises(UserError, match="model file not found"):
        saving.load_model(tmp_path / "missing.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    (tmp_path / "broken.class_names.json").write_text('{"class_names": ["a", "b", "c"]}')
    with pytest.raises(UserError, match="broken.keras"):
        saving.load_model(tmp_path / "broken.keras")


def test_bad_input_is_one_clear_user_error():
    with pytest.raises(UserError, match="known: .*resnet50.*vgg16"):
        build.build_model("resnet18", 2)
    with pytest.raises(ValueError, match="known: study, linear_probe, full"):
        build.build_model("vgg16", 2, SIZE, policy="everything")
    with pytest.raises(UserError, match="minimum of 32 px"):
        build.build_model("resnet50", 2, 16)
    with pytest.raises(UserError, match="at least 2"):
        build.build_model("vgg16", 1, SIZE)
    with pytest.raises(UserError, match="dropout"):
        build.build_model("vgg16", 2, SIZE, dropout=1.0)


def test_create_model_returns_the_model_and_where_its_weights_came_from():
    model, choice = build.create_model("vgg16", 3, 32, weights=None)
    assert choice.random and choice.source == "random (weights=None)"
    assert model.output_shape == (None, 3) and build.backbone_of(model) == "vgg16"
    again, same = build.create_model("vgg16", 3, 32, weights=choice)  # a choice passes through, resolved once
    assert same is choice
