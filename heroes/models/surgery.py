"""Graph surgery: split a model into its frozen prefix and trainable suffix at the first trainable layer."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (last residual block trained) is the reference ResNet here, and every run card names the backbone used.

import keras

from heroes.errors import UserError


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
    ``conv5_block2_out``, which feeds both branches of conv5_block3.
    """
    nodes = _nodes_in_order(model)
    cut = _find_cut(model, nodes)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    prefix = keras.Model(inputs, cut, name=f"{model.name}_prefix")
    suffix = _rebuild_from(model, nodes, cut, name=f"{model.name}_suffix")
    return prefix, suffix
