"""Span path: fc1 trained as W0 + XᵀA is the direct path's model; whatever the span form cannot express goes direct."""

import dataclasses
import json

import keras
import numpy
import pytest
from test_train import SMALL, probabilities, small_sets

from heroes.models import build, saving, surgery
from heroes.training.cached import precision, span
from heroes.training.train import train_run


def capture_spans(monkeypatch) -> list:
    """Every ``span.Span`` a run builds, with its W0 (fc1's kernel before training) beside it."""
    captured, real = [], span.build_span

    def spy(suffix, dense, features):
        fitted = real(suffix, dense, features)
        captured.append((fitted, keras.ops.convert_to_numpy(dense.kernel).copy()))
        return fitted

    monkeypatch.setattr(span, "build_span", spy)
    return captured


@pytest.mark.parametrize("change", [
    {"dropout": 0.3},  # dropout after fc1 and fc2: the same layers, so the same masks on both paths
    {"nesterov": True, "augment": True, "views": 2, "class_weights": "balanced"},  # every view is a row of X
])
def test_span_and_direct_paths_train_the_same_model(change, tmp_path, monkeypatch):
    config = dataclasses.replace(SMALL, epochs=3, **change)
    sets, cache = small_sets(), tmp_path / "features"
    direct = train_run(dataclasses.replace(config, suffix_path="direct"), sets, run_dir=tmp_path / "direct",
                       cache_dir=cache, progress=False)
    captured = capture_spans(monkeypatch)
    spanned = train_run(config, sets, run_dir=tmp_path / "span", cache_dir=cache, progress=False)
    assert (direct.metrics["suffix_path"], spanned.metrics["suffix_path"]) == ("direct", "span")
    # float32 suffices at 1e-5 here: with 24-48 rows of 512 features the two orders of summation differ by ~1e-7
    # (the study's 1,200 x 25,088 shape gives ~1e-5 in probability: benchmarks/train_benchmark.py measures it).
    for column in ("loss", "val_loss"):
        numpy.testing.assert_allclose(spanned.history[column], direct.history[column], atol=1e-5)
    numpy.testing.assert_allclose(probabilities(spanned), probabilities(direct), atol=1e-5)
    assert spanned.history["loss"].iloc[-1] < spanned.history["loss"].iloc[0]  # it trains

    (fitted, initial), = captured
    rows = len(sets["train"]) * spanned.config.views
    assert fitted.features.shape == (rows, 512) and fitted.layer.span.shape == (rows, 4096)
    expected = initial.astype("float64") + fitted.features.T.astype("float64") @ fitted.layer.span.numpy()
    saved, _ = saving.load_model(tmp_path / "span" / "model.keras")
    kernel, bias = saved.get_layer("fc1").get_weights()
    numpy.testing.assert_allclose(kernel, expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(bias, fitted.layer.bias.numpy())
    numpy.testing.assert_allclose(kernel, direct.model.get_layer("fc1").get_weights()[0], atol=1e-5)


@pytest.mark.parametrize(("change", "use_cache", "reason"), [
    ({"optimizer": "adam"}, True, "optimizer 'adam'"),
    ({"weight_decay": 1e-4}, True, "weight_decay"),
    ({}, False, "not cached"),
])
def test_anything_else_takes_the_direct_path_and_records_it(change, use_cache, reason, tmp_path):
    config = dataclasses.replace(SMALL, epochs=1, **change)
    result = train_run(config, small_sets(), run_dir=tmp_path / "run", cache_dir=tmp_path / "features",
                       use_cache=use_cache, progress=False, save_model=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert metrics["suffix_path"] == record["suffix_path"] == result.metrics["suffix_path"] == "direct"
    assert reason in metrics["suffix_path_reason"]
    assert metrics["suffix_precision"] == record["suffix_precision"] == "float32"


@pytest.fixture(scope="module")
def vgg_suffix():
    keras.utils.set_random_seed(0)
    return surgery.split_at_first_trainable(build.build_model("vgg16", 2, 32, weights=None))[1]


def test_the_span_is_chosen_only_where_it_is_exact_and_smaller(vgg_suffix):
    assert span.choose_path(vgg_suffix, SMALL, rows=24)[0] == "span"
    path, reason = span.choose_path(vgg_suffix, SMALL, rows=512)
    assert path == "direct" and "no smaller" in reason
    assert "one device" in span.choose_path(vgg_suffix, dataclasses.replace(SMALL, strategy="mirrored"), 24)[1]
    with pytest.raises(ValueError, match="suffix_path='span' is not possible here: optimizer 'adam'"):
        span.choose_path(vgg_suffix, dataclasses.replace(SMALL, optimizer="adam", suffix_path="span"), 24)


def test_bad_optimizer_settings_are_clear_errors(tmp_path):
    for change, message in (({"optimizer": "rmsprop"}, "optimizer must be one of"),
                            ({"suffix_path": "fast"}, "suffix_path must be one of"),
                            ({"suffix_precision": "float16"}, "suffix_precision must be one of")):
        with pytest.raises(ValueError, match=message):
            train_run(dataclasses.replace(SMALL, **change), small_sets(), run_dir=tmp_path, progress=False)


def test_auto_precision_is_bf16_only_for_a_convolutional_suffix_on_native_bf16(vgg_suffix, monkeypatch):
    keras.utils.set_random_seed(0)
    conv_suffix = surgery.split_at_first_trainable(build.build_model("resnet50", 2, 32, weights=None))[1]
    for native, conv, dense in ((True, "mixed_bfloat16", "float32"), (False, "float32", "float32")):
        monkeypatch.setattr(precision, "bf16_is_fast", lambda native=native: native)
        assert precision.resolve_suffix_precision("auto", conv_suffix) == conv
        assert precision.resolve_suffix_precision("auto", vgg_suffix) == dense
    with precision.suffix_policy(conv_suffix, "mixed_bfloat16"):
        assert conv_suffix.get_layer("conv5_block3_3_conv").compute_dtype == "bfloat16"
        assert conv_suffix.get_layer("predictions").compute_dtype == "float32"
    assert {layer.compute_dtype for layer in conv_suffix.layers} == {"float32"}


def test_mixed_bf16_suffix_trains_float32_master_weights_and_saves_a_float32_model(tmp_path):
    sets = small_sets()
    config = dataclasses.replace(SMALL, backbone="resnet50", epochs=1, suffix_precision="mixed_bfloat16")
    result = train_run(config, sets, run_dir=tmp_path / "run", cache_dir=tmp_path / "features", progress=False)
    assert result.metrics["suffix_precision"] == result.record["suffix_precision"] == "mixed_bfloat16"
    assert result.metrics["suffix_path"] == "direct"  # conv5 comes first, not a Dense layer
    assert {weight.dtype for weight in result.model.weights} == {"float32"}
    saved, _ = saving.load_model(tmp_path / "run" / "model.keras")
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}
    again = saved.predict(sets["test"].images.astype("float32"), verbose=0)
    numpy.testing.assert_allclose(again, probabilities(result), atol=1e-5)


def test_xla_trains_dense_suffixes_everywhere_but_convolutional_ones_only_without_avx512(vgg_suffix, monkeypatch):
    from heroes import machine
    from heroes.training.cached import suffix_fit

    keras.utils.set_random_seed(0)
    conv_suffix = surgery.split_at_first_trainable(build.build_model("resnet50", 2, 32, weights=None))[1]
    config = dataclasses.replace(SMALL, backbone="vgg16")
    for flags, conv in (({"avx2", "avx512f"}, False), ({"avx2"}, True)):
        monkeypatch.setattr(machine, "cpu_flags", lambda flags=flags: flags)
        assert suffix_fit.suffix_uses_xla(config, "float32", vgg_suffix)  # fc1/fc2: memory-bound, XLA faster on both
        assert suffix_fit.suffix_uses_xla(config, "float32", conv_suffix) is conv
        assert not suffix_fit.suffix_uses_xla(config, "mixed_bfloat16", vgg_suffix)
        assert not suffix_fit.suffix_uses_xla(dataclasses.replace(config, deterministic=True), "float32", vgg_suffix)
