"""What `heroes train` is asked (``TrainSpec``) and what it then runs (``ResolvedTrain``), resolved once per entry.

The CLI, ``heroes.train`` and the benchmarks build a ``TrainSpec`` and call ``.resolve()`` once: every number is
checked before any data is read, the recipe's defaults are filled in, and the weights are chosen (a missing file is
refused up front). Training then takes the resolved spec as it is. The CLI's defaults are this class's.
"""

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from heroes.config import FinalConfig, TrainConfig
from heroes.errors import UserError

if TYPE_CHECKING:  # the annotation only: this module stays free of TensorFlow, so the CLI can read its defaults
    from heroes.models.weights import WeightsChoice

# EfficientNet-Lite0 is the one backbone with ImageNet weights offline. The default recipe, fine_tune, was chosen on
# validation splits of real photos (benchmarks/recipe_search.py); `study` is the study's SGD recipe under a freeze
# policy, on cached features (the recipe the notebooks reproduce).
DEFAULT_BACKBONE = "efficientnet_lite0"
RECIPES = ("fine_tune", "study")
DEFAULT_RECIPE = "fine_tune"
STUDY_EPOCHS = 10
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
MAX_IMAGE_SIZE = 1024  # a 1024 px float32 batch of 32 is 400 MB; beyond that a 2-core machine only swaps
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_EPOCHS = 1000
MAX_BATCH = 4096
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainSpec:
    """What `heroes train` was asked for; None means the recipe's own default. Saved in the run's metrics."""

    data_dir: str
    recipe: str = DEFAULT_RECIPE
    backbone: str = DEFAULT_BACKBONE
    policy: str | None = None  # study recipe only: study, linear_probe or full (default study)
    weights: str = "auto"
    epochs: int | None = None
    image_size: int | None = None  # None: the backbone's default size
    seed: int = 0
    split: tuple = DEFAULT_SPLIT  # train, validation, test fractions of every class
    learning_rate: float | None = None
    batch_size: int | None = None
    label_smoothing: float | None = None  # fine_tune only
    augment: bool | None = None
    tta: bool | None = None  # fine_tune only
    cache_dir: str | None = None  # decoded images and features; default $HEROES_CACHE_DIR or the user cache folder

    def check(self) -> "TrainSpec":
        """This request, or a one-line ``UserError`` for the first value out of range; reads nothing."""
        from heroes.models import backbones, build

        if self.recipe not in RECIPES:
            raise UserError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        spec = backbones.get_backbone(self.backbone)
        numbers = (("--seed", self.seed, 0, MAX_SEED), ("--epochs", self.epochs, 1, MAX_EPOCHS),
                   ("--batch-size", self.batch_size, 1, MAX_BATCH),
                   ("--image-size", self.image_size, spec.min_size, MAX_IMAGE_SIZE))
        for flag, value, low, high in numbers:
            if value is not None and not low <= value <= high:
                raise UserError(f"{flag} must be a whole number from {low} to {high}, got {value}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise UserError(f"--lr must be in (0, 1], got {self.learning_rate}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        only_fine_tune = {"--label-smoothing": self.label_smoothing, "--tta/--no-tta": self.tta}
        unused = only_fine_tune if self.recipe == "study" else {"--policy": self.policy}
        for flag, value in unused.items():
            if value is not None:
                raise UserError(f"{flag} does not apply to --recipe {self.recipe}")
        if self.policy is not None and self.policy not in build.POLICIES:
            raise UserError(f"unknown policy {self.policy!r}; known: {', '.join(build.POLICIES)}")
        check_split(self.split)
        return self

    def resolve(self) -> "ResolvedTrain":
        """Checked, every default filled in, the weights chosen: what training runs, before any data is read."""
        from heroes.models import backbones, build
        from heroes.training import finetune

        self.check()
        size = self.image_size or backbones.get_backbone(self.backbone).default_size
        choice = build.choose_weights(self.backbone, self.weights, size)
        overrides = {"epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                     "augment": self.augment}
        if self.recipe == "fine_tune":
            overrides |= {"label_smoothing": self.label_smoothing, "tta": self.tta}
            chosen = {key: value for key, value in overrides.items() if value is not None}
            settings = dataclasses.replace(finetune.FineTune(), **chosen).check()
        else:
            chosen = {key: value for key, value in overrides.items() if value is not None}
            config = TrainConfig(backbone=self.backbone, policy=self.policy or "study", weights=self.weights,
                                 weights_choice=choice, epochs=STUDY_EPOCHS, image_size=size, seed=self.seed)
            settings = final_config(dataclasses.replace(config, **chosen))
        return ResolvedTrain(self, size, choice, settings)


@dataclass(frozen=True)
class ResolvedTrain:
    """A ``TrainSpec`` resolved: the image size, the weights it starts from, and the recipe's full settings
    (``FineTune`` or a final ``TrainConfig``)."""

    spec: TrainSpec
    image_size: int
    weights: "WeightsChoice"
    settings: object


def defaults() -> dict:
    """{field: default} of ``TrainSpec``: what the CLI shows and uses when an option is left out."""
    return {field.name: field.default for field in dataclasses.fields(TrainSpec)
            if field.default is not dataclasses.MISSING}


def check_split(values) -> tuple:
    """Three positive fractions summing to at most 1, or ``UserError``."""
    values = tuple(values)
    if len(values) != 3 or not all(0 < value < 1 for value in values) or sum(values) > 1 + 1e-9:
        raise UserError(f"--split must be three fractions in (0, 1) adding up to at most 1, not {values}")
    return values


def parse_split(text: str) -> tuple:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1); ``UserError`` unless three positive fractions summing to at most 1."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--split must be three fractions like 0.8,0.1,0.1, not {text!r}") from None
    try:
        return check_split(values)
    except UserError:
        raise UserError(f"--split must be three fractions in (0, 1) adding up to at most 1, not {text!r}") from None


def final_config(config: TrainConfig) -> "FinalConfig":
    """The config as it will run: checked, ``views`` 1 without augmentation, ``feature_dtype`` resolved; a config
    that is final already is returned as it is (it was resolved once, at its entry point)."""
    from heroes.models.backbones import get_backbone
    from heroes.training.cached import features

    if isinstance(config, FinalConfig):
        return config
    if config.epochs < 1 or config.batch_size < 1:
        raise UserError(f"epochs and batch_size must be at least 1, got {config.epochs} and {config.batch_size}")
    if config.learning_rate <= 0 or not 0 <= config.momentum < 1:
        raise UserError(f"need learning_rate > 0 and momentum in [0, 1), got {config.learning_rate}, {config.momentum}")
    if config.class_weights not in CLASS_WEIGHTS:
        raise UserError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, not {config.class_weights!r}")
    if config.early_stopping < 0:
        raise UserError(f"early_stopping is a patience in epochs (0 = off), not {config.early_stopping}")
    if config.augment and config.views < 2:
        raise UserError(f"augment=True needs views >= 2 (view 0 is the original image), got views={config.views}")
    _check_optimizer(config)
    views = config.views if config.augment else 1
    dtype = features.resolve_feature_dtype(config.feature_dtype, get_backbone(config.backbone).bf16_features)
    return FinalConfig(**{**vars(config), "views": views, "feature_dtype": dtype})


def _check_optimizer(config: TrainConfig) -> None:
    from heroes.training.cached import precision, span

    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {config.optimizer!r}")
    if config.weight_decay < 0:
        raise UserError(f"weight_decay must be >= 0, not {config.weight_decay}")
    if config.suffix_path not in span.PATHS:
        raise UserError(f"suffix_path must be one of {', '.join(span.PATHS)}, not {config.suffix_path!r}")
    if config.suffix_precision not in precision.PRECISIONS:
        raise UserError(f"suffix_precision must be one of {', '.join(precision.PRECISIONS)}, "
                        f"not {config.suffix_precision!r}")
