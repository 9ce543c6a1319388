"""The cached path's training: fit only the trainable suffix on cached frozen features (span path, bf16 suffix
where native), and score the test set from the float32 features."""

import numpy

from heroes import machine
from heroes.config import TrainConfig
from heroes.training import fit, spec, train_evaluation
from heroes.training.cached import features, precision, span


def suffix_uses_xla(config: TrainConfig, suffix_precision: str = "float32", suffix=None) -> bool:
    """XLA for training the suffix on cached features in float32, where nothing else changes (one device, no op
    determinism), unless the suffix convolves on a CPU with AVX-512.

    Keras turns XLA off on CPU-only machines by default. Measured with ``score_train_set=False``, 6 epochs of VGG16's
    fc1/fc2/output on 1,200 cached rows: on a quiet 2-core AVX-512 CPU XLA takes the span path from ~3.0 to ~2.1 s
    per epoch and the direct path from ~14 to ~9 s (oneDNN computes fc2's input gradient d·Wᵀ at a third of its
    x·W speed; XLA does not); on a quiet 2-core AVX2 CPU it halves ResNet50's conv5 time per training image
    (108 -> 54 ms). A convolutional suffix on AVX-512 is faster with oneDNN: conv5 float32 ~35 vs ~90 ms per training
    image, mixed bf16 ~19 vs ~33 ms (XLA's CPU backend does not run bf16 through oneDNN).
    The end-to-end path keeps Keras' default: it is the reference a Keras user gets.
    """
    if config.strategy != "none" or config.deterministic or suffix_precision != "float32":
        return False
    convolves = suffix is None or any(len(weight.shape) > 2 for weight in suffix.weights)  # unknown: assume it does
    return not (convolves and "avx512f" in machine.cpu_flags())


def view_zero(cache, image_set) -> numpy.ndarray:
    return cache.load_many(image_set.sha256, numpy.zeros(len(image_set), int))


def _suffix_inputs(suffix, path, config, fetch, count, val_features) -> tuple:
    """(model to fit, fetch(indices, views), validation inputs, ``span.Span`` or None) of the chosen path."""
    if path == "direct":
        return suffix, fetch, val_features, None
    dense, _ = span.span_dense(suffix)
    views = config.views
    # X: image i as view v at row i * views + v, every cached training input once
    rows = fetch(numpy.repeat(numpy.arange(count), views), numpy.tile(numpy.arange(views), count))
    fitted = span.build_span(suffix, dense, rows)
    return fitted.model, lambda indices, chosen: fitted.batch(indices * views + chosen), \
        fitted.inputs_for(val_features), fitted


def fit_suffix(suffix, config, fetch, labels, validation, class_weight=None, progress=False, xla=None,
               callbacks=()) -> dict:
    """Fit the trainable ``suffix`` on cached inputs; its layers (shared with the full model) end up trained.

    ``fetch(indices, views)`` gives the float32 features of training images ``indices`` as ``views``; ``validation``
    is (features, labels). The first Dense layer takes the span path where that is exact
    (``heroes.training.cached.span``),
    a convolutional suffix trains in mixed bf16 where that is native (``heroes.training.cached.precision``); batches,
    order and seeds are the same whichever path runs. Returns the history, the best epoch, the path and precision
    used (and why), and the seconds of each step. ``xla`` None: ``suffix_uses_xla``'s choice.
    """
    steps, config = {}, spec.final_config(config)  # views 1 without augmentation, whoever calls
    suffix_precision = precision.resolve_suffix_precision(config.suffix_precision, suffix)
    with precision.suffix_policy(suffix, suffix_precision):
        path, reason = span.choose_path(suffix, config, len(labels) * config.views)
        with fit.timed(steps, "suffix_inputs"):
            trained, fetch, val_inputs, fitted = _suffix_inputs(suffix, path, config, fetch, len(labels),
                                                                validation[0])
        batches = fit.EpochBatches(fetch, labels, config.batch_size, config.seed, config.views)
        xla = suffix_uses_xla(config, suffix_precision, suffix) if xla is None else bool(xla)
        # training images (view 0) scored with the end-of-epoch weights: measured overfitting gaps
        train_eval = train_evaluation.for_run(lambda indices: fetch(indices, numpy.zeros(len(indices), int)),
                                              labels, config, fit.PREDICT_BATCH)
        with fit.timed(steps, "fit"):
            history, best_epoch = fit.fit(trained, batches, (val_inputs, validation[1]), config, class_weight, progress,
                                       xla=xla, extra_callbacks=(*train_eval, *callbacks))
    if fitted is not None:
        with fit.timed(steps, "materialise"):
            fitted.materialise()
    return {"history": history, "best_epoch": best_epoch, "train_time_s": steps["fit"], "steps": steps,
            "suffix_path": path, "suffix_path_reason": reason, "suffix_precision": suffix_precision,
            "suffix_xla": xla}


def cached(model, prefix, suffix, config, sets, class_weight, cache, progress, callbacks=()) -> dict:
    """Extract (or reuse) the frozen prefix's features, then fit only the suffix on them (``fit_suffix``)."""
    steps = {}
    with fit.timed(steps, "extract_features"):
        extract_run_features(prefix, cache, sets, config, progress)
    sha = numpy.asarray(sets["train"].sha256)
    with fit.timed(steps, "load_validation"):
        validation = (view_zero(cache, sets["val"]), sets["val"].labels)
    outcome = fit_suffix(suffix, config, lambda indices, views: cache.load_many(sha[indices], views),
                         sets["train"].labels, validation, class_weight, progress, callbacks=callbacks)
    return outcome | {"steps": steps | outcome["steps"], "feature_time_s": steps["extract_features"]}


def float32_store(prefix, cache):
    """The float32 feature store beside the bf16 ``cache`` (same prefix, backbone, weights, size and folder)."""
    meta = cache.meta
    return features.open_store(prefix, meta["backbone"], meta["weights"], meta["image_size"], "float32",
                               cache.directory.parent)


def test_probabilities(model, prefix, suffix, cache, config, test, progress=False) -> tuple:
    """(test-set probabilities of the final float32 model, the store its test features came from or None).

    bf16 features only steer training; reported numbers come from the float32 model that is saved, fed float32
    test features from the float32 store beside the bf16 one: computed once, then every later run with this prefix
    (the other seeds of a shared initialisation, a rerun) reads them instead of passing the images again.
    """
    if suffix is None:
        probabilities = model.predict(fit.float_images(test), batch_size=fit.PREDICT_BATCH, verbose=0)
        return numpy.asarray(probabilities, dtype="float64"), None
    store = cache
    if config.feature_dtype != "float32":
        store = features.ensure_features(prefix, float32_store(prefix, cache), test, views=(0,), progress=progress)
    inputs = view_zero(store, test)
    probabilities = numpy.asarray(suffix.predict(inputs, batch_size=fit.PREDICT_BATCH, verbose=0), dtype="float64")
    return probabilities, (store if store is not cache else None)


def extract_run_features(prefix, store, sets: dict, config: TrainConfig, progress=True):
    """Fill ``store`` as a run needs it: train views ``range(config.views)``, val view 0, and test view 0 when the
    features are float32 (bf16 test features would never be read: the run scores the float32 model on images)."""
    extractor = prefix if config.feature_dtype == "float32" else features.bfloat16_prefix(prefix)
    wanted = ("train", "val", "test") if config.feature_dtype == "float32" else ("train", "val")
    for name, views in (("train", range(config.views)), ("val", (0,)), ("test", (0,))):
        if name in sets and name in wanted:
            features.ensure_features(extractor, store, sets[name], views=tuple(views), progress=progress)
    return store
