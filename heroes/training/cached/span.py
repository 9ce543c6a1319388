"""Span path: train the first trainable Dense layer on cached inputs as kernel = W0 + Xᵀ·A, updating only A.

The frozen prefix feeds that layer fixed inputs, so every SGD step adds a sum of outer products xᵢᵀ·δᵢ of training
inputs to its kernel: the kernel always equals W0 + Xᵀ·A, X (n × d) holding every cached training row (every view)
and A (n × units) the accumulated output gradients. Forward: x·W = x·W0 + (x·Xᵀ)·A, with x·W0 and the kernel row
x·Xᵀ computed once per cached input. Backward: A's gradient is the batch's δ scattered into the batch's rows, i.e.
the kernel's gradient written in A; SGD, momentum and Nesterov are linear in the gradient, so A's trajectory maps
exactly onto the kernel's (in exact arithmetic). VGG16's fc1 (25,088 × 4,096 = 102.8 M weights) becomes A of
1,200 × 4,096 = 4.9 M numbers in the study. At the end ``materialise`` writes W0 + Xᵀ·A into the layer, so the
saved model is an ordinary one. Adam or weight decay would break the linearity: those runs take the direct path.
"""

from dataclasses import dataclass

import keras
import numpy

PATHS = ("auto", "span", "direct")
P0, KERNEL_ROW, ROW = "p0", "kernel_row", "row"  # inputs of the span model: x·W0, x·Xᵀ, training row (-1: none)


def _nodes_in_order(model) -> list:
    """The model's graph nodes, inputs first (Keras' execution order)."""
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _consumers(model, tensor) -> list:
    return [node for node in _nodes_in_order(model)
            if not node.is_input and any(item is tensor for item in node.input_tensors)]


def span_dense(suffix):
    """(the Dense layer the span path would train, "") or (None, why not): it must take the suffix's only input
    directly, be its only consumer, and carry nothing the span form leaves out (regularisers, constraints, LoRA)."""
    if len(suffix.inputs) != 1:
        return None, "the trainable suffix has several inputs"
    consumers = _consumers(suffix, suffix.inputs[0])
    if len(consumers) != 1 or not isinstance(consumers[0].operation, keras.layers.Dense):
        return None, "the cached features do not feed a single Dense layer directly"
    dense = consumers[0].operation
    if not dense.trainable:
        return None, f"{dense.name} is frozen"
    extras = [name for name in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                                "bias_constraint") if getattr(dense, name, None) is not None]
    if extras or getattr(dense, "lora_enabled", False):
        return None, f"{dense.name} has {', '.join(extras) or 'LoRA'}, which the span form leaves out"
    if dense.compute_dtype != "float32" or dense.kernel.dtype != "float32":
        return None, f"{dense.name} computes in {dense.compute_dtype}, not float32"
    return dense, ""


def choose_path(suffix, config, rows: int) -> tuple:
    """("span" | "direct", why) for training ``suffix`` on ``rows`` cached training inputs under ``config``.

    Span needs plain SGD (momentum and Nesterov are fine: linear in the gradient), no weight decay (it shrinks W0,
    which is outside the span), one device, and fewer rows than the Dense layer has inputs (else A is no smaller).
    """
    if config.suffix_path not in PATHS:
        raise ValueError(f"suffix_path must be one of {', '.join(PATHS)}, not {config.suffix_path!r}")
    if config.suffix_path == "direct":
        return "direct", "suffix_path='direct' asked for"
    dense, why = span_dense(suffix)
    if dense is None:
        reason = why
    elif config.optimizer != "sgd":
        reason = f"optimizer {config.optimizer!r}: its update is not linear in the gradient"
    elif config.weight_decay:
        reason = f"weight_decay {config.weight_decay}: it shrinks W0, which lies outside the span"
    elif config.strategy != "none":
        reason = f"strategy {config.strategy!r}: the span path runs on one device"
    elif rows >= dense.kernel.shape[0]:
        reason = f"{rows} training rows >= {dense.name}'s {dense.kernel.shape[0]} inputs: the span is no smaller"
    else:
        return "span", f"{dense.name}: {dense.kernel.shape[0]:,} x {dense.units:,} kernel trained as {rows:,} x " \
                       f"{dense.units:,} span coefficients"
    if config.suffix_path == "span":
        raise ValueError(f"suffix_path='span' is not possible here: {reason}")
    return "direct", reason


def _span_product(kernel_rows, span, rows):
    """kernel_rows · span, whose gradient for ``span`` is the upstream δ scattered into ``rows`` (negative: dropped).

    That is the Dense kernel's own gradient xᵀ·δ written in span coordinates, not the chain rule through
    ``kernel_rows`` (which would multiply by the Gram matrix): the update this gives A is the one SGD gives W.
    """
    import tensorflow

    @tensorflow.custom_gradient
    def product(kernel_rows, span):
        def gradient(upstream):
            scattered = tensorflow.math.unsorted_segment_sum(upstream, rows, tensorflow.shape(span)[0])
            return tensorflow.zeros_like(kernel_rows), scattered

        return tensorflow.matmul(kernel_rows, span), gradient

    return product(kernel_rows, span)


class SpanDense(keras.layers.Layer):
    """activation(x·W0 + (x·Xᵀ)·A + b) from the precomputed x·W0 and x·Xᵀ; A (rows × units) starts at zero."""

    def __init__(self, rows, units, activation=None, bias=None, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.units = int(rows), int(units)
        self.activation = keras.activations.get(activation)
        self.initial_bias = None if bias is None else numpy.asarray(bias, dtype="float32")

    def build(self, input_shape):
        self.span = self.add_weight(shape=(self.rows, self.units), initializer="zeros", name="span")
        self.bias = None if self.initial_bias is None else self.add_weight(
            shape=(self.units,), initializer=keras.initializers.Constant(self.initial_bias), name="bias")

    def call(self, inputs):
        outputs = inputs[P0] + _span_product(inputs[KERNEL_ROW], keras.ops.convert_to_tensor(self.span), inputs[ROW])
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[P0][0], self.units)


def _span_model(suffix, dense, layer) -> keras.Model:
    """The suffix with ``dense`` replaced by ``layer``: the layers after it are the suffix's own (shared weights,
    shared Dropout seed generators, so masks match the direct path's)."""
    inputs = {P0: keras.Input((dense.units,), name=P0), KERNEL_ROW: keras.Input((layer.rows,), name=KERNEL_ROW),
              ROW: keras.Input((), dtype="int32", name=ROW)}
    nodes = _nodes_in_order(suffix)
    (dense_node,) = [node for node in nodes if node.operation is dense]
    tensor_map = {id(dense_node.outputs[0]): layer(inputs)}
    for node in nodes:
        if node.is_input or node is dense_node:
            continue
        args, kwargs = node.arguments.fill_in(tensor_map)
        for old, new in zip(node.outputs, keras.tree.flatten(node.operation(*args, **kwargs))):
            tensor_map[id(old)] = new
    outputs = [tensor_map[id(tensor)] for tensor in suffix.outputs]
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=f"{suffix.name}_span")


def _matmul(left, right, transpose_a=False, transpose_b=False):
    """One float32 matmul in TensorFlow (oneDNN, every core), transposes folded in rather than copied."""
    import tensorflow

    return tensorflow.linalg.matmul(left, right, transpose_a=transpose_a, transpose_b=transpose_b)


@dataclass
class Span:
    """One span-parametrised Dense layer: the training rows X, the model that trains A, and its precomputed inputs.

    ``model`` maps {p0, kernel_row, row} to the suffix's outputs; ``batch(rows)`` are its inputs for training rows,
    ``inputs_for(features)`` for anything else (validation, test: kernel rows against the training features).
    """

    dense: keras.layers.Dense
    layer: SpanDense
    model: keras.Model
    features: numpy.ndarray  # X: one row per (training image, view)
    p0: numpy.ndarray  # X·W0
    gram: numpy.ndarray  # X·Xᵀ: the kernel rows of the training rows
    materialised: bool = False  # after ``materialise`` the layer's kernel is W, no longer W0

    def batch(self, rows) -> dict:
        rows = numpy.asarray(rows, dtype="int32")
        return {P0: self.p0[rows], KERNEL_ROW: self.gram[rows], ROW: rows}

    def inputs_for(self, features) -> dict:
        """Inputs of rows that are not training rows: their own x·W0 and x·Xᵀ, row -1 (never updated)."""
        features = numpy.asarray(features, dtype="float32")
        return {P0: _matmul(features, self.dense.kernel.value).numpy(),
                KERNEL_ROW: _matmul(features, self.features, transpose_b=True).numpy(),
                ROW: numpy.full(len(features), -1, dtype="int32")}

    def materialise(self) -> None:
        """Make the kernel W0 + Xᵀ·A (and the bias the trained one): the model is an ordinary one again."""
        if self.materialised:
            raise ValueError(f"{self.dense.name} already holds W0 + XᵀA")
        self.dense.kernel.assign_add(_matmul(self.features, self.layer.span.value, transpose_a=True))
        if self.layer.bias is not None:
            self.dense.bias.assign(self.layer.bias)
        self.materialised = True


def build_span(suffix, dense, features) -> Span:
    """The span model for ``dense`` of ``suffix`` over the training rows ``features`` (n × d, float32)."""
    features = numpy.ascontiguousarray(features, dtype="float32")
    bias = None if dense.bias is None else keras.ops.convert_to_numpy(dense.bias)
    layer = SpanDense(len(features), dense.units, dense.activation, bias, name=f"{dense.name}_span")
    model = _span_model(suffix, dense, layer)
    return Span(dense, layer, model, features, _matmul(features, dense.kernel.value).numpy(),
                _matmul(features, features, transpose_b=True).numpy())
