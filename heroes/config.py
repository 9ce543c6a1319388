"""Frozen dataclasses carrying the study's defaults; each run saves the one it used."""

from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the annotation only: importing heroes.models starts TensorFlow
    from heroes.models.weights import WeightsChoice

# Folder names of the study's six classes, in the order every model and table uses.
CLASSES = ("batman", "captain_marvel", "superman", "wonder_woman", "deadpool", "not_a_hero")
CLASS_DISPLAY_NAMES = {
    "batman": "Batman",
    "captain_marvel": "Captain Marvel",
    "superman": "Superman",
    "wonder_woman": "Wonder Woman",
    "deadpool": "Deadpool",
    "not_a_hero": "Not a hero",
}


@dataclass(frozen=True)
class SplitConfig:
    """Per-class image counts of the study: 200 train, 25 validation, 25 test."""

    train: float = 200
    val: float = 25
    test: float = 25
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """The study's six-class fine-tune: SGD lr 0.001, momentum 0.9, cross-entropy, 10 epochs."""

    backbone: str = "vgg16"
    policy: str = "study"
    image_size: int = 224
    weights: str = "auto"  # what was asked: auto, imagenet, none or a file path
    weights_choice: "WeightsChoice | None" = None  # what it resolved to (once, at the entry point); None: at build
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 0.001
    momentum: float = 0.9
    seed: int = 0
    augment: bool = False  # random flip + resized crop, precomputed as views of each training image
    views: int = 5  # views per training image when augment is on (view 0 is the original); 1 without
    early_stopping: int = 0  # patience in epochs on validation loss; 0 trains every epoch
    class_weights: str = "none"  # "balanced" weighs each class by n_train / (n_classes * n_class)
    deterministic: bool = False  # TensorFlow op determinism: slower, and stays on for the whole process
    feature_dtype: str = "float32"  # frozen-prefix precision for cached features: float32, bfloat16 or auto
    use_cache: bool = True  # train only the trainable suffix on cached frozen features (False: end to end)
    dropout: float = 0.0  # dropout after each new dense layer of the head
    score_train_set: bool = True  # re-score training images each epoch (measured overfitting gaps)
    score_train_images: int = 300  # at most this many, a fixed draw of the run's seed (0: every training image)
    strategy: str = "none"  # tf.distribute: none, mirrored or multiworker (TF_CONFIG); batch_size is then global
    optimizer: str = "sgd"  # sgd (the study's) or adam; only sgd can take the span path
    nesterov: bool = False  # Nesterov momentum for sgd
    weight_decay: float = 0.0  # decoupled weight decay of the optimizer; 0 (the study's) keeps the span path open
    suffix_path: str = "auto"  # first trainable Dense on cached features: auto (span where exact), span or direct
    suffix_precision: str = "auto"  # conv suffix on cached features: auto (bf16 where native), float32, mixed_bfloat16

    def __eq__(self, other) -> bool:  # by value: a FinalConfig equals the TrainConfig holding the same values
        return isinstance(other, TrainConfig) and asdict(self) == asdict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted((key, repr(value)) for key, value in asdict(self).items())))


@dataclass(frozen=True, eq=False)
class FinalConfig(TrainConfig):
    """A ``TrainConfig`` as it runs (``heroes.training.train.final_config``): checked, views and feature dtype
    resolved. Training takes it as it is, so one entry point resolves a config once."""


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, PurePath) else value


def to_dict(config) -> dict:
    """Plain dict of a config dataclass (nested choices and paths included), ready for ``json.dump``."""
    return _plain(asdict(config))
