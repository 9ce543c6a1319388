"""Grad-CAM heatmaps and overlays for heroes models; top losses and most-confused class pairs from predictions."""

import keras
import matplotlib
import numpy
import pandas
import tensorflow
from PIL import Image

from heroes.evaluation.predictions import Predictions, align, load_predictions
from heroes.models import build

BATCH_SIZE = 16  # Grad-CAM keeps every feature map and its gradient in memory: bound it for 224 px ResNet50
# Smallest probability -log() is taken of: keeps losses finite (about 708) without merging distinct losses into
# ties, as Keras' 1e-7 clip would.
TINY = numpy.finfo(numpy.float64).tiny


def gradcam_layer(model, layer_name=None) -> str:
    """``layer_name``, else the backbone's registered Grad-CAM layer, else the last layer with a 4-D output."""
    if layer_name is not None:
        return layer_name
    if build.backbone_of(model) is not None:
        return build.gradcam_layer_name(model)
    for layer in reversed(model.layers):
        if not isinstance(layer, keras.layers.InputLayer) and len(_single(_node_of(model, layer).outputs).shape) == 4:
            return layer.name
    raise ValueError(f"model {model.name} has no layer with a 4-D (batch, height, width, channels) output")


def _find_layer(model, layer_name):
    """The layer of ``model`` itself: one inside a nested sub-model cannot be reached without "Graph disconnected"."""
    for layer in model.layers:
        if layer.name == layer_name:
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.Model) and any(inner.name == layer_name for inner in layer.layers):
            raise ValueError(
                f"layer {layer_name!r} is inside the nested model {layer.name!r}: Grad-CAM needs the backbone's "
                f"layers in the outer graph (heroes.models.build.build_model keeps them flat)"
            )
    raise ValueError(f"model {model.name} has no layer {layer_name!r}")


def _node_of(model, layer):
    """The call of ``layer`` that belongs to ``model``'s own graph.

    After ``split_at_first_trainable`` (or any reuse) a layer has several calls; only this one is connected to
    ``model.inputs``, whichever index it has.
    """
    for nodes in getattr(model, "_nodes_by_depth", {}).values():
        for node in nodes:
            if node.operation is layer:
                return node
    return layer._inbound_nodes[0]  # Sequential and other models without a node map: the first call


def _single(tensors):
    return tensors[0] if isinstance(tensors, (list, tuple)) and len(tensors) == 1 else tensors


def _softmax_head(model):
    """The Dense layer whose softmax makes the model's output, or None when the output is something else."""
    layer = model.outputs[0]._keras_history.operation if len(model.outputs) == 1 else None
    softmax = isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax
    return layer if softmax else None


def _gradcam_model(model, layer_name):
    """(image -> [feature map, head input or output], softmax head or None), all within ``model``'s own graph."""
    features = _single(_node_of(model, _find_layer(model, layer_name)).outputs)
    head = _softmax_head(model)
    scores = _single(_node_of(model, head).input_tensors) if head is not None else model.outputs[0]
    return keras.Model(model.inputs, [features, scores], name=f"{model.name}_gradcam"), head


def _logits(head, inputs):
    """The head's pre-softmax scores: Grad-CAM differentiates these (Selvaraju et al.), since a confident softmax
    saturates and its gradient vanishes."""
    logits = keras.ops.matmul(keras.ops.cast(inputs, "float32"), keras.ops.cast(head.kernel, "float32"))
    return logits if head.bias is None else logits + keras.ops.cast(head.bias, "float32")


def _requested_classes(class_index, count, classes):
    """None (explain each image's predicted class) or one class index per image, checked."""
    if class_index is None:
        return None
    indices = numpy.asarray(class_index)
    if indices.ndim == 0:
        indices = numpy.full(count, indices)
    if indices.shape != (count,) or not numpy.issubdtype(indices.dtype, numpy.integer):
        raise ValueError(f"class_index must be None, an integer or {count} integers, not {class_index!r}")
    if indices.min() < 0 or indices.max() >= classes:
        raise ValueError(f"class_index must be in 0..{classes - 1}, got {class_index!r}")
    return indices


def _batch_maps(gradcam_model, head, images, class_index):
    """Class-activation maps at feature-map resolution (unnormalised) and the softmax probabilities of one batch."""
    images = tensorflow.convert_to_tensor(images, dtype="float32")
    with tensorflow.GradientTape() as tape:
        # Record every op downstream of the input: today the tape also sees frozen layers because Keras keeps
        # their TF variables trainable, but a fully frozen model must not depend on that backend detail.
        tape.watch(images)
        features, scores = gradcam_model(images, training=False)
        logits = _logits(head, scores) if head is not None else keras.ops.cast(scores, "float32")
        probabilities = keras.ops.softmax(logits) if head is not None else logits
        chosen = keras.ops.convert_to_numpy(keras.ops.argmax(logits, axis=1)) if class_index is None else class_index
        score = keras.ops.sum(tensorflow.gather(logits, chosen, axis=1, batch_dims=1))
    gradients = tape.gradient(score, features)
    if gradients is None:  # not "no evidence" (that is a zero gradient) but a score computed around the layer
        raise ValueError("the class score does not depend on the Grad-CAM layer: pick a layer before the output")
    features, gradients = numpy.asarray(features, dtype="float32"), numpy.asarray(gradients, dtype="float32")
    weights = numpy.nan_to_num(gradients).mean(axis=(1, 2))  # one weight per channel: pooled gradient
    maps = numpy.maximum(numpy.einsum("nhwc,nc->nhw", numpy.nan_to_num(features), weights), 0.0)
    return maps, keras.ops.convert_to_numpy(probabilities)


def _normalise(maps, size):
    """Resize to the input size, then scale each map to max 1; a map with no positive evidence stays all zeros."""
    resized = tensorflow.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]
    peaks = resized.reshape(len(resized), -1).max(axis=1)
    scale = numpy.divide(1.0, peaks, out=numpy.zeros_like(peaks), where=numpy.isfinite(peaks) & (peaks > 0))
    return numpy.clip(resized * scale[:, None, None], 0.0, 1.0)


def _check_images(model, images):
    images = numpy.asarray(images)
    if images.ndim == 3:
        images = images[None]
    expected = tuple(model.input_shape[1:4])
    if images.ndim != 4 or len(images) == 0 or any(e not in (None, s) for e, s in zip(expected, images.shape[1:])):
        raise ValueError(
            f"images must be raw 0-255 RGB of shape (N, {expected[0]}, {expected[1]}, {expected[2]}) for "
            f"{model.name}, got {images.shape}; resize with heroes.data.decode.fit_and_crop(image, {expected[0]})"
        )
    return images


def gradcam_and_probabilities(model, images_uint8, class_index=None, layer_name=None):
    """Grad-CAM heatmaps (N, H, W) in [0, 1] and the softmax probabilities (N, classes) from the same pass.

    ``images_uint8``: raw 0-255 RGB (N, H, W, 3) or one (H, W, 3) image at the model's input size.
    ``class_index``: None (each image's predicted class), one index for all, or one index per image.
    ``layer_name``: the feature map to explain; default the backbone's registered Grad-CAM layer.
    """
    images = _check_images(model, images_uint8)
    gradcam_model, head = _gradcam_model(model, gradcam_layer(model, layer_name))
    indices = _requested_classes(class_index, len(images), model.output_shape[-1])
    heatmaps, probabilities = [], []
    for start in range(0, len(images), BATCH_SIZE):
        batch_index = None if indices is None else indices[start:start + BATCH_SIZE]
        maps, batch_probabilities = _batch_maps(gradcam_model, head, images[start:start + BATCH_SIZE], batch_index)
        heatmaps.append(_normalise(maps, images.shape[1:3]))
        probabilities.append(batch_probabilities)
    return numpy.concatenate(heatmaps), numpy.concatenate(probabilities)


def gradcam(model, images_uint8, class_index=None, layer_name=None) -> numpy.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1], resized to the input size; all zeros where no evidence is positive."""
    return gradcam_and_probabilities(model, images_uint8, class_index, layer_name)[0]


def overlay(image, heatmap, alpha=0.4, colormap="jet") -> numpy.ndarray:
    """``image`` (H, W, 3 uint8 or PIL) blended with ``heatmap`` (any size, [0, 1]) through a colormap: uint8 RGB."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha!r}")
    image = numpy.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {image.shape}")
    heatmap = numpy.clip(numpy.nan_to_num(numpy.asarray(heatmap, dtype="float32")), 0.0, 1.0)
    if heatmap.shape != image.shape[:2]:
        resized = Image.fromarray(heatmap, mode="F").resize(image.shape[1::-1], Image.Resampling.BILINEAR)
        heatmap = numpy.clip(numpy.asarray(resized), 0.0, 1.0)
    colours = matplotlib.colormaps[colormap](heatmap)[..., :3] * 255.0
    blended = (1.0 - alpha) * image.astype("float64") + alpha * colours
    return numpy.clip(numpy.rint(blended), 0, 255).astype(numpy.uint8)


def _predictions(predictions):
    """A ``Predictions`` from itself or anything ``evaluate.load_predictions`` reads (run dir, CSV, DataFrame)."""
    return predictions if isinstance(predictions, Predictions) else load_predictions(predictions)


def top_losses(predictions, k=9) -> pandas.DataFrame:
    """The ``k`` images with the highest cross-entropy -log p(true), highest first, ties by path.

    Columns: path, true, predicted, probability (of the predicted class), probability_true, loss, correct.
    ``k=None`` keeps every image.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or k < 1):
        raise ValueError(f"k must be a positive integer or None, not {k!r}")
    predictions = _predictions(predictions)
    rows = numpy.arange(len(predictions))
    names = numpy.asarray(predictions.class_names, dtype=object)
    probability_true = predictions.probabilities[rows, predictions.labels]
    frame = pandas.DataFrame({
        "path": predictions.paths,
        "true": names[predictions.labels],
        "predicted": names[predictions.predicted],
        "probability": predictions.confidence,
        "probability_true": probability_true,
        "loss": -numpy.log(numpy.maximum(probability_true, TINY)),
        "correct": predictions.correct,
    })
    frame = frame.sort_values(["loss", "path"], ascending=[False, True], kind="mergesort")
    return frame.head(k if k is not None else len(frame)).reset_index(drop=True)


def most_confused(predictions, min_count=1) -> pandas.DataFrame:
    """Off-diagonal (true, predicted) pairs seen at least ``min_count`` times, most frequent first.

    Columns: true, predicted, count, share_of_true (count over the true class's images: classes differ in size).
    Ties keep the class order of the predictions table.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, numpy.integer)) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer, not {min_count!r}")
    predictions = _predictions(predictions)
    classes = len(predictions.class_names)
    matrix = numpy.zeros((classes, classes), dtype=int)
    numpy.add.at(matrix, (predictions.labels, predictions.predicted), 1)
    support = matrix.sum(axis=1)
    true, predicted = numpy.nonzero((matrix >= min_count) & ~numpy.eye(classes, dtype=bool))
    counts = matrix[true, predicted]
    order = numpy.lexsort((predicted, true, -counts))  # last key sorts first: count desc, then class order
    names = numpy.asarray(predictions.class_names, dtype=object)
    return pandas.DataFrame({
        "true": names[true[order]],
        "predicted": names[predicted[order]],
        "count": counts[order],
        "share_of_true": counts[order] / support[true[order]],
    })


def explained_images(predictions_a, predictions_b, count: int) -> list:
    """Row indices of ``count`` test images: where the models disagree first, then one per class, in test order."""
    a, b = align(predictions_a, predictions_b)
    chosen = [int(index) for index in numpy.flatnonzero(a.correct != b.correct)][: max(count // 2, 1)]
    for label in range(len(a.class_names)):
        for index in numpy.flatnonzero(a.labels == label):
            if len(chosen) >= count:
                return chosen
            if int(index) not in chosen:
                chosen.append(int(index))
                break
    rest = [index for index in range(len(a)) if index not in chosen]
    return (chosen + rest)[:count]
