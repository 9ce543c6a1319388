"""The fine_tune recipe for real photos: a head fitted on cached pooled features, then the top of the backbone
fine-tuned end to end on augmented images (warm-up + cosine, label smoothing, BatchNorm frozen), best epoch kept."""

import math
import time
from dataclasses import dataclass

import keras
import numpy
import pandas

from heroes import machine
from heroes.data import augment
from heroes.errors import UserError
from heroes.models import build
from heroes.models.backbones import get_backbone
from heroes.training.callbacks import BestWeights, EpochTimer

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
PREDICT_BATCH = 64


@dataclass(frozen=True)
class FineTune:
    """Everything the fine_tune recipe chooses; the defaults were chosen on validation splits of real photos
    (benchmarks/recipe_search.py, reports/benchmarks/recipe-search-dev.json)."""

    epochs: int = 8  # fine-tuning epochs after the head, each on a fresh augmented view of every image
    learning_rate: float = 3e-4  # AdamW peak, reached after the warm-up, then cosine decay to 0
    batch_size: int = 32
    label_smoothing: float = 0.1
    weight_decay: float = 1e-4  # AdamW's decoupled decay
    warmup_epochs: float = 1.0
    augment: bool = True  # random resized crop, mirror and colour jitter on training images only
    views: int = 8  # distinct augmented views per training image, one per epoch, cycled when fewer than epochs
    crop_area: tuple = (0.35, 1.0)  # area fraction of the random resized crop
    jitter: float = 0.2  # brightness, contrast, saturation factors in [1 - jitter, 1 + jitter]
    tta: bool = False  # average the image's and its mirror's probabilities at test time
    train_from: str = ""  # first layer (name prefix) that trains; "" the backbone's own (EfficientNet-Lite0: block6)
    batchnorm: str = "frozen"  # frozen (inference mode) or train (batch statistics, moving averages updated)
    head_c: float = 1.0  # inverse L2 strength of the logistic-regression head on cached features
    precision: str = "float32"  # or mixed_bfloat16 (auto: where native); see the recipe search for the measurement

    def check(self) -> "FineTune":
        """This recipe, or ``UserError`` naming the first value out of range."""
        checks = (
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.views >= 1, f"views must be at least 1, got {self.views}"),
            (0 < self.learning_rate <= 1, f"learning rate must be in (0, 1], got {self.learning_rate}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.warmup_epochs <= self.epochs, f"warm-up must be within the {self.epochs} epochs"),
            (0 < self.crop_area[0] <= self.crop_area[1] <= 1, f"crop area must be in (0, 1], got {self.crop_area}"),
            (0 <= self.jitter < 1, f"colour jitter must be in [0, 1), got {self.jitter}"),
            (self.batchnorm in ("frozen", "train"), f"batchnorm must be frozen or train, not {self.batchnorm!r}"),
            (self.head_c > 0, f"head_c must be > 0, got {self.head_c}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "mixed_bfloat16" if machine.bf16_is_fast() else "float32"


class ViewBatches(keras.utils.PyDataset):
    """Training batches in a seeded order per epoch; epoch e feeds every image's cached view e (cycling)."""

    def __init__(self, views, targets, batch_size: int, seed: int):
        super().__init__()
        self.views, self.targets, self.batch_size, self.seed, self.epoch = views, targets, batch_size, seed, 0

    def __len__(self) -> int:
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, index):
        order = numpy.random.default_rng([self.seed, self.epoch]).permutation(len(self.targets))
        take = numpy.sort(order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.views[self.epoch % len(self.views)][take], self.targets[take]

    def on_epoch_end(self):
        self.epoch += 1


def training_views(images, recipe: "FineTune", seed: int, view: int) -> numpy.ndarray:
    """float32 view ``view`` of every training image: augmented (seeded by seed, view, position) or the image."""
    if not recipe.augment:
        return numpy.asarray(images, dtype="float32")
    return numpy.stack([augment.training_view(image, numpy.random.default_rng([seed, view, index]),
                                              recipe.crop_area, recipe.jitter) for index, image in enumerate(images)])


def _one_hot(labels, count: int) -> numpy.ndarray:
    return numpy.eye(count, dtype="float32")[numpy.asarray(labels)]


def fit_head(model, suffix, view_features, labels, recipe: "FineTune") -> None:
    """Fit the output layer as a multinomial logistic regression on the frozen pooled features of the cached
    training views: exact and seconds long, so the fine-tuning starts from a good head, not a random one."""
    from sklearn.linear_model import LogisticRegression

    history = suffix.outputs[0]._keras_history  # the output layer's call in the suffix graph, not the model's
    pooled = keras.Model(suffix.inputs, history.operation._inbound_nodes[history.node_index].input_tensors[0])
    features = numpy.concatenate([pooled.predict(view, batch_size=PREDICT_BATCH, verbose=0) for view in view_features])
    head = LogisticRegression(C=recipe.head_c, max_iter=2000).fit(features, numpy.tile(labels, len(view_features)))
    coef, intercept = head.coef_, head.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one row; softmax over (-z/2, z/2) is the same model
        coef, intercept = numpy.concatenate([-coef / 2, coef / 2]), numpy.concatenate([-intercept / 2, intercept / 2])
    model.get_layer(build.OUTPUT_LAYER).set_weights([coef.T.astype("float32"), intercept.astype("float32")])


def set_trainable(model, recipe: FineTune, first: str) -> None:
    """Layers from the first whose name starts with ``first`` onward train (BatchNorm with ``batchnorm="train"``)."""
    names = [layer.name for layer in model.layers]
    starts = [index for index, name in enumerate(names) if name.startswith(first)]
    if not starts:
        raise UserError(f"no layer of {model.name} starts with {first!r}")
    for index, layer in enumerate(model.layers):
        trains = index >= starts[0]
        if isinstance(layer, keras.layers.BatchNormalization):
            trains = trains and recipe.batchnorm == "train"
        layer.trainable = trains


def names_first(model) -> str:
    """The name of the model's first layer with weights: where training the whole network starts."""
    return next(layer.name for layer in model.layers if layer.weights)


def _optimizer(recipe: FineTune, steps_per_epoch: int):
    total = recipe.epochs * steps_per_epoch
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else recipe.learning_rate, decay_steps=max(1, total - warmup),
        warmup_target=recipe.learning_rate if warmup else None, warmup_steps=warmup)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)


def probabilities(model, images, tta: bool) -> numpy.ndarray:
    """float64 class probabilities of uint8 ``images``; with ``tta`` averaged with their mirrors'."""
    batch = numpy.asarray(images, dtype="float32")
    result = numpy.asarray(model.predict(batch, batch_size=PREDICT_BATCH, verbose=0), dtype="float64")
    if tta:
        mirrored = model.predict(batch[:, :, ::-1], batch_size=PREDICT_BATCH, verbose=0)
        result = (result + numpy.asarray(mirrored, dtype="float64")) / 2
    return result


def fine_tune(backbone: str, weights, sets: dict, recipe: "FineTune", seed: int, image_size: int,
              progress: bool = True, callbacks=()) -> dict:
    """Build ``backbone`` with ``weights`` (a ``WeightsChoice``), fit the head, then fine-tune from
    ``recipe.train_from`` on; return the float32 model (best validation loss), history, best epoch, step seconds.

    The layers before ``train_from`` are frozen (BatchNorm in inference mode), so each epoch's augmented view of
    every training image passes them once, up front: the same numbers as fine-tuning end to end on those views,
    without running the frozen stack in every step.
    """
    from heroes.training.cached import precision as precisions
    from heroes.models import surgery
    from heroes.progress import bar

    recipe.check()
    steps, clock = {}, time.perf_counter()
    train, class_count = sets["train"], len(sets["train"].class_names)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build.build_model(backbone, class_count, image_size, weights=weights, policy="linear_probe")
    set_trainable(model, recipe, recipe.train_from or get_backbone(backbone).fine_tune_from or names_first(model))
    prefix, suffix = surgery.split_at_first_trainable(model)
    view_count = min(recipe.views, recipe.epochs) if recipe.augment else 1
    views = [prefix.predict(training_views(train.images, recipe, seed, view), batch_size=PREDICT_BATCH, verbose=0)
             for view in bar(range(view_count), desc="augmented views", disable=not progress)]
    val_features = prefix.predict(numpy.asarray(sets["val"].images, "float32"), batch_size=PREDICT_BATCH, verbose=0)
    steps["views"] = time.perf_counter() - clock
    fit_head(model, suffix, views[:2], train.labels, recipe)
    head_val = numpy.asarray(suffix.predict(val_features, verbose=0)).argmax(1) == sets["val"].labels
    steps["head"] = time.perf_counter() - clock - steps["views"]
    batches = ViewBatches(views, _one_hot(train.labels, class_count), recipe.batch_size, seed)
    precision = recipe.resolved_precision()
    best, timer = BestWeights("val_loss"), EpochTimer()
    with precisions.suffix_policy(suffix, precision):
        suffix.compile(optimizer=_optimizer(recipe, len(batches)), jit_compile=False, metrics=["accuracy"],
                       loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing))
        fitted = suffix.fit(batches, validation_data=(val_features, _one_hot(sets["val"].labels, class_count)),
                            epochs=recipe.epochs, shuffle=False, callbacks=[best, timer, *callbacks],
                            verbose=2 if progress else 0)
    steps["fit"] = time.perf_counter() - clock - steps["views"] - steps["head"]
    history = pandas.DataFrame(fitted.history)
    history.insert(0, "epoch", numpy.arange(1, len(history) + 1))
    history["seconds"] = timer.seconds[: len(history)]
    return {"model": model, "history": history, "best_epoch": best.best_epoch, "precision": precision,
            "head_val_accuracy": float(head_val.mean()), "steps": steps}
