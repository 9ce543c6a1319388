"""Export a saved heroes model for serving: a TensorFlow SavedModel, TFLite (optionally quantised), or ONNX."""

# Every artefact takes what the .keras model takes: float32 raw RGB 0-255, shape (batch, size, size, 3), resized with
# heroes.data.decode.fit_and_crop; preprocessing is inside. The class names are written beside them as JSON.

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy

from heroes.errors import UserError, short_error
from heroes.io import check_output_path, write_json

FORMATS = ("savedmodel", "onnx", "tflite")
KERAS_FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
FILE_SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite"}  # formats written as one file; a SavedModel is a folder
QUANTIZATIONS = ("none", "float16", "dynamic")  # TFLite: float16 weights, or int8 weights with float activations
ONNX_PACKAGES = ("tf2onnx", "onnx")
CLASS_NAMES = "class_names.json"  # inside a SavedModel folder


def default_out(model_path, format: str, quantize: str = "none") -> Path:
    """``run/model.keras`` -> ``run/model_savedmodel/``, ``run/model.onnx``, ``run/model.tflite`` or
    ``run/model_float16.tflite`` (a quantised export never replaces the float one)."""
    model_path = Path(model_path)
    stem = model_path.name.removesuffix(".keras")
    if format == "savedmodel":
        return model_path.with_name(f"{stem}_savedmodel")
    tag = "" if quantize == "none" else f"_{quantize}"
    return model_path.with_name(f"{stem}{tag}{FILE_SUFFIXES[format]}")


def class_names_file(out, format: str) -> Path:
    """Class names file: ``<savedmodel>/class_names.json``, or ``model.onnx`` -> ``model.onnx.class_names.json``
    (``model.tflite`` likewise)."""
    out = Path(out)
    return out / CLASS_NAMES if format == "savedmodel" else out.with_name(out.name + ".class_names.json")


def missing_onnx_packages() -> list:
    """The packages Keras' ONNX export needs that are not importable here."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def _check(format: str, out: Path, model_path: Path, quantize: str) -> None:
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise UserError(f"unknown quantisation {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    if quantize != "none" and format != "tflite":
        raise UserError(f"--quantize {quantize} is for --format tflite only")
    if format == "tflite" and out.suffix != FILE_SUFFIXES["tflite"]:  # the converter refuses any other name
        raise UserError(f"--out for TFLite is a file ending in .tflite, not {out}")
    if format == "onnx" and missing_onnx_packages():
        raise UserError(f"ONNX export needs {' and '.join(missing_onnx_packages())}: "
                        "pip install tf2onnx onnx (and onnxruntime to run the result)")
    from heroes.models.saving import class_names_path

    inputs = (model_path, class_names_path(model_path))
    if format in FILE_SUFFIXES and os.path.isdir(out):
        raise UserError(f"{out} is a folder; --out for {format} is a file such as model{FILE_SUFFIXES[format]}")
    check_output_path(out, inputs=inputs, folder=format == "savedmodel")
    # Replacing is fine for an earlier export, never for some other folder the user pointed at by mistake.
    if format == "savedmodel" and os.path.isdir(out) and not os.path.isfile(out / "saved_model.pb"):
        raise UserError(f"{out} exists and is not a SavedModel; choose another --out")
    if format in FILE_SUFFIXES:
        check_output_path(class_names_file(out, format), inputs=inputs)


def _options(model, format: str, quantize: str) -> dict:
    """Keyword arguments of ``model.export``: ONNX asks a freshly loaded (never called) model for an explicit input
    signature; TFLite takes its converter's quantisation settings."""
    if format == "onnx":
        import keras

        spec = keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32", name=model.inputs[0].name)
        return {"input_signature": [spec]}
    if format == "tflite" and quantize != "none":
        import tensorflow

        options = {"optimizations": [tensorflow.lite.Optimize.DEFAULT]}  # alone: dynamic-range (int8 weights)
        if quantize == "float16":
            options["target_spec"] = {"supported_types": [tensorflow.float16]}
        return options
    return {}


def _publish(temporary: Path, out: Path, workspace: Path) -> None:
    """Move a finished export over ``out``: an earlier export folder is moved aside first (a folder cannot be
    renamed over a non-empty one) and put back if the move in fails; the workspace's removal deletes it."""
    previous = Path(tempfile.mkdtemp(dir=workspace)) / "previous"
    if out.is_dir():
        out.replace(previous)
    try:
        temporary.replace(out)
    except OSError as error:
        if previous.exists():
            previous.replace(out)
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None


def export_model(model_path, format: str = "savedmodel", out=None, quantize: str = "none") -> Path:
    """Export the ``.keras`` model (or run directory) at ``model_path``; return the artefact's path.

    ``quantize`` (TFLite only): "none", "float16" or "dynamic". The artefact appears complete or not at all: it is
    written beside ``out`` and renamed into place.
    """
    from heroes.serving.predict import load_predictor, model_file

    model_path = model_file(model_path)
    out = Path(out) if out is not None else default_out(model_path, format, quantize)
    _check(format, out, model_path, quantize)
    model, class_names = load_predictor(model_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        workspace = Path(tempfile.mkdtemp(prefix=".export.", dir=out.parent))
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
    try:
        temporary = workspace / out.name
        try:
            model.export(str(temporary), format=KERAS_FORMATS[format], verbose=False,
                         **_options(model, format, quantize))
        except Exception as error:  # converters raise anything from ValueError to their own types
            raise UserError(f"cannot export {model_path} as {format}: {short_error(error)}") from None
        # The class names go in (or beside) the finished export before it is moved into place, never after.
        _write_class_names(class_names_file(temporary, format), class_names, model, quantize)
        if format in FILE_SUFFIXES:
            _publish(class_names_file(temporary, format), class_names_file(out, format), workspace)
        _publish(temporary, out, workspace)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return out


def _write_class_names(path: Path, class_names, model, quantize: str) -> None:
    metadata = {"class_names": list(class_names), "input_shape": list(model.input_shape[1:]),
                "input": "float32 raw RGB 0-255, resized with heroes.data.decode.fit_and_crop", "quantize": quantize}
    write_json(path, metadata)


def describe_export(out, format: str, quantize: str = "none") -> str:
    """One line for the command line."""
    what = format if quantize == "none" else f"{format} ({quantize})"
    return f"exported {what} to {out} (class names in {class_names_file(out, format)})"


def tflite_probabilities(path, images) -> numpy.ndarray:
    """Run an exported ``.tflite`` file on raw 0-255 RGB ``images`` (N, size, size, 3): (N, classes) probabilities.

    Uses LiteRT (``ai_edge_litert``) where installed, else TensorFlow's own interpreter, deprecated in its favour.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow

        Interpreter = tensorflow.lite.Interpreter
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = Interpreter(model_path=str(path))
    images = numpy.asarray(images, dtype="float32")
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], images.shape)  # exported with a free batch size
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images)
    interpreter.invoke()
    return numpy.array(interpreter.get_tensor(target["index"]))
