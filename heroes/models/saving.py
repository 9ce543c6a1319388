"""Save and load heroes models with their class names beside them."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (last residual block trained) is the reference ResNet here, and every run card names the backbone used.

import codecs
import json
import sys
import zipfile
from pathlib import Path

import keras
import numpy

from heroes.errors import UserError, short_error
from heroes.io import atomic_path, read_text, write_json
from heroes.models.build import backbone_of

# Keras reads config.json and metadata.json whole into memory: a VGG16's config is 20 KB, so 16 MiB is generous.
JSON_MEMBER_LIMIT = 16 * 2**20
# Keras stores members uncompressed (1x) and a re-zipped model's weights deflate to about 1.1x; a zip bomb is 1000x.
EXPANSION_LIMIT = 100
SUM_TOLERANCE = 1e-2  # a float16 or bfloat16 softmax sums to 1 within a few thousandths


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
        raise UserError(f"class names file not found: {sidecar} (save models with heroes.models.saving.save_model)")
    class_names = read_class_names(sidecar)
    check_archive(path)
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # zip, HDF5 and deserialisation errors all mean "bad file" here
        raise UserError(f"cannot load model {path}: {short_error(error)}") from None
    if len(class_names) != model.output_shape[-1]:
        raise UserError(f"{sidecar} lists {len(class_names)} classes but {path} predicts {model.output_shape[-1]}")
    return model, class_names


def check_archive(path) -> None:
    """A one-line ``UserError``, before Keras reads anything, for a file that is no complete zip (empty, text,
    truncated) or whose members would expand past a sane size (a zip bomb): sizes from the zip's directory only."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise UserError(f"cannot load model {path}: {_what_it_holds(path)}") from None
    except OSError as error:
        raise UserError(f"cannot load model {path}: {error.strerror or short_error(error)}") from None
    for member in members:
        if member.filename.endswith(".json") and member.file_size > JSON_MEMBER_LIMIT:
            raise UserError(f"cannot load model {path}: its {member.filename} would expand to "
                            f"{member.file_size / 2**20:,.0f} MiB, over the {JSON_MEMBER_LIMIT // 2**20} MiB a "
                            f"model's description may take (a zip bomb?)")
    expanded, stored = sum(member.file_size for member in members), Path(path).stat().st_size
    if expanded > EXPANSION_LIMIT * stored:
        raise UserError(f"cannot load model {path}: its {stored / 2**20:,.1f} MiB would expand to "
                        f"{expanded / 2**20:,.0f} MiB, over {EXPANSION_LIMIT}x (a zip bomb?)")


def _what_it_holds(path) -> str:
    """What a file that is no complete zip holds, in a few words, from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK"):
        return "it is a truncated or damaged zip archive"
    if not head:
        what = "it is empty (0 bytes)"
    elif head.startswith(b"\x89HDF"):
        what = "it is an HDF5 file (a legacy .h5 model or weights)"
    else:
        what = "it holds text" if _is_text(head) else "it holds other data"
    return f"{what}, not a .keras zip archive"


def _is_text(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # not final: a character cut at 512 bytes is fine
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def as_probabilities(model, name):
    """``model`` when its outputs on two probe images are probabilities (non-negative, each row summing to 1),
    else ``model`` with a softmax added, said on stderr: linear outputs (logits) would read as ">99.9%" for every
    class at once."""
    probe = numpy.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    rows = numpy.asarray(model.predict_on_batch(probe), dtype="float64")
    sums = rows.sum(axis=1)
    if (rows >= 0).all() and numpy.allclose(sums, 1, atol=SUM_TOLERANCE):
        return model
    print(f"warning: {name} outputs scores, not probabilities (a row sums to {sums[0]:.3g}): "
          f"a softmax is added to turn them into probabilities", file=sys.stderr)
    return keras.Model(model.inputs, keras.layers.Softmax(name="added_softmax")(model.outputs[0]), name=model.name)


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
