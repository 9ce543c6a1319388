"""Backbone registry, the study's freeze policies and build_model; resnet50 stands in for the study's ResNet18."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (same conv5-stage policy) is the reference ResNet here, and every run card names the backbone used.

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy

from heroes.errors import UserError
from heroes.io_utils import atomic_path
from heroes.weights import WeightsChoice, resolve_weights

POLICIES = ("study", "linear_probe", "full")
INPUT_NAME = "image"
PREPROCESS_LAYER = "preprocess"
OUTPUT_LAYER = "predictions"
HEAD_LAYERS = ("flatten", "fc1", "fc2", "fc1_dropout", "fc2_dropout", "avg_pool", "head_dropout", OUTPUT_LAYER)
# ImageNet std of RGB, from keras/src/applications/efficientnet.py (IMAGENET_STDDEV_RGB).
_EFFICIENTNET_STDDEV_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="heroes")
class Preprocess(keras.layers.Layer):
    """Raw 0-255 RGB in, what the backbone expects out, via ``keras.applications.<family>.preprocess_input``.

    Only the family's name is saved in the ``.keras`` config, so a loaded model (after ``import heroes.models``)
    applies exactly the preprocessing it was trained with: caffe BGR mean subtraction for VGG/ResNet50,
    [-1, 1] scaling for ResNet50V2/MobileNetV2, identity for EfficientNet (which rescales inside itself).
    """

    def __init__(self, family, backbone=None, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(getattr(keras.applications, str(family), None), "preprocess_input"):
            raise ValueError(f"keras.applications.{family} has no preprocess_input")
        self.family = family
        self.backbone = backbone

    def call(self, inputs):
        return getattr(keras.applications, self.family).preprocess_input(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "family": self.family, "backbone": self.backbone}


@dataclass(frozen=True)
class BackboneSpec:
    """Everything pinned for one backbone: builder, preprocessing, sizes, freeze policy and Grad-CAM layer."""

    name: str
    builder: Callable = field(repr=False)  # keyword arguments of keras.applications (include_top, input_tensor...)
    family: str  # keras.applications submodule whose preprocess_input the model applies
    gradcam_layer: str  # last convolutional feature map
    head: str = "pool"  # "dense": flatten, fc1, fc2, output (VGG); "pool": global average pooling, output
    dense_units: tuple = ()
    study_prefixes: tuple = ()  # backbone layers trainable under the "study" policy, by name prefix
    default_size: int = 224
    min_size: int = 32  # keras.applications' obtain_input_shape(min_size=32) for all six
    imagenet_variance_scale: tuple | None = None
    study_note: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name, **spec_fields):
    """Decorator registering a builder under ``name``; keyword arguments fill its ``BackboneSpec``."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneSpec(name=name, builder=builder, **spec_fields)
        return builder

    return decorator


def list_backbones() -> list[str]:
    """Names of every registered backbone, sorted."""
    return sorted(_REGISTRY)


def get_backbone(name) -> BackboneSpec:
    """The spec registered as ``name``; ``UserError`` listing the known names otherwise."""
    if name not in _REGISTRY:
        raise UserError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return _REGISTRY[name]


@register_backbone(
    "vgg16", family="vgg16", gradcam_layer="block5_conv3", head="dense", dense_units=(4096, 4096),
    study_note="study: only fc1, fc2 (4096, ReLU) and the new output train",
)
def _vgg16(**kwargs):
    return keras.applications.VGG16(weights=None, **kwargs)


@register_backbone(
    "vgg19", family="vgg19", gradcam_layer="block5_conv4", head="dense", dense_units=(4096, 4096),
    study_note="study: only fc1, fc2 (4096, ReLU) and the new output train",
)
def _vgg19(**kwargs):
    return keras.applications.VGG19(weights=None, **kwargs)


@register_backbone(
    "resnet50", family="resnet50", gradcam_layer="conv5_block3_out", study_prefixes=("conv5_",),
    study_note="study: the conv5 stage and the new output train; BatchNorm stays frozen in inference mode",
)
def _resnet50(**kwargs):
    return keras.applications.ResNet50(weights=None, **kwargs)


@register_backbone(
    "resnet50v2", family="resnet_v2", gradcam_layer="post_relu", study_prefixes=("conv5_", "post_"),
    study_note="study: the conv5 stage and the new output train; BatchNorm stays frozen in inference mode",
)
def _resnet50v2(**kwargs):
    return keras.applications.ResNet50V2(weights=None, **kwargs)


@register_backbone(
    "mobilenetv2", family="mobilenet_v2", gradcam_layer="out_relu", study_prefixes=("block_16_", "Conv_1", "out_relu"),
    study_note="study: the last inverted-residual block (block_16), the 1x1 Conv_1 and the new output train",
)
def _mobilenetv2(**kwargs):
    return keras.applications.MobileNetV2(weights=None, **kwargs)


@register_backbone(
    "efficientnetb0", family="efficientnet", gradcam_layer="top_activation", study_prefixes=("block7a_", "top_"),
    imagenet_variance_scale=_EFFICIENTNET_STDDEV_RGB,
    study_note="study: the last block (block7a), top_conv and the new output train; stochastic depth is off",
)
def _efficientnetb0(**kwargs):
    return _without_stochastic_depth(keras.applications.EfficientNetB0(weights=None, **kwargs))


def _without_stochastic_depth(model):
    """Zero EfficientNet's per-block Dropout: a frozen block must give the same features in training and inference."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


def _image_size(spec, image_size) -> tuple[int, int]:
    """(height, width) from None (the default), an int or a pair; ``UserError`` below the backbone's minimum."""
    if image_size is None:
        image_size = spec.default_size
    if isinstance(image_size, (int, numpy.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(isinstance(s, int) for s in image_size):
        size = tuple(image_size)
    else:
        raise UserError(f"image size must be an int or (height, width), not {image_size!r}")
    if min(size) < spec.min_size:
        raise UserError(
            f"image size {size[0]}x{size[1]} is below {spec.name}'s minimum of {spec.min_size} px "
            f"(default {spec.default_size} px)"
        )
    return size


def _check_arguments(num_classes, policy, dropout):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, numpy.integer)) or num_classes < 2:
        raise UserError(f"num_classes must be an integer of at least 2, not {num_classes!r}")
    if policy not in POLICIES:
        raise UserError(f"unknown freeze policy {policy!r}; known: {', '.join(POLICIES)}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), not {dropout!r}")


def _wants_top(spec, size) -> bool:
    """VGG at its native size keeps ImageNet's fc1/fc2 when the weights file has them."""
    return spec.head == "dense" and size == (spec.default_size, spec.default_size)


def choose_weights(name, weights, image_size=None) -> WeightsChoice:
    """``resolve_weights`` for ``name`` at ``image_size``; asks for the classifier file where VGG reuses fc1/fc2."""
    spec = get_backbone(name)
    size = _image_size(spec, image_size)
    return resolve_weights(name, weights, image_size=size, include_top=_wants_top(spec, size))


def _head(spec, features, num_classes, dropout):
    """New classifier: flatten-fc1-fc2-output for VGG, global average pooling-output otherwise."""
    if spec.head == "dense":
        x = keras.layers.Flatten(name="flatten")(features)
        for index, units in enumerate(spec.dense_units, start=1):
            x = keras.layers.Dense(units, activation="relu", name=f"fc{index}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_LAYER, dtype="float32")(x)


def _assemble(spec, num_classes, size, dropout):
    """Flat functional model: the backbone's layers sit directly in the outer graph, never as one nested Model."""
    inputs = keras.Input(shape=(*size, 3), name=INPUT_NAME)
    x = Preprocess(spec.family, backbone=spec.name, name=PREPROCESS_LAYER, dtype="float32")(inputs)
    backbone = spec.builder(include_top=False, input_tensor=x)
    outputs = _head(spec, backbone.output, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"heroes_{spec.name}")


def _short(error) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 240 else text[:237] + "..."


def _set_weights(target, values):
    target.set_weights(values)
    if hasattr(target, "finalize_state"):  # Normalization caches mean/variance as tensors
        target.finalize_state()


def _fits(target, source) -> bool:
    """Same layer class and the same weight shapes."""
    return (
        target is not None
        and type(target) is type(source)
        and [tuple(w.shape) for w in target.weights] == [tuple(w.shape) for w in source.weights]
    )


def _transfer(donor, model, spec, choice):
    """Copy a stock keras.applications model's weights into the flat model by layer name.

    Unnamed layers (EfficientNet's Normalization) are paired by class when exactly one of that class is left.
    ImageNet's ``predictions`` is never copied; fc1 and fc2 only together, when their shapes match (224 px).
    """
    targets = {layer.name: layer for layer in model.layers if layer.weights and layer.name != OUTPUT_LAYER}
    head = [layer for layer in donor.layers if layer.weights and layer.name in HEAD_LAYERS]
    copy_head = all(_fits(targets.get(layer.name), layer) for layer in head if layer.name != OUTPUT_LAYER)
    leftover = []
    for layer in donor.layers:
        if not layer.weights or layer.name == OUTPUT_LAYER or (layer.name in HEAD_LAYERS and not copy_head):
            continue
        if not _fits(targets.get(layer.name), layer):
            leftover.append(layer)
            continue
        _set_weights(targets.pop(layer.name), layer.get_weights())
    for layer in leftover:
        same_class = [t for t in targets.values() if type(t) is type(layer) and t.name not in HEAD_LAYERS]
        if len(same_class) != 1 or not _fits(same_class[0], layer):
            raise UserError(f"weights file {choice.path} does not fit {spec.name}: no place for layer {layer.name!r}")
        _set_weights(targets.pop(same_class[0].name), layer.get_weights())
    missing = [name for name in targets if name not in HEAD_LAYERS]
    if missing:
        raise UserError(f"weights file {choice.path} lacks weights for {spec.name} layers: {', '.join(missing[:5])}")
    if choice.imagenet and spec.imagenet_variance_scale:
        _fold_imagenet_rescaling(model, spec.imagenet_variance_scale)


def _fold_imagenet_rescaling(model, scale):
    """EfficientNet with weights="imagenet" adds Rescaling(1/sqrt(std)) after Normalization; fold it into the variance.

    (x - mean) / sqrt(var) / sqrt(std) == (x - mean) / sqrt(var * std), so the flat model's architecture is the
    same whatever the weights, and an official file loaded by path behaves exactly like keras' "imagenet".
    """
    normalization = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if len(normalization) != 1:
        raise ValueError(f"expected one Normalization layer, found {len(normalization)}")
    mean, variance, count = normalization[0].get_weights()
    _set_weights(normalization[0], [mean, variance * numpy.asarray(scale, dtype=variance.dtype), count])


def _donor(spec, include_top, size):
    """A stock keras.applications model shaped like the weights file (the classifier needs 224 px)."""
    shape = (spec.default_size, spec.default_size, 3) if include_top else (*size, 3)
    return spec.builder(include_top=include_top, input_shape=shape)


_SKIPPED = re.compile(r"skipping|could not be loaded|freshly-initiali[sz]ed", re.IGNORECASE)


def _load_strictly(model, path):
    """``model.load_weights``, treating keras' "skipping ... keeps freshly-initialised weights" warnings as failures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    skipped = [str(item.message) for item in caught if _SKIPPED.search(str(item.message))]
    if skipped:
        raise ValueError(f"partial load: {skipped[0]}")


def _holds_dense_layers(path) -> bool:
    """Whether a weights file holds Dense layers (VGG's classifier), from legacy layer names or Keras 3 paths."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        names = [name.decode() if isinstance(name, bytes) else name for name in group.attrs.get("layer_names", [])]
        if not names:
            handle.visit(names.append)
    return any("fc1" in name or "dense" in name for name in names)


def _with_weights(spec, choice, size, assemble):
    """A fresh model holding ``choice``'s weights; a file that fails to load raises and nothing half-loaded escapes."""
    if choice.path is None:
        return assemble()
    errors = []
    if not choice.imagenet:
        model = assemble()
        try:
            _load_strictly(model, choice.path)
            return model
        except Exception as error:  # keras raises ValueError, KeyError, OSError... for a file of another shape
            errors.append(f"as a whole heroes {spec.name} model: {_short(error)}")
    tops = (choice.include_top,) if choice.imagenet else (spec.head == "dense" and _holds_dense_layers(choice.path),)
    for include_top in tops:
        donor = _donor(spec, include_top, size)
        try:
            _load_strictly(donor, choice.path)
        except Exception as error:
            errors.append(f"as keras.applications {spec.name} (include_top={include_top}): {_short(error)}")
            continue
        model = assemble()
        _transfer(donor, model, spec, choice)
        return model
    raise UserError(
        f"cannot load weights file {choice.path} into {spec.name}: {'; '.join(errors)}. The file may be truncated, "
        f"corrupt or saved from another architecture: save or download it again, or pass weights=None"
    )


def build_model(
    name, num_classes, image_size=None, weights=None, policy="study", dropout=0.0
) -> keras.Model:
    """Functional model: raw 0-255 RGB (H, W, 3) -> preprocess -> backbone (flat) -> head -> softmax(num_classes).

    ``weights`` is None, "imagenet", "auto", a file path, or a ``WeightsChoice`` from ``choose_weights`` (call that
    first to know and record the source: ``choice.source``). Returns an uncompiled model with ``policy`` applied.
    """
    spec = get_backbone(name)
    size = _image_size(spec, image_size)
    _check_arguments(num_classes, policy, dropout)
    choice = resolve_weights(name, weights, image_size=size, include_top=_wants_top(spec, size))
    model = _with_weights(spec, choice, size, lambda: _assemble(spec, int(num_classes), size, dropout))
    return apply_policy(model, policy)


def backbone_of(model) -> str | None:
    """The registered backbone name a heroes model was built from (kept by its preprocess layer), or None."""
    for layer in model.layers:
        if isinstance(layer, Preprocess):
            return layer.backbone
    return None


def gradcam_layer_name(model) -> str:
    """Name of the Grad-CAM layer (last conv feature map) of a heroes model."""
    return get_backbone(backbone_of(model)).gradcam_layer


def _is_trainable(spec, layer, policy) -> bool:
    if isinstance(layer, keras.layers.BatchNormalization):
        return False  # always inference mode: batches of 16 give noisy statistics; the study froze BatchNorm
    if layer.name == OUTPUT_LAYER or policy == "full":
        return True
    if policy == "linear_probe":
        return False
    return layer.name in HEAD_LAYERS or layer.name.startswith(spec.study_prefixes)


def apply_policy(model, policy) -> keras.Model:
    """Set every layer's ``trainable`` for ``policy`` in place (recompile afterwards) and return the model.

    study: VGG trains fc1, fc2 and the output; ResNet the conv5 stage and the output; MobileNetV2/EfficientNetB0
    their last block and the output. linear_probe: only the output. full: everything. BatchNormalization is
    frozen under every policy, and a frozen layer runs in inference mode in Keras 3.
    """
    if policy not in POLICIES:
        raise UserError(f"unknown freeze policy {policy!r}; known: {', '.join(POLICIES)}")
    spec = get_backbone(backbone_of(model))
    for layer in model.layers:
        layer.trainable = _is_trainable(spec, layer, policy)
    return model


def _nodes_in_order(model):
    """The model's graph nodes, inputs first (Keras' own execution order)."""
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _has_trainable_weights(node) -> bool:
    return not node.is_input and bool(node.operation.trainable_weights)


def first_trainable_layer(model):
    """The first layer, in execution order, holding trainable weights; None when nothing trains."""
    for node in _nodes_in_order(model):
        if _has_trainable_weights(node):
            return node.operation
    return None


def _computable_from(nodes, cut):
    """Ids of nodes and tensors computable from ``cut`` alone."""
    tensors, computed = {id(cut)}, set()
    for node in nodes:
        if node.is_input or not node.input_tensors:
            continue
        if all(id(tensor) in tensors for tensor in node.input_tensors):
            computed.add(id(node))
            tensors.update(id(tensor) for tensor in node.outputs)
    return computed, tensors


def _is_valid_cut(model, nodes, cut) -> bool:
    """Every output and every trainable layer can be computed from ``cut`` alone."""
    computed, tensors = _computable_from(nodes, cut)
    outputs_ok = all(id(tensor) in tensors for tensor in model.outputs)
    return outputs_ok and all(id(node) in computed for node in nodes if _has_trainable_weights(node))


def _is_training_sensitive(node) -> bool:
    """A weightless layer that behaves differently in training (Dropout, augmentation): it belongs in the suffix."""
    operation = node.operation
    return not node.is_input and not operation.weights and getattr(operation, "_call_has_training_arg", False)


def _find_cut(model, nodes):
    """The single tensor where the frozen prefix ends: the input of the first trainable layer when that is a valid
    cut, else the nearest earlier tensor that is; then moved back over Dropout-like layers."""
    tensors = [*model.inputs] + [tensor for node in nodes if not node.is_input for tensor in node.outputs]
    position = {id(tensor): index for index, tensor in enumerate(tensors)}
    first = next((node for node in nodes if _has_trainable_weights(node)), None)
    if first is None:
        raise UserError(f"model {model.name} has no trainable layer: nothing to split")
    start = max(position[id(tensor)] for tensor in first.input_tensors)
    cut = next(t for t in reversed(tensors[: start + 1]) if _is_valid_cut(model, nodes, t))
    producers = {id(tensor): node for node in nodes for tensor in node.outputs}
    while id(cut) in producers and _is_training_sensitive(producers[id(cut)]):
        node = producers[id(cut)]
        if len(node.input_tensors) != 1 or not _is_valid_cut(model, nodes, node.input_tensors[0]):
            break
        cut = node.input_tensors[0]
    return cut


def _rebuild_from(model, nodes, cut, name):
    """A functional model from a new Input shaped like ``cut``, re-calling the downstream layers (shared weights)."""
    features = keras.Input(shape=tuple(cut.shape[1:]), dtype=cut.dtype, name="features")
    tensor_map = {id(cut): features}
    for node in nodes:
        if node.is_input or not node.input_tensors:
            continue
        if not all(id(tensor) in tensor_map for tensor in node.input_tensors):
            continue
        args, kwargs = node.arguments.fill_in(tensor_map)
        outputs = node.operation(*args, **kwargs)
        for old, new in zip(node.outputs, keras.tree.flatten(outputs)):
            tensor_map[id(old)] = new
    outputs = [tensor_map[id(tensor)] for tensor in model.outputs]
    return keras.Model(features, outputs[0] if len(outputs) == 1 else outputs, name=name)


def split_at_first_trainable(model) -> tuple[keras.Model, keras.Model]:
    """Split into a frozen ``prefix`` (image -> features) and a trainable ``suffix`` with suffix(prefix(x)) == model(x).

    The suffix re-uses the model's own layer objects, so fitting it trains ``model`` in place. Re-split after
    changing the policy. VGG study: the cut is the flattened block5 output (fc1's input); ResNet50 study:
    ``conv4_block6_out``, which feeds both branches of conv5_block1.
    """
    nodes = _nodes_in_order(model)
    cut = _find_cut(model, nodes)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    prefix = keras.Model(inputs, cut, name=f"{model.name}_prefix")
    suffix = _rebuild_from(model, nodes, cut, name=f"{model.name}_suffix")
    return prefix, suffix


def _parameter_count(weights) -> int:
    return int(sum(numpy.prod(weight.shape) for weight in weights))


def describe_model(model) -> dict:
    """Parameter counts, trainable layers and the first trainable layer, ready for ``json.dump``."""
    first = first_trainable_layer(model)
    return {
        "name": model.name,
        "backbone": backbone_of(model),
        "input_shape": list(model.input_shape[1:]),
        "num_classes": int(model.output_shape[-1]),
        "total_parameters": _parameter_count(model.weights),
        "trainable_parameters": _parameter_count(model.trainable_weights),
        "non_trainable_parameters": _parameter_count(model.non_trainable_weights),
        "first_trainable_layer": None if first is None else first.name,
        "trainable_layers": [layer.name for layer in model.layers if layer.trainable_weights],
    }


def class_names_path(model_path) -> Path:
    """Sidecar holding the class names of a saved model: ``run/model.keras`` -> ``run/model.class_names.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".class_names.json")


def save_model(model, path, class_names) -> Path:
    """Save ``model`` as ``.keras`` (atomically) and its class names, in output order, beside it."""
    path = Path(path)
    class_names = [str(name) for name in class_names]
    if path.suffix != ".keras":
        raise UserError(f"model path must end in .keras: {path}")
    if len(class_names) != model.output_shape[-1] or len(set(class_names)) != len(class_names):
        raise UserError(f"need {model.output_shape[-1]} distinct class names, got {class_names}")
    with atomic_path(path, suffix=".tmp.keras") as temporary:
        model.save(temporary)
    metadata = {"class_names": class_names, "backbone": backbone_of(model), "input_shape": list(model.input_shape[1:])}
    with atomic_path(class_names_path(path)) as temporary_json:
        temporary_json.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def load_model(path, compile=True) -> tuple[keras.Model, list[str]]:
    """Load a model saved by ``save_model``: (model, class_names); ``UserError`` when either file is missing or bad."""
    path = Path(path)
    sidecar = class_names_path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if not sidecar.is_file():
        raise UserError(f"class names file not found: {sidecar} (save models with heroes.models.save_model)")
    try:
        model = keras.saving.load_model(path, compile=compile)
        class_names = json.loads(sidecar.read_text())["class_names"]
    except Exception as error:  # zip, HDF5, JSON and deserialisation errors all mean "bad file" here
        raise UserError(f"cannot load model {path}: {_short(error)}") from None
    if len(class_names) != model.output_shape[-1]:
        raise UserError(f"{sidecar} lists {len(class_names)} classes but {path} predicts {model.output_shape[-1]}")
    return model, class_names
