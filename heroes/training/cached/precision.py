"""Suffix precision: mixed bf16 training of a trainable convolutional suffix where the CPU runs bf16 natively."""

from contextlib import contextmanager

import keras

from heroes.errors import UserError
from heroes.machine import bf16_is_fast

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def has_trainable_convolution(model) -> bool:
    return any(isinstance(layer, CONVOLUTIONS) and layer.trainable_weights for layer in model.layers)


def resolve_suffix_precision(name: str, suffix) -> str:
    """``float32`` | ``mixed_bfloat16``; ``auto`` picks mixed bf16 for a trainable convolutional suffix (ResNet50's
    conv5, EfficientNet-Lite0's last stage) where bf16 is native, float32 for dense heads (memory-bound, and the
    span path needs float32) and on CPUs that would only emulate bf16."""
    if name not in PRECISIONS:
        raise UserError(f"suffix_precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        return "mixed_bfloat16" if has_trainable_convolution(suffix) and bf16_is_fast() else "float32"
    return name


def _output_layers(model) -> set:
    return {id(tensor._keras_history.operation) for tensor in model.outputs}


@contextmanager
def suffix_policy(suffix, precision: str):
    """Inside: every layer of ``suffix`` but its output (softmax stays float32) computes under ``precision``; the
    variables stay float32 (the master weights). After: the layers' own policies again, so the model that is
    scored and saved computes in float32."""
    if precision == "float32":
        yield
        return
    outputs = _output_layers(suffix)
    layers = [layer for layer in suffix.layers
              if not isinstance(layer, keras.layers.InputLayer) and id(layer) not in outputs]
    before = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = keras.DTypePolicy(precision)
        yield
    finally:
        for layer, policy in zip(layers, before):
            layer.dtype_policy = policy
