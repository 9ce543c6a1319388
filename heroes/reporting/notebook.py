"""The second cell of the study notebooks (02–04): parameters resolved once, notebook 01's outputs read one way."""

from dataclasses import dataclass
from pathlib import Path

import pandas

from heroes import paths
from heroes.data import scan, sources
from heroes.errors import UserError
from heroes.models.backbones import display_name
from heroes.reporting.study_metrics import data_record


@dataclass(frozen=True, eq=False)
class Setup:
    """What a study notebook derives from its parameters before it trains: absolute folders, notebook 01's
    cleaned manifest and split, the seeds and backbones checked, and where its figures and metrics go."""

    name: str  # the study step: names the metrics file, the run folders and (by its number) the figures
    data_dir: Path
    reports_dir: Path
    models_dir: Path
    seeds: tuple  # distinct training seeds, the first one paired, explained and (in 02 and 03) the only one
    backbones: tuple  # registered names, distinct
    manifest: pandas.DataFrame  # notebook 01's cleaned manifest, image paths absolute
    splits: pandas.DataFrame  # notebook 01's split, restricted to the notebook's classes when it names some
    manifest_hash: str  # ``heroes.data.scan.manifest_hash`` of ``manifest``: same images and labels, same hash
    embedded: dict | None  # how the embedded synthetic dataset was drawn; None: the user's own images

    @property
    def first_seed(self) -> int:
        return self.seeds[0]

    @property
    def names(self) -> dict:
        """{backbone: its name as papers write it} (``vgg16`` -> ``VGG16``)."""
        return {backbone: display_name(backbone) for backbone in self.backbones}

    @property
    def array_cache(self) -> Path:
        return self.data_dir / "processed"

    @property
    def feature_cache(self) -> Path:
        return self.data_dir / "processed" / "features"

    @property
    def metrics_path(self) -> Path:
        return self.reports_dir / "metrics" / f"{self.name}.json"

    @property
    def figures_dir(self) -> Path:
        return self.reports_dir / "figures"

    def figure(self, name: str) -> Path:
        """``<reports>/figures/<NN>-<name>.png``, NN the notebook's number."""
        return self.figures_dir / f"{self.name.split('-', 1)[0]}-{name}.png"

    def data_record(self, sets: dict) -> dict:
        """The ``data`` field of this notebook's metrics file (``heroes.reporting.study_metrics.data_record``)."""
        return data_record(self.embedded, self.manifest_hash, self.splits, sets)


def _folder(given, default: Path) -> Path:
    """A folder parameter as an absolute path: relative ones are taken from the kernel's working directory."""
    return Path(given if given else default).expanduser().resolve()


def _distinct(values, what: str, example: str) -> tuple:
    values = tuple(values)
    if not values:
        raise UserError(f"{what} is empty: give at least one, e.g. {what} = {example}")
    if len(set(values)) != len(values):
        raise UserError(f"{what} must be distinct, got {list(values)}")
    return values


def setup(name: str, data_dir=None, reports_dir=None, models_dir=None, seeds=(0,), backbones=("vgg16",),
          classes=None, minimum_backbones=1) -> Setup:
    """Resolve a study notebook's parameters once.

    ``data_dir`` defaults to the project's ``data/``, ``reports_dir`` to its ``reports/``, ``models_dir`` to
    ``models/`` beside ``data_dir`` (the project's ``models/`` for the project's data, so runs on other data never
    overwrite them). Notebook 01's ``interim/clean_manifest.csv`` and ``interim/splits.csv`` are read here (a
    ``UserError`` says to run notebook 01 when they are missing); ``classes`` restricts the split to those classes.
    """
    data = _folder(data_dir, paths.DATA)
    seeds = tuple(int(seed) for seed in _distinct(seeds, "seeds", "[0]"))
    backbones = _distinct(backbones, "backbones", '["vgg16"]')
    for backbone in backbones:
        display_name(backbone)  # an unknown name fails here, listing the registered ones
    if len(backbones) < minimum_backbones:
        raise UserError(f"backbones must name at least {minimum_backbones} different registered backbones, "
                        f"got {list(backbones)}")
    manifest = sources.read_clean_manifest(data)
    return Setup(name=name, data_dir=data, reports_dir=_folder(reports_dir, paths.REPORTS),
                 models_dir=_folder(models_dir, data.parent / "models"), seeds=seeds, backbones=backbones,
                 manifest=manifest, splits=sources.load_split(data, classes),
                 manifest_hash=scan.manifest_hash(manifest), embedded=sources.embedded_settings(data))
