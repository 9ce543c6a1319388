"""predict: the command gives the probabilities evaluation recorded, reports bad inputs and keeps going."""

import json
import shutil

import numpy
import pytest
from PIL import Image

from heroes import cli
from heroes.config import TrainConfig
from heroes.data import arrays, scan, split
from heroes.data.decode import decode_image
from heroes.data.synthetic import dataset
from heroes.serving import predict
from heroes.training import runs
from heroes.training.train import train_run

# MobileNetV2 at 32 px: a real registered backbone whose run directory is 9 MB (VGG16's is 130 MB).
CONFIG = TrainConfig(backbone="mobilenetv2", image_size=32, weights=None, epochs=2, batch_size=8, learning_rate=0.01)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained through the real pipeline: synth (48 px) -> scan -> split -> arrays (32 px) -> train_run."""
    root = tmp_path_factory.mktemp("predict")
    dataset.write_dataset(root / "raw", per_class=6, size=48, seed=0, progress=False)
    splits = split.make_splits(scan.scan(root / "raw", progress=False), train=3, val=1, test=2)
    sets = arrays.load_split_arrays(splits, CONFIG.image_size, cache_dir=root / "arrays", progress=False)
    result = train_run(CONFIG, sets, run_dir=root / "run", cache_dir=root / "features", progress=False)
    return result, root


@pytest.fixture(scope="module")
def predictor(trained):
    """(model, class names) loaded once: loading MobileNetV2 takes seconds, each CLI test would pay it again."""
    return predict.load_predictor(trained[0].run_dir)


@pytest.fixture
def preloaded(predictor, monkeypatch):
    """The command line with its model load replaced by the module's loaded model (test_cli_json loads for real)."""
    monkeypatch.setattr(predict, "load_predictor", lambda path: predictor)


def recorded(result) -> tuple:
    """(paths, probabilities) from the run's predictions.csv."""
    frame = runs.read_run(result.run_dir).predictions
    return list(frame["path"]), frame[runs.probability_columns(result.metrics["class_names"])].to_numpy()


def as_matrix(predictions, class_names) -> numpy.ndarray:
    return numpy.array([[dict(p.top)[name] for name in class_names] for p in predictions])


def test_python_api_equals_the_recorded_evaluation(trained, predictor):
    result, _ = trained
    paths, probabilities = recorded(result)
    class_names = result.metrics["class_names"]
    assert predictor[1] == class_names
    predictions = list(predict.iter_predictions(*predictor, paths, top_k=len(class_names), batch_size=5))
    assert [p.path for p in predictions] == paths and {p.status for p in predictions} == {"ok"}
    numpy.testing.assert_allclose(as_matrix(predictions, class_names), probabilities, atol=1e-5)


def test_cli_json_equals_the_recorded_evaluation(trained, capsys):
    result, _ = trained
    paths, probabilities = recorded(result)
    class_names = result.metrics["class_names"]
    model = str(result.run_dir / runs.MODEL)
    assert cli.main(["predict", *paths, "--model", model, "--top-k", "99", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == paths
    got = numpy.array([[{t["label"]: t["probability"] for t in line["top"]}[name] for name in class_names]
                       for line in lines])
    numpy.testing.assert_allclose(got, probabilities, atol=1e-5)
    assert all(line["predicted"] == line["top"][0]["label"] for line in lines)


def test_other_encodings_of_the_same_pixels_predict_the_same(trained, predictor, tmp_path):
    """Lossless WebP, an opaque RGBA PNG and an EXIF-rotated PNG decode to the original pixels."""
    result, _ = trained
    source = recorded(result)[0][0]
    image = decode_image(source)
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "b.webp", lossless=True)
    image.convert("RGBA").save(tmp_path / "c.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: store it rotated the other way
    image.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "d.png", exif=exif)
    predictions = list(predict.iter_predictions(*predictor, [tmp_path], top_k=6))
    assert [p.path.rsplit("/", 1)[-1] for p in predictions] == ["a.png", "b.webp", "c.png", "d.png"]
    matrix = as_matrix(predictions, result.metrics["class_names"])
    numpy.testing.assert_allclose(matrix, numpy.repeat(matrix[:1], 4, axis=0), atol=1e-6)


def test_folders_are_walked_and_bad_inputs_reported_while_the_rest_predict(trained, preloaded, tmp_path, capsys):
    result, root = trained
    folder = tmp_path / "mixed"
    shutil.copytree(root / "raw" / "batman", folder / "z" / "batman")
    (folder / "notes.txt").write_text("<html>not an image</html>")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (folder / ".hidden.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    argv = ["predict", str(folder), str(tmp_path / "missing.png"), str(tmp_path / "empty"),
            "--model", str(result.run_dir), "--top-k", "2"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["image", "top-1", "top-2"]
    assert lines[1].startswith(str(folder / "broken.jpg")) and "rejected: " in lines[1]
    assert lines[2].endswith("rejected: not an image (looks like HTML/text)")
    batman = [line for line in lines if "/z/batman/" in line]
    assert len(batman) == 6 and all(line.count("%") == 2 for line in batman)
    assert lines[-2].startswith(str(tmp_path / "missing.png")) and lines[-2].endswith("rejected: not found")
    assert lines[-1].endswith("rejected: folder holds no files")
    assert not any(".hidden" in line for line in lines)
    assert "6 of 10 images predicted, 4 rejected" in err


def test_nothing_predictable_is_one_line_and_exit_2(trained, preloaded, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "nope.png"), "--model", str(trained[0].run_dir)]) == 2
    assert capsys.readouterr().err.strip() == "error: no image could be predicted (0 of 1 images predicted, 1 rejected)"


def test_a_missing_or_broken_model_is_one_line_and_exit_2(trained, tmp_path, capsys):
    result, _ = trained
    image = recorded(result)[0][0]
    assert cli.main(["predict", image, "--model", str(tmp_path / "absent.keras")]) == 2
    assert capsys.readouterr().err.strip() == f"error: model file not found: {tmp_path / 'absent.keras'}"
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    shutil.copy(result.run_dir / "model.class_names.json", tmp_path / "broken.class_names.json")
    assert cli.main(["predict", image, "--model", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot load model {broken}")


def test_a_model_that_does_not_take_images_is_refused(trained, tmp_path):
    from heroes.models import saving, surgery

    result, _ = trained
    _, suffix = surgery.split_at_first_trainable(result.model)  # takes features, not images
    saving.save_model(suffix, tmp_path / "suffix.keras", result.metrics["class_names"])
    with pytest.raises(ValueError, match="incompatible model .* not square RGB images"):
        predict.load_predictor(tmp_path / "suffix.keras")


@pytest.mark.parametrize(("value", "text"), [(0.0, "<0.1%"), (0.0004, "<0.1%"), (0.0123, "1.2%"),
                                             (0.9994, "99.9%"), (0.99996, ">99.9%")])
def test_probabilities_read_well(value, text):
    assert predict.format_probability(value) == text
