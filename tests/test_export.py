"""export: the SavedModel (and ONNX, where its converter is installed) predicts what the Keras model predicts."""

import importlib.util
import json
import shutil

import keras
import numpy
import pytest

from heroes import cli
from heroes.models import build, saving
from heroes.serving import export

CLASS_NAMES = ["batman", "not_a_hero", "superman"]


def saved_model(backbone, folder) -> tuple:
    """A heroes model at 32 px saved with its class names, and raw 0-255 images to feed it."""
    keras.utils.set_random_seed(0)
    model = build.build_model(backbone, len(CLASS_NAMES), 32, weights=None)
    path = saving.save_model(model, folder / "model.keras", CLASS_NAMES)
    return path, model, numpy.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """VGG16: few layers, so tracing a SavedModel takes half MobileNetV2's time (its 130 MB are deleted after)."""
    folder = tmp_path_factory.mktemp("export")
    yield saved_model("vgg16", folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_savedmodel_serve_signature_predicts_like_keras(saved, capsys):
    import tensorflow

    path, model, images = saved
    out = path.with_name("model_savedmodel")
    (out / "variables").mkdir(parents=True)  # an earlier export, which the new one replaces as a whole
    (out / "saved_model.pb").write_bytes(b"stale")
    (out / "variables" / "stale.index").write_bytes(b"stale")
    assert cli.main(["export", "--model", str(path), "--format", "savedmodel"]) == 0
    expected = f"exported savedmodel to {out} (class names in {out / 'class_names.json'})"
    assert capsys.readouterr().out.strip() == expected
    loaded = tensorflow.saved_model.load(str(out))
    assert {"serve", "serving_default"} <= set(loaded.signatures)
    numpy.testing.assert_allclose(loaded.serve(images).numpy(), model.predict(images, verbose=0), atol=1e-5)
    assert json.loads((out / "class_names.json").read_text())["class_names"] == CLASS_NAMES
    assert not (out / "variables" / "stale.index").exists()


def test_a_folder_that_is_not_a_savedmodel_is_never_replaced(saved, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a SavedModel; choose another --out"):
        export.export_model(saved[0], "savedmodel", tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(not export.missing_onnx_packages(), reason="tf2onnx and onnx are installed")
def test_onnx_without_its_converter_is_one_line_and_exit_2(saved, capsys):
    assert cli.main(["export", "--model", str(saved[0]), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ONNX export needs tf2onnx")


@pytest.mark.skipif(bool(export.missing_onnx_packages()) or importlib.util.find_spec("onnxruntime") is None,
                    reason="needs tf2onnx, onnx and onnxruntime")
def test_onnx_runs_in_onnxruntime_like_keras(tmp_path):
    import onnxruntime

    # MobileNetV2 (9 MB): tf2onnx folds every weight into the graph, and VGG16's 130 MB take minutes.
    path, model, images = saved_model("mobilenetv2", tmp_path)
    out = export.export_model(path, "onnx", tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(out))
    got = session.run(None, {session.get_inputs()[0].name: images})[0]
    numpy.testing.assert_allclose(got, model.predict(images, verbose=0), atol=1e-5)
    assert json.loads(export.class_names_file(out, "onnx").read_text())["class_names"] == CLASS_NAMES


def test_a_missing_model_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["export", "--model", str(tmp_path / "absent.keras")]) == 2
    assert capsys.readouterr().err.strip() == f"error: model file not found: {tmp_path / 'absent.keras'}"


@pytest.fixture(scope="module")
def decisive(tmp_path_factory):
    """EfficientNet-Lite0 with its ImageNet weights (offline) and a new head, saved, and drawn pictures to feed it:
    real features give each picture its own probabilities, where an untrained backbone gives every class 1/3."""
    from heroes.config import CLASSES
    from heroes.data.decode import fit_and_crop
    from heroes.data.synthetic.drawing import draw_image

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("tflite")
    model = build.build_model("efficientnet_lite0", len(CLASS_NAMES), 32, weights="imagenet")
    path = saving.save_model(model, folder / "model.keras", CLASS_NAMES)
    rng = numpy.random.default_rng(0)
    images = numpy.stack([fit_and_crop(draw_image(CLASSES[index % len(CLASSES)], rng, 64), 32) for index in range(12)])
    yield path, model.predict(images.astype("float32"), verbose=0), images
    shutil.rmtree(folder, ignore_errors=True)


def test_tflite_predicts_like_keras_on_drawn_images(decisive, capsys):
    path, expected, images = decisive
    assert cli.main(["export", "--model", str(path), "--format", "tflite"]) == 0
    out = path.with_name("model.tflite")
    assert capsys.readouterr().out.strip() == f"exported tflite to {out} (class names in {out}.class_names.json)"
    got = export.tflite_probabilities(out, images)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    numpy.testing.assert_allclose(got, expected, atol=1e-4)
    assert json.loads(export.class_names_file(out, "tflite").read_text())["class_names"] == CLASS_NAMES


@pytest.mark.parametrize("quantize, size_share, tolerance", [("float16", 0.55, 0.01), ("dynamic", 0.3, 0.05)])
def test_quantised_tflite_is_smaller_and_close_to_keras(decisive, quantize, size_share, tolerance):
    path, expected, images = decisive
    out = export.export_model(path, "tflite", quantize=quantize)
    assert out == path.with_name(f"model_{quantize}.tflite")  # beside the float export, never over it
    assert out.stat().st_size < size_share * path.stat().st_size  # float16 halves the weights, dynamic makes them int8
    numpy.testing.assert_allclose(export.tflite_probabilities(out, images), expected, atol=tolerance)
    assert json.loads(export.class_names_file(out, "tflite").read_text())["quantize"] == quantize


def test_quantising_anything_but_tflite_is_one_line_and_exit_2(saved, capsys):
    assert cli.main(["export", "--model", str(saved[0]), "--quantize", "float16"]) == 2
    assert capsys.readouterr().err.strip() == "error: --quantize float16 is for --format tflite only"
