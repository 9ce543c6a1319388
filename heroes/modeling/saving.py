"""Save and load heroes models with their class names beside them."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (same conv5-stage policy) is the reference ResNet here, and every run card names the backbone used.

import json
from pathlib import Path

import keras

from heroes.errors import UserError
from heroes.io import atomic_path, read_text, write_json
from heroes.modeling.build import backbone_of
from heroes.modeling.transfer import short_error


def class_names_path(model_path) -> Path:
    """Sidecar holding the class names of a saved model: ``run/model.keras`` -> ``run/model.class_names.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".class_names.json")


def save_model(model, path, class_names) -> Path:
    """Save ``model`` as ``.keras`` (atomically) and its class names, in output order, beside it."""
    path = Path(path)
    class_names = checked_class_names([str(name) for name in class_names], "save_model")
    if path.suffix != ".keras":
        raise UserError(f"model path must end in .keras: {path}")
    if len(class_names) != model.output_shape[-1] or len(set(class_names)) != len(class_names):
        raise UserError(f"need {model.output_shape[-1]} distinct class names, got {class_names}")
    with atomic_path(path, suffix=".tmp.keras") as temporary:
        model.save(temporary)
    metadata = {"class_names": class_names, "backbone": backbone_of(model), "input_shape": list(model.input_shape[1:])}
    write_json(class_names_path(path), metadata)
    return path


def load_model(path, compile=True) -> tuple[keras.Model, list[str]]:
    """Load a model saved by ``save_model``: (model, class_names); ``UserError`` when either file is missing or bad."""
    path = Path(path)
    sidecar = class_names_path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if not sidecar.is_file():
        raise UserError(f"class names file not found: {sidecar} (save models with heroes.modeling.saving.save_model)")
    class_names = read_class_names(sidecar)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # zip, HDF5 and deserialisation errors all mean "bad file" here
        raise UserError(f"cannot load model {path}: {short_error(error)}") from None
    if len(class_names) != model.output_shape[-1]:
        raise UserError(f"{sidecar} lists {len(class_names)} classes but {path} predicts {model.output_shape[-1]}")
    return model, class_names


def read_class_names(path) -> list[str]:
    """The ``class_names`` of a JSON sidecar: a list of distinct, non-empty strings, else a one-line ``UserError``."""
    text = read_text(path, "class names file")
    try:
        names = json.loads(text).get("class_names")
    except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
        raise UserError(f"class names file {path} is not a JSON object with a \"class_names\" list") from None
    return checked_class_names(names, path)


def checked_class_names(names, source) -> list[str]:
    """``names`` when it is a non-empty list of distinct, non-blank strings (a string is not a list of letters)."""
    valid = isinstance(names, list) and names and all(isinstance(name, str) and name.strip() for name in names)
    if not valid or len(set(names)) != len(names):
        raise UserError(f"{source}: class_names must be a list of distinct class names (strings), "
                        f"got {json.dumps(names)[:80]}")
    return names
