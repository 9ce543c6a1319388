"""export: the SavedModel (and ONNX, where its converter is installed) predicts what the Keras model predicts."""

import importlib.util
import json
import shutil

import keras
import numpy
import pytest

from heroes import cli
from heroes.modeling import build, export, saving

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
