"""Export a saved heroes model for serving: a TensorFlow SavedModel, or ONNX where tf2onnx is installed."""

# Both artefacts take what the .keras model takes: float32 raw RGB 0-255, shape (batch, size, size, 3), resized with
# heroes.data.decode.fit_and_crop; preprocessing is inside. The class names are written beside them as JSON.

import importlib.util
import shutil
import tempfile
from pathlib import Path

from heroes.errors import UserError
from heroes.io import write_json

FORMATS = ("savedmodel", "onnx")
KERAS_FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx"}
ONNX_PACKAGES = ("tf2onnx", "onnx")
CLASS_NAMES = "class_names.json"  # inside a SavedModel folder


def default_out(model_path, format: str) -> Path:
    """``run/model.keras`` -> ``run/model_savedmodel/`` or ``run/model.onnx``."""
    model_path = Path(model_path)
    stem = model_path.name.removesuffix(".keras")
    return model_path.with_name(f"{stem}_savedmodel" if format == "savedmodel" else f"{stem}.onnx")


def class_names_file(out, format: str) -> Path:
    """Class names file: ``<savedmodel>/class_names.json``, or ``model.onnx`` -> ``model.onnx.class_names.json``."""
    out = Path(out)
    return out / CLASS_NAMES if format == "savedmodel" else out.with_name(out.name + ".class_names.json")


def missing_onnx_packages() -> list:
    """The packages Keras' ONNX export needs that are not importable here."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def _check(format: str, out: Path) -> None:
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if format == "onnx" and missing_onnx_packages():
        raise UserError(f"ONNX export needs {' and '.join(missing_onnx_packages())}: "
                        "pip install tf2onnx onnx (and onnxruntime to run the result)")
    # Replacing is fine for an earlier export, never for some other folder the user pointed at by mistake.
    if format == "savedmodel" and out.exists() and not (out / "saved_model.pb").is_file():
        raise UserError(f"{out} exists and is not a SavedModel; choose another --out")
    if format == "onnx" and out.is_dir():
        raise UserError(f"{out} is a folder; --out for ONNX is a file such as model.onnx")


def _signature(model, format: str) -> dict:
    """ONNX export asks a freshly loaded (never called) model for an explicit input signature."""
    if format != "onnx":
        return {}
    import keras

    spec = keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32", name=model.inputs[0].name)
    return {"input_signature": [spec]}


def _publish(temporary: Path, out: Path) -> None:
    """Move a finished export over ``out`` (a folder cannot be renamed over a non-empty one)."""
    if out.is_dir():
        shutil.rmtree(out)
    temporary.replace(out)


def export_model(model_path, format: str = "savedmodel", out=None) -> Path:
    """Export the ``.keras`` model (or run directory) at ``model_path``; return the artefact's path.

    The artefact appears complete or not at all: it is written beside ``out`` and renamed into place.
    """
    from heroes.modeling.predict import load_predictor, model_file

    model_path = model_file(model_path)
    out = Path(out) if out is not None else default_out(model_path, format)
    _check(format, out)
    model, class_names = load_predictor(model_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        temporary = workspace / out.name
        try:
            model.export(str(temporary), format=KERAS_FORMATS[format], verbose=False, **_signature(model, format))
        except Exception as error:  # converters raise anything from ValueError to their own types
            raise UserError(f"cannot export {model_path} as {format}: {' '.join(str(error).split())[:200]}") from None
        _publish(temporary, out)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    _write_class_names(class_names_file(out, format), class_names, model)
    return out


def _write_class_names(path: Path, class_names, model) -> None:
    metadata = {"class_names": list(class_names), "input_shape": list(model.input_shape[1:]),
                "input": "float32 raw RGB 0-255, resized with heroes.data.decode.fit_and_crop"}
    write_json(path, metadata)


def describe_export(out, format: str) -> str:
    """One line for the command line."""
    return f"exported {format} to {out} (class names in {class_names_file(out, format)})"
