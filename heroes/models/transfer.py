"""Weights into a heroes model: strict loading, layer-by-name transfer from keras.applications files."""

# The study fine-tuned a PyTorch ResNet18; keras.applications ships no ResNet18 with ImageNet weights, so
# ``resnet50`` (last residual block trained) is the reference ResNet here, and every run card names the backbone used.

import re
import warnings

import keras
import numpy

from heroes.errors import UserError, short_error
from heroes.models.backbones import HEAD_LAYERS, OUTPUT_LAYER


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


def with_weights(spec, choice, size, assemble):
    """A fresh model holding ``choice``'s weights; a file that fails to load raises and nothing half-loaded escapes."""
    if choice.path is None:
        return assemble()
    if choice.imagenet and spec.imagenet_loader is not None:
        return spec.imagenet_loader(assemble(), choice.path)  # checks everything before it writes any weight
    errors = []
    if not choice.imagenet:
        model = assemble()
        try:
            _load_strictly(model, choice.path)
            return model
        except Exception as error:  # keras raises ValueError, KeyError, OSError... for a file of another shape
            errors.append(f"as a whole heroes {spec.name} model: {short_error(error)}")
    tops = (choice.include_top,) if choice.imagenet else (spec.head == "dense" and _holds_dense_layers(choice.path),)
    for include_top in tops:
        donor = _donor(spec, include_top, size)
        try:
            _load_strictly(donor, choice.path)
        except Exception as error:
            errors.append(f"as keras.applications {spec.name} (include_top={include_top}): {short_error(error)}")
            continue
        model = assemble()
        _transfer(donor, model, spec, choice)
        return model
    raise UserError(
        f"cannot load weights file {choice.path} into {spec.name}: {'; '.join(errors)}. The file may be truncated, "
        f"corrupt or saved from another architecture: save or download it again, or pass weights=None"
    )
