"""``create_model``: a registered backbone, its weights, a new head and the study's freeze policies, in one call."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (last residual block trained) is the reference ResNet here, and every run card names the backbone used.

import keras
import numpy

from heroes.errors import UserError
from heroes.models.backbones import HEAD_LAYERS, INPUT_NAME, OUTPUT_LAYER, PREPROCESS_LAYER, Preprocess, get_backbone
from heroes.models.surgery import first_trainable_layer
from heroes.models.transfer import with_weights
from heroes.models.weights import WeightsChoice, resolve_weights

POLICIES = ("study", "linear_probe", "full")


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


def create_model(name, num_classes, image_size=None, weights=None, policy="study", dropout=0.0) -> tuple:
    """(model, ``WeightsChoice``): the one way to a heroes model, as timm's ``create_model``. The registered backbone
    ``name`` with its own preprocessing, raw 0-255 RGB (H, W, 3) in; its weights resolved once (None, "imagenet",
    "auto", a file path, or a ``WeightsChoice`` that passes through); a new head of ``num_classes``, softmax out; the
    freeze ``policy`` applied. Uncompiled. The choice says where the weights came from (``choice.source``)."""
    spec = get_backbone(name)
    size = _image_size(spec, image_size)
    _check_arguments(num_classes, policy, dropout)
    choice = resolve_weights(name, weights, image_size=size, include_top=_wants_top(spec, size))
    model = with_weights(spec, choice, size, lambda: _assemble(spec, int(num_classes), size, dropout))
    return apply_policy(model, policy), choice


def build_model(name, num_classes, image_size=None, weights=None, policy="study", dropout=0.0) -> keras.Model:
    """``create_model``'s model alone, where the weights' source is not recorded (tests, embeddings, benchmarks)."""
    return create_model(name, num_classes, image_size, weights, policy, dropout)[0]


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

    study: VGG trains fc1, fc2 and the output; ResNet its last residual block (conv5_block3) and the output; MobileNetV2/EfficientNetB0
    their last block and the output. linear_probe: only the output. full: everything. BatchNormalization is
    frozen under every policy, and a frozen layer runs in inference mode in Keras 3.
    """
    if policy not in POLICIES:
        raise UserError(f"unknown freeze policy {policy!r}; known: {', '.join(POLICIES)}")
    spec = get_backbone(backbone_of(model))
    for layer in model.layers:
        layer.trainable = _is_trainable(spec, layer, policy)
    return model


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


def pooled_features_model(name, image_size=None, weights="imagenet") -> keras.Model:
    """Raw 0-255 RGB in, the backbone's globally pooled last feature map out (EfficientNet-Lite0: 1280 values).

    The embedding the cleaning checks and the linear-probe baseline share; ``weights`` as for ``build_model``.
    """
    model = build_model(name, 2, image_size, weights=weights, policy="linear_probe")
    if "avg_pool" in {layer.name for layer in model.layers}:
        return keras.Model(model.inputs, model.get_layer("avg_pool").output, name=f"{name}_pooled")
    feature_map = model.get_layer(get_backbone(name).gradcam_layer).output  # VGG's head flattens instead
    return keras.Model(model.inputs, keras.layers.GlobalAveragePooling2D()(feature_map), name=f"{name}_pooled")
