"""The study notebooks' setup cell: one helper resolves the folders, reads notebook 01's outputs, checks the seeds."""

import ast
import json

import pandas
import pytest

from heroes import paths
from heroes.data import scan, sources, split
from heroes.errors import UserError
from heroes.reporting import notebook

CLASSES = ("batman", "not_a_hero", "superman")
PROJECT_NOTEBOOKS = paths.PROJ_ROOT / "notebooks"


def write_notebook_01_outputs(data_dir, classes=CLASSES):
    """A cleaned manifest and its split, as notebook 01 writes them: 4 train, 1 val, 1 test per class."""
    rows = []
    for label in classes:
        for index, split_name in enumerate(("train",) * 4 + ("val", "test")):
            sha = f"{label}-{index}".encode().hex().ljust(64, "0")[:64]
            rows.append({"path": f"/images/{label}/{index}.png", "label": label, "status": "ok", "reason": "",
                         "sha256": sha, "width": 64, "height": 64, "format": "PNG", "group_key": sha,
                         "split": split_name})
    frame = pandas.DataFrame(rows)
    scan.write_manifest(frame.drop(columns=["group_key", "split"]), data_dir / "interim" / "clean_manifest.csv")
    split.write_splits(frame[["path", "label", "sha256", "group_key", "split"]], data_dir / "interim" / "splits.csv")


@pytest.fixture
def data_dir(tmp_path):
    write_notebook_01_outputs(tmp_path / "data")
    return tmp_path / "data"


def test_folders_are_absolute_and_models_sit_beside_the_data(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup = notebook.setup("02-batman-vs-human", "data", "reports", None, [0, 1], ["vgg16", "resnet50"])
    assert setup.data_dir == data_dir.resolve() and setup.reports_dir == (tmp_path / "reports").resolve()
    assert setup.models_dir == (tmp_path / "models").resolve()
    assert notebook.setup("02-batman-vs-human", "data", models_dir="elsewhere").models_dir == tmp_path / "elsewhere"
    assert setup.metrics_path == setup.reports_dir / "metrics" / "02-batman-vs-human.json"
    assert setup.figure("learning-curves") == setup.reports_dir / "figures" / "02-learning-curves.png"
    assert setup.array_cache == setup.data_dir / "processed"
    assert setup.feature_cache == setup.data_dir / "processed" / "features"
    assert setup.seeds == (0, 1) and setup.first_seed == 0
    assert setup.names == {"vgg16": "VGG16", "resnet50": "ResNet50"}


def test_without_folders_the_projects_are_used(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA", data_dir)
    monkeypatch.setattr(paths, "REPORTS", tmp_path / "reports")
    setup = notebook.setup("03-six-class")
    assert (setup.data_dir, setup.reports_dir, setup.models_dir) == (data_dir, tmp_path / "reports",
                                                                     tmp_path / "models")


def test_notebook_01s_outputs_are_read_one_way(data_dir):
    setup = notebook.setup("02-batman-vs-human", data_dir, classes=["Not a hero", "batman"])
    manifest = scan.read_manifest(data_dir / "interim" / "clean_manifest.csv")
    pandas.testing.assert_frame_equal(setup.manifest, manifest)
    assert setup.manifest_hash == scan.manifest_hash(manifest)
    assert set(setup.splits["label"]) == {"batman", "not_a_hero"} and len(setup.splits) == 12
    assert setup.embedded is None
    sources.marker_path(data_dir).parent.mkdir(parents=True)
    sources.marker_path(data_dir).write_text(json.dumps({"per_class": 6}))
    assert notebook.setup("04-vgg-vs-resnet", data_dir).embedded == {"per_class": 6}


def test_bad_parameters_are_one_line_errors(data_dir, tmp_path):
    with pytest.raises(UserError, match="seeds is empty"):
        notebook.setup("02-x", data_dir, seeds=[])
    with pytest.raises(UserError, match="seeds must be distinct"):
        notebook.setup("02-x", data_dir, seeds=[1, 1])
    with pytest.raises(UserError, match="backbones must be distinct"):
        notebook.setup("02-x", data_dir, backbones=["vgg16", "vgg16"])
    with pytest.raises(UserError, match="unknown backbone"):
        notebook.setup("02-x", data_dir, backbones=["robin"])
    with pytest.raises(UserError, match="at least 2 different"):
        notebook.setup("04-x", data_dir, backbones=["vgg16"], minimum_backbones=2)
    with pytest.raises(UserError, match="run notebooks/01-data-cleaning.ipynb first"):
        notebook.setup("02-x", tmp_path / "empty")


class FakeSet:
    class_names = CLASSES

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def test_the_data_record_says_whose_images_and_how_many(data_dir):
    setup = notebook.setup("03-six-class", data_dir)
    sets = {name: FakeSet(size) for name, size in (("train", 12), ("val", 3), ("test", 3))}
    record = setup.data_record(sets)
    assert record["source"] == "user" and record["embedded_settings"] is None and record["note"] == ""
    assert record["manifest_hash"] == setup.manifest_hash and record["splits"] == {"train": 12, "val": 3, "test": 3}
    assert record["per_class"]["batman"] == {"train": 4, "val": 1, "test": 1}
    assert record["class_names"] == list(CLASSES)


@pytest.mark.parametrize("name", ["02-batman-vs-human", "03-six-class-finetune", "04-vgg-vs-resnet"])
def test_each_study_notebook_sets_up_through_the_helper(name):
    cells = [cell for cell in json.loads((PROJECT_NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]
             if cell["cell_type"] == "code"]
    parameters, second = cells[0], cells[1]
    assert "parameters" in parameters["metadata"]["tags"]
    lines = "".join(parameters["source"]).splitlines()
    assert all(isinstance(node, ast.Assign) for node in ast.parse("\n".join(lines)).body)
    assert all(" # " in line for line in lines)  # a trailing comment on each: papermill --help-notebook shows it
    source = "".join(second["source"])
    assert "notebook.setup(" in source and ".resolve()" not in source and "paths." not in source
    notebook_text = "".join("".join(cell["source"]) for cell in cells)
    assert "def " not in notebook_text and "read_manifest(" not in notebook_text
