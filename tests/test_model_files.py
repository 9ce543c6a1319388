"""Model files as they come: not a zip, a zip bomb, logits instead of probabilities (issue 23, 11 to 13)."""

import json
import shutil
import zipfile

import numpy
import pytest
from PIL import Image

from heroes import cli
from heroes.errors import UserError, short_error
from heroes.models import saving

CLASSES = ["Batman", "Not a hero", "Superman"]


def save_tiny(folder, activation="softmax"):
    """A 3-class model on 8 px images whose last layer ignores the image: its scores are always 1, 2 and 3."""
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(3, activation=activation, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant([1.0, 2.0, 3.0]))(
        keras.layers.Flatten()(inputs))
    return saving.save_model(keras.Model(inputs, outputs), folder / "model.keras", CLASSES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def image(tmp_path):
    Image.new("RGB", (8, 8), (200, 10, 30)).save(tmp_path / "a.png")
    return tmp_path / "a.png"


def copy_model(tiny, folder, content=None):
    """``tiny`` and its class names in ``folder``, the model's bytes replaced by ``content`` when given."""
    shutil.copyfile(saving.class_names_path(tiny), saving.class_names_path(folder / "model.keras"))
    if content is None:
        shutil.copyfile(tiny, folder / "model.keras")
    else:
        (folder / "model.keras").write_bytes(content)
    return folder / "model.keras"


@pytest.mark.parametrize("content, what", [
    (b"", "it is empty (0 bytes), not a .keras zip archive"),
    (b"version https://git-lfs.github.com/spec/v1\n", "it holds text, not a .keras zip archive"),
    ("half", "it is a truncated or damaged zip archive"),
    (b"\x89HDF\r\n\x1a\n" + bytes(600), "it is an HDF5 file (a legacy .h5 model or weights), not a .keras zip archive"),
])
def test_a_model_file_that_is_no_keras_zip_is_named_for_what_it_is(tiny, tmp_path, image, capsys, content, what):
    content = tiny.read_bytes()[: tiny.stat().st_size // 2] if content == "half" else content
    model = copy_model(tiny, tmp_path, content)
    assert cli.main(["predict", str(image), "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: cannot load model {model}: {what}\n"


def test_a_long_error_keeps_its_cause_on_one_line():
    text = short_error(OSError("Failed to write /tmp/x/variables/variables.data-00000-of-00001\n" * 20 +
                               "No space left on device"))
    assert len(text) <= 300 and "\n" not in text and text.endswith("No space left on device")
    assert text.startswith("Failed to write /tmp/x/variables/")


def test_export_says_why_it_failed_even_after_a_long_message(tiny, tmp_path, capsys, monkeypatch):
    import keras

    def full(*args, **kwargs):
        raise RuntimeError("; ".join(["Error in op SaveV2 writing shard /tmp/out/variables"] * 10) +
                           ": No space left on device")

    monkeypatch.setattr(keras.Model, "export", full)
    assert cli.main(["export", "--model", str(tiny), "--out", str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.rstrip().endswith(": No space left on device"), err


def softmax(scores):
    exponentials = numpy.exp(numpy.asarray(scores) - max(scores))
    return exponentials / exponentials.sum()


def test_a_model_with_linear_outputs_gets_a_softmax_and_says_so(tmp_path, image, capsys):
    logits = save_tiny(tmp_path, activation=None)
    assert cli.main(["predict", str(image), "--model", str(logits), "--json"]) == 0
    out, err = capsys.readouterr()
    top = {row["label"]: row["probability"] for row in json.loads(out)["top"]}
    assert [top[name] for name in CLASSES] == pytest.approx(softmax([1, 2, 3]), abs=1e-6)  # not 1, 2 and 3
    assert f"warning: {logits} outputs scores, not probabilities (a row sums to 6): a softmax is added" in err


def test_a_model_with_softmax_outputs_is_used_as_it_is(tiny, image, capsys):
    assert cli.main(["predict", str(image), "--model", str(tiny), "--json"]) == 0
    out, err = capsys.readouterr()
    assert [row["probability"] for row in json.loads(out)["top"]] == pytest.approx(softmax([3, 2, 1]), abs=1e-6)
    assert "warning" not in err


def bomb(tiny, folder, member: str):
    """``tiny`` with ``member`` replaced by 40 MiB of zeros, deflated to about 40 KB."""
    model = copy_model(tiny, folder, b"")
    with zipfile.ZipFile(tiny) as original, zipfile.ZipFile(model, "w") as rebuilt:
        for info in original.infolist():
            if info.filename != member:
                rebuilt.writestr(info, original.read(info))
        zeros = zipfile.ZipInfo(member)
        zeros.compress_type = zipfile.ZIP_DEFLATED
        with rebuilt.open(zeros, "w") as inside:
            for _ in range(40):
                inside.write(bytes(2**20))
    return model


@pytest.mark.parametrize("member, words", [("config.json", "its config.json would expand to 40 MiB, over the 16 MiB"),
                                           ("model.weights.h5", "would expand to 40 MiB, over 100x")])
def test_a_zip_bomb_is_refused_from_the_zip_directory_before_keras_reads_it(tiny, tmp_path, monkeypatch, member,
                                                                            words):
    model = bomb(tiny, tmp_path, member)
    assert model.stat().st_size < 2**20
    monkeypatch.setattr(saving.keras.saving, "load_model", lambda *args, **kwargs: pytest.fail("Keras read it"))
    with pytest.raises(UserError, match=f"cannot load model {model}: .*{words}.*zip bomb"):
        saving.load_model(model)
