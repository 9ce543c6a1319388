"""The embedded dataset: deterministic, mixed formats, probes apart, learnable but not by colour, honest dirt."""

import hashlib
import io
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageFile, ImageOps

from heroes import cli
from heroes.config import CLASSES
from heroes.data.synthetic import dataset, drawing
from heroes.errors import UserError
from heroes.io import read_csv
from heroes.reporting.plots import sheets

CONTENT_EXTENSIONS = {"JPEG": {".jpg", ".jpeg"}, "PNG": {".png"}, "WEBP": {".webp"}, "GIF": {".gif"},
                      "BMP": {".bmp"}}


def _hashes(root):
    root = Path(root)
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _class_files(root, label):
    return sorted(path for path in (Path(root) / label).iterdir() if path.is_file())


def _full_decode_fails(path):
    """Decode the way the scanner does, truncation not tolerated (checked here independently of synthetic)."""
    previous, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as image:
            image.load()
            ImageOps.exif_transpose(image).convert("RGB")
    except Exception:
        return True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return False


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """360 clean images at 64 px: enough for the formats and the learnability checks."""
    out = tmp_path_factory.mktemp("medium") / "data"
    dataset.write_dataset(str(out), per_class=60, size=64, seed=3, progress=False)
    return out


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """A small dataset with every kind of defect and its truth file."""
    base = tmp_path_factory.mktemp("dirty")
    out, truth = str(base / "data"), base / "truth.csv"
    summary = dataset.write_dataset(out, per_class=30, size=64, seed=5, dirt=True, truth_path=truth,
                                      progress=False)
    return Path(out), read_csv(truth, required=dataset.TRUTH_COLUMNS), summary


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        dataset.write_dataset(str(tmp_path / name), per_class=6, size=48, seed=seed, dirt=True, progress=False)
    first, again, other = (_hashes(tmp_path / name) for name in "abc")
    assert first == again
    shared = set(first) & set(other)
    assert sum(first[name] == other[name] for name in shared) == 0


def test_images_do_not_depend_on_generation_order():
    one = drawing.draw_image("superman", numpy.random.default_rng([0, 2, 5]), 64)
    drawing.draw_image("batman", numpy.random.default_rng([0, 0, 0]), 64)
    two = drawing.draw_image("superman", numpy.random.default_rng([0, 2, 5]), 64)
    assert one.tobytes() == two.tobytes()


def test_every_class_folder_has_per_class_images_and_probes_live_apart(medium):
    assert sorted(p.name for p in medium.iterdir()) == sorted(CLASSES + (dataset.PROBES_DIR,))
    for label in CLASSES:
        files = _class_files(medium, label)
        assert len(files) == 60
        assert all(path.name.startswith(f"{label}_") and "probe" not in path.name for path in files)
    probes = medium / dataset.PROBES_DIR
    assert sorted(p.name for p in probes.iterdir()) == sorted(drawing.HERO_CLASSES)
    for label in drawing.HERO_CLASSES:
        assert len(list((probes / label).iterdir())) == dataset.probe_count(60) == 6


def test_formats_are_mixed_and_extensions_match_content(medium):
    formats = {}
    for path in sorted(medium.rglob("*")):
        if path.is_file():
            with Image.open(path) as image:
                assert path.suffix in CONTENT_EXTENSIONS[image.format], path
                formats[image.format] = formats.get(image.format, 0) + 1
                if image.mode == "RGBA":
                    formats["RGBA"] = formats.get("RGBA", 0) + 1
    assert set(CONTENT_EXTENSIONS) <= set(formats), formats
    assert formats["JPEG"] > sum(formats[kind] for kind in CONTENT_EXTENSIONS if kind != "JPEG")
    assert formats.get("RGBA", 0) >= 1


def _features(root):
    """Mean colour (3) and a 4x4 colour thumbnail (48) of every clean image, with labels."""
    means, thumbs, labels = [], [], []
    for label in CLASSES:
        for path in _class_files(root, label):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            means.append(numpy.asarray(rgb, dtype=numpy.float32).reshape(-1, 3).mean(axis=0) / 255)
            thumbs.append(numpy.asarray(rgb.resize((4, 4), Image.Resampling.BOX), dtype=numpy.float32).ravel() / 255)
            labels.append(label)
    return numpy.array(means), numpy.array(thumbs), numpy.array(labels)


def test_mean_colour_is_a_weak_cue_but_the_task_is_learnable(medium):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import NearestCentroid

    means, thumbs, labels = _features(medium)
    index_train, index_test = train_test_split(numpy.arange(len(labels)), test_size=0.3, stratify=labels,
                                               random_state=0)
    centroid = NearestCentroid().fit(means[index_train], labels[index_train])
    colour_accuracy = centroid.score(means[index_test], labels[index_test])
    logistic = LogisticRegression(C=10.0, max_iter=3000).fit(thumbs[index_train], labels[index_train])
    thumb_accuracy = logistic.score(thumbs[index_test], labels[index_test])
    print(f"nearest centroid on mean colour: {colour_accuracy:.3f}; "
          f"logistic regression on 4x4 thumbnails: {thumb_accuracy:.3f} (chance {1 / len(CLASSES):.3f})")
    assert colour_accuracy < 0.8
    assert thumb_accuracy > 0.3


def test_clean_images_never_collide(medium):
    thumbs = []
    for label in CLASSES:
        for path in _class_files(medium, label):
            with Image.open(path) as image:
                small = image.convert("L").resize((8, 8), Image.Resampling.BOX)
            thumbs.append(numpy.asarray(small, dtype=numpy.float32).ravel())
    thumbs = numpy.array(thumbs)
    distances = numpy.sqrt(((thumbs[:, None, :] - thumbs[None, :, :]) ** 2).mean(axis=2))
    numpy.fill_diagonal(distances, numpy.inf)
    assert distances.min() > 8.0  # grey levels, RMS over an 8x8 thumbnail


def test_truth_rows_match_the_files_on_disk(dirty):
    out, truth, summary = dirty
    assert f"{len(truth)} defects" in summary
    on_disk = {path.as_posix() for label in CLASSES for path in _class_files(out, label)}
    assert set(truth["path"]) <= on_disk
    assert truth["path"].str.startswith(out.as_posix() + "/").all()
    counts = dataset.dirt_counts(30)
    for label in CLASSES:
        rows = truth[truth["label"] == label]
        assert rows["kind"].value_counts().to_dict() == counts
        assert all(Path(path).parent.name == label for path in rows["path"])
        assert len(_class_files(out, label)) - len(rows) == 30  # cleaning the dirt leaves per_class
    assert not (out / dataset.PROBES_DIR).joinpath("x").exists()
    assert all(dataset.PROBES_DIR not in Path(path).parts for path in truth["path"])


def test_each_defect_is_what_the_truth_says(dirty):
    out, truth, _ = dirty
    for row in truth.itertuples():
        path = Path(row.path)
        if row.source:
            assert Path(row.source).is_file() and row.source not in set(truth["path"])
        if row.kind in ("corrupt", "not_image"):
            assert _full_decode_fails(path), row
        else:
            assert not _full_decode_fails(path), row
        if row.kind == "not_image":
            assert path.suffix in (".jpg", ".png") and row.source == ""
            with pytest.raises(Exception):
                Image.open(path)
        elif row.kind == "exact_duplicate":
            assert path.read_bytes() == Path(row.source).read_bytes()
            assert Path(row.source).parent.name == row.label == row.true_label
        elif row.kind == "near_duplicate":
            assert path.read_bytes() != Path(row.source).read_bytes()
            assert Path(row.source).parent.name == row.label
        elif row.kind == "cross_class_duplicate":
            assert Path(row.source).parent.name == row.true_label != row.label
        elif row.kind == "tiny":
            with Image.open(path) as image:
                assert min(image.size) < dataset.TINY_SIDE
        elif row.kind == "mislabelled":
            assert row.true_label in CLASSES and row.true_label != row.label and row.source == ""
        elif row.kind == "off_class":
            assert row.true_label == "" and row.source == ""
        elif row.kind == "corrupt":
            assert path.suffix == Path(row.source).suffix


def test_corrupt_bytes_always_fail_to_decode():
    rng = numpy.random.default_rng(0)
    image = drawing.draw_image("deadpool", rng, 48)
    for kind in ("jpeg", "png", "webp", "gif", "bmp"):
        data, _ = dataset.encode(image, rng, kind)
        assert dataset.decodes(data)
        for _ in range(5):
            assert not dataset.decodes(dataset.corrupt_bytes(data, rng))


def test_refuses_a_non_empty_folder_and_bad_arguments(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty; choose a new folder"):
        dataset.write_dataset(tmp_path / "full", per_class=2, size=32, progress=False)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    for arguments in ({"per_class": 0}, {"size": 31}, {"seed": -1}, {"per_class": 2.5},
                      {"truth_path": tmp_path / "new" / "truth.csv"}):
        with pytest.raises(UserError):
            dataset.write_dataset(tmp_path / "new", **{"per_class": 2, "size": 32, "progress": False,
                                                         **arguments})
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    dataset.write_dataset(tmp_path / "empty", per_class=1, size=32, progress=False)
    assert len(list((tmp_path / "empty").rglob("*.*"))) == len(CLASSES) + len(drawing.HERO_CLASSES)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left behind


def test_cli_synth_exit_codes(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "d"), "--per-class", "1", "--image-size", "32"]) == 0
    assert "wrote 6 images" in capsys.readouterr().out
    assert cli.main(["synth", "--out", str(tmp_path / "d"), "--per-class", "1"]) == 2
    assert cli.main(["synth", "--out", str(tmp_path / "e"), "--per-class", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_contact_sheet_survives_unreadable_files(tmp_path):
    good = tmp_path / "good.jpg"
    drawing.draw_image("batman", numpy.random.default_rng(1), 64).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"<html>not an image</html>")
    out = sheets.contact_sheet([good, bad, tmp_path / "missing.png"], ["good", "bad", "missing"],
                              tmp_path / "sheets" / "sheet.png", columns=2, thumb=48)
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width > 2 * 48
        grey = sheet.convert("RGB").getpixel((4 + 48 + 4 + 3, 4 + 3))
    assert grey == sheets.UNREADABLE
    with pytest.raises(ValueError):
        sheets.contact_sheet([good], ["a", "b"], tmp_path / "x.png")


def test_encode_matches_declared_format():
    image = drawing.draw_image("not_a_hero", numpy.random.default_rng(2), 40)
    for kind, expected in (("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("gif", "GIF"), ("bmp", "BMP")):
        data, ext = dataset.encode(image, numpy.random.default_rng(0), kind)
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == expected and ext in CONTENT_EXTENSIONS[expected]
