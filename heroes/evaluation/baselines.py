"""Baselines on the networks' own split: majority class, logistic regression on colour thumbnails, a linear probe.

``seed_baselines`` fits every baseline on every seed's own split, and ``save_predictions`` writes each one's test
predictions as a run-like folder (``<name>-baseline-<kind>-s<seed>/predictions.csv``) that the reports publish beside
the networks'. Each returns a predictions frame (``heroes.training.runs.predictions_frame``: path, sha256, label, predicted,
correct, prob_<class>...) for the test set, so ``load_predictions`` and every metric, CI and paired test apply
to them exactly as to a trained network. Logistic regressions pick their regularisation on the validation set
by log loss (the networks keep their lowest-validation-loss epoch), and never see the test set before scoring.
"""

from pathlib import Path

import numpy
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from heroes.errors import UserError
from heroes.io import write_csv
from heroes.training.runs import PREDICTIONS, predictions_frame

THUMBNAIL_SIDE = 8
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
PROBE_BACKBONE = "efficientnet_lite0"
FEATURE_BATCH = 32
NAMES = {"majority": "majority class", "thumbnails": f"logistic regression, {THUMBNAIL_SIDE}×{THUMBNAIL_SIDE} "
         "RGB thumbnails", "probe": "linear probe, EfficientNet-Lite0 ImageNet features"}


def majority_class(train_set, test_set):
    """Predict the most frequent training class for every test image; probabilities are the training shares."""
    shares = numpy.bincount(train_set.labels, minlength=len(train_set.class_names)) / len(train_set)
    return predictions_frame(test_set, numpy.tile(shares, (len(test_set), 1)))


def thumbnails(image_set, side=THUMBNAIL_SIDE) -> numpy.ndarray:
    """(N, side * side * 3) colour thumbnails in [0, 1], each pixel the mean of its box (PIL's BOX filter)."""
    return numpy.stack([numpy.asarray(Image.fromarray(numpy.asarray(image)).resize((side, side), Image.Resampling.BOX),
                                      dtype=numpy.float32).ravel() / 255 for image in image_set.images])


def _probabilities(model, inputs, num_classes) -> numpy.ndarray:
    """``predict_proba`` spread over every class index (a class absent from training gets probability 0)."""
    probabilities = numpy.zeros((len(inputs), num_classes))
    # float64 in, float64 out: on float32 features sklearn's probabilities sum to 1 only within 6e-8
    probabilities[:, model.classes_] = model.predict_proba(numpy.asarray(inputs, dtype="float64"))
    return probabilities


def fit_logistic(train_x, train_y, val_x, val_y, num_classes, seed=0, c_grid=C_GRID):
    """Standardised multinomial logistic regression, C chosen on the validation set by log loss; (model, C)."""
    best = None
    for c in c_grid:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
        model.fit(numpy.asarray(train_x, dtype="float64"), train_y)
        loss = log_loss(val_y, _probabilities(model, val_x, num_classes), labels=range(num_classes))
        if best is None or loss < best[0]:
            best = (loss, model, c)
    return best[1], best[2]


def _logistic_frame(features: dict, sets: dict, seed):
    """Fit on train features, choose C on val, score test: the predictions frame and the chosen C."""
    num_classes = len(sets["train"].class_names)
    model, c = fit_logistic(features["train"], sets["train"].labels, features["val"], sets["val"].labels,
                            num_classes, seed)
    frame = predictions_frame(sets["test"], _probabilities(model, features["test"], num_classes))
    frame.attrs["C"] = c  # kept for the caller's notes; not written to CSV
    return frame


def thumbnail_logistic(sets: dict, side=THUMBNAIL_SIDE, seed=0):
    """Logistic regression on ``side`` x ``side`` RGB thumbnails of ``sets`` (train, val, test ``ImageSet``s)."""
    return _logistic_frame({name: thumbnails(sets[name], side) for name in ("train", "val", "test")}, sets, seed)


def pretrained_features(images, backbone=PROBE_BACKBONE, batch_size=FEATURE_BATCH):
    """The ImageNet backbone's pooled features of ``images`` (N, side, side, 3; 0-255 RGB), float32 (N, D).

    ``UserError`` when no ImageNet weights can be had for ``backbone`` (random features would be no baseline).
    """
    import keras

    from heroes.models import build

    size = int(images.shape[1])
    extractor = build.pooled_features_model(backbone, size, build.choose_weights(backbone, "imagenet", size))
    features = [extractor.predict_on_batch(numpy.asarray(images[start:start + batch_size], "float32"))
                for start in range(0, len(images), batch_size)]
    keras.backend.clear_session()
    return numpy.concatenate(features).reshape(len(images), -1).astype("float32")


def feature_bank(image_sets, backbone=PROBE_BACKBONE) -> dict:
    """{sha256: pooled ImageNet features} of every distinct image in ``image_sets``, each passed through the backbone
    once: the seeds' splits redraw the same photographs, so per-split extraction would repeat most of the work."""
    images = {}
    for image_set in image_sets:
        for sha, image in zip(image_set.sha256, image_set.images):
            images.setdefault(sha, image)
    if not images:
        return {}
    vectors = pretrained_features(numpy.stack(list(images.values())), backbone)
    return dict(zip(images, vectors))


def linear_probe(sets: dict, backbone=PROBE_BACKBONE, seed=0, bank=None):
    """Logistic regression on a pretrained backbone's pooled ImageNet features (a frozen backbone's best head);
    ``bank`` ({sha256: features}, ``feature_bank``) is computed for ``sets`` when not given."""
    names = ("train", "val", "test")
    bank = feature_bank([sets[name] for name in names], backbone) if bank is None else bank
    return _logistic_frame({name: numpy.stack([bank[sha] for sha in sets[name].sha256]) for name in names},
                           sets, seed)


def baselines(sets: dict, seed=0, probe=True, bank=None) -> dict:
    """{display name: predictions frame} of every baseline on ``sets``, in ``NAMES`` order; the linear probe only
    with ``probe=True`` and where ImageNet weights exist (otherwise it is left out and the reason printed).
    ``bank``: the probe's features ({sha256: vector}, ``feature_bank``), computed here when not given."""
    if any(name not in sets for name in ("train", "val", "test")):
        raise UserError("baselines need train, val and test sets (the networks' split)")
    found = {NAMES["majority"]: majority_class(sets["train"], sets["test"]),
             NAMES["thumbnails"]: thumbnail_logistic(sets, seed=seed)}
    if probe:
        try:
            found[NAMES["probe"]] = linear_probe(sets, seed=seed, bank=bank)
        except UserError as error:
            print(f"linear probe skipped: {error}")
    return found


def seed_baselines(sets: dict, seeds, probe=True) -> dict:
    """{display name: {seed: predictions frame}}: every baseline fitted (and C chosen) on each seed's own split.

    ``sets``: {seed: {train, val, test}} (``heroes.evaluation.grid.seed_sets``), or one {train, val, test} shared by
    every seed; seeds sharing a split still fit with their own ``random_state``. The probe's features are computed
    once per distinct image over all seeds.
    """
    seeds = [int(seed) for seed in seeds]
    own = {seed: sets if "test" in sets else sets[seed] for seed in seeds}
    bank = None
    if probe:
        try:
            bank = feature_bank([split for chosen in own.values() for split in chosen.values()])
        except UserError as error:
            print(f"linear probe skipped: {error}")
            probe = False
    found = {}
    for seed in seeds:
        for name, frame in baselines(own[seed], seed=seed, probe=probe, bank=bank).items():
            found.setdefault(name, {})[seed] = frame
    return found


def save_predictions(by_seed: dict, directory, prefix) -> list:
    """Write each baseline's predictions to ``<directory>/<prefix>-baseline-<kind>-s<seed>/predictions.csv`` (the
    layout of a run folder, so ``heroes.reporting.published`` copies them); return the folders, in order."""
    folders = []
    for name, frames in by_seed.items():
        for seed, frame in frames.items():
            folder = Path(directory) / f"{prefix}-baseline-{SLUGS.get(name, name)}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            write_csv(frame, folder / PREDICTIONS)
            folders.append(folder)
    return folders


SLUGS = {display: slug for slug, display in NAMES.items()}  # display name -> short name used in file names
