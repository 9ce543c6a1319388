"""Off-class images and probable label errors, found in a pretrained backbone's pooled embedding."""

import re
from dataclasses import dataclass

import numpy
import pandas

from heroes.errors import UserError

FINDING_COLUMNS = ["position", "score", "reason"]
OFFLINE_BACKBONE = "efficientnet_lite0"  # the registered backbone whose ImageNet weights ship in a package


@dataclass(frozen=True)
class EmbeddingConfig:
    """How images are embedded and how unusual is flagged (measured: ``benchmarks/embedding_clean_benchmark.py``)."""

    size: int | None = 320  # pixels; None is the backbone's default (224), which misses more small figures
    batch_size: int = 32
    neighbours: int = 5  # classmates whose mean cosine distance scores an image
    off_class_z: float = 3.0  # robust z-score of that distance, within the class, above which it is off class
    folds: int = 5  # out-of-fold probabilities for the label check...
    repeats: int = 5  # ...averaged over this many shuffles of the folds (one shuffle flips single findings)
    inverse_regularisation: float = 30.0  # LogisticRegression C on the unit-length embeddings
    filter_by: str = "prune_by_noise_rate"  # cleanlab.filter.find_label_issues
    # p(j) counts as evidence of class j from this share of class j's mean self-confidence (cleanlab: 1.0, which
    # misses a third of the misfiled figures here: their true class is seldom predicted with typical confidence).
    threshold_scale: float = 0.75
    seed: int = 0


def imagenet_choice(backbone: str, size=None):
    """The backbone's ImageNet weights, or ``UserError``: random weights give embeddings that mean nothing."""
    from heroes.models.backbones import get_backbone
    from heroes.models.build import choose_weights

    get_backbone(backbone)  # an unknown name is its own error, listing the known ones
    reason = "it resolves to random weights"
    try:
        choice = choose_weights(backbone, "imagenet", size)
    except UserError as error:
        choice, reason = None, str(error)
    if choice is None or choice.random:
        hint = f": {reason}" if backbone == OFFLINE_BACKBONE else f"; use --backbone {OFFLINE_BACKBONE} (offline weights)"
        raise UserError(f"backbone {backbone} has no ImageNet weights on this machine, and random embeddings would "
                        f"flag nonsense{hint}")
    return choice


def embedding_model(backbone: str, size=None):
    """Raw 0-255 RGB in, the pooled ImageNet embedding out (``avg_pool``, 1280-d for Lite0); refuses random weights."""
    from heroes.models.build import pooled_features_model

    return pooled_features_model(backbone, size, imagenet_choice(backbone, size))


def embed(paths, backbone: str, size=None, batch_size=32, progress=True) -> numpy.ndarray:
    """(n, d) float32 pooled features of the images at ``paths``, decoded by content and centre-cropped."""
    from heroes.data.decode import DecodeError, decode_image, fit_and_crop
    from heroes.models.backbones import get_backbone
    from heroes.progress import bar

    size = size or get_backbone(backbone).default_size
    model = embedding_model(backbone, size)
    paths = list(paths)
    out = numpy.empty((len(paths), model.output_shape[-1]), dtype=numpy.float32)
    for start in bar(range(0, len(paths), batch_size), desc=f"embedding {size}px ({backbone})", unit="batch",
                     disable=not progress):
        chunk = paths[start:start + batch_size]
        try:
            batch = numpy.stack([fit_and_crop(decode_image(path), size) for path in chunk]).astype(numpy.float32)
        except (DecodeError, OSError) as error:
            raise UserError(f"cannot decode an image among {chunk[0]} and the next {len(chunk) - 1} ({error}); "
                            f"re-run the scan, the data changed") from None
        out[start:start + len(chunk)] = model.predict_on_batch(batch)
    return out


def normalise(vectors) -> numpy.ndarray:
    """Rows scaled to unit length (cosine geometry)."""
    vectors = numpy.asarray(vectors, dtype=numpy.float64)
    return vectors / numpy.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


def robust_z(values) -> numpy.ndarray:
    """(value - median) / (1.4826 MAD): a z-score that the outliers it looks for cannot inflate."""
    median = numpy.median(values)
    spread = 1.4826 * numpy.median(numpy.abs(values - median))
    return (values - median) / (spread or 1e-9)


def off_class(vectors, labels, neighbours=5, z=3.0) -> pandas.DataFrame:
    """Rows (``position``, ``score``, ``reason``) whose mean cosine distance to the nearest classmates is extreme."""
    from sklearn.neighbors import NearestNeighbors

    vectors, labels = normalise(vectors), numpy.asarray(labels)
    rows = []
    for label in sorted(set(labels)):
        where = numpy.flatnonzero(labels == label)
        k = min(neighbours, len(where) - 1)
        if k < 2:  # too few classmates to say what the class looks like
            continue
        distance = NearestNeighbors(n_neighbors=k, metric="cosine").fit(vectors[where]).kneighbors()[0]
        score = robust_z(distance.mean(axis=1))
        rows += [(where[i], score[i], f"far from the other {label} images (robust z {score[i]:.1f} > {z:g})")
                 for i in numpy.flatnonzero(score > z)]
    return pandas.DataFrame(rows, columns=FINDING_COLUMNS)


def out_of_fold_probabilities(vectors, codes, folds=5, seed=0, inverse_regularisation=30.0) -> numpy.ndarray:
    """(n, classes) probabilities from logistic regressions that never saw the image they score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    splitter = StratifiedKFold(n_splits=min(folds, int(numpy.bincount(codes).min())), shuffle=True, random_state=seed)
    classifier = LogisticRegression(C=inverse_regularisation, max_iter=5000)
    # Matrices this small gain nothing from BLAS threads, and on a busy machine threads cost 40x (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        return cross_val_predict(classifier, normalise(vectors), codes, cv=splitter, method="predict_proba")


def label_issues(vectors, labels, config: EmbeddingConfig = EmbeddingConfig()) -> pandas.DataFrame:
    """Rows (``position``, ``score``, ``reason``) that cleanlab finds probably filed under the wrong class."""
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    names, codes = numpy.unique(numpy.asarray(labels), return_inverse=True)
    if len(names) < 2 or numpy.bincount(codes).min() < 2:  # nothing to compare with, or no fold to hold out
        return pandas.DataFrame(columns=FINDING_COLUMNS)
    probabilities = numpy.mean([out_of_fold_probabilities(vectors, codes, config.folds, config.seed + repeat,
                                                          config.inverse_regularisation)
                                for repeat in range(config.repeats)], axis=0)
    self_confidence = probabilities[numpy.arange(len(codes)), codes]
    thresholds = config.threshold_scale * numpy.array([self_confidence[codes == j].mean() for j in range(len(names))])
    joint = compute_confident_joint(codes, probabilities, thresholds=thresholds)
    found = find_label_issues(codes, probabilities, confident_joint=joint, filter_by=config.filter_by,
                              return_indices_ranked_by="self_confidence", n_jobs=1)
    rows = []
    for i in found:
        likely = int(probabilities[i].argmax())
        rows.append((i, float(1 - self_confidence[i]), f"looks like {names[likely]} (p {probabilities[i, likely]:.2f}), "
                                                       f"not {names[codes[i]]} (p {self_confidence[i]:.2f})"))
    return pandas.DataFrame(rows, columns=FINDING_COLUMNS)


def find(paths, labels, backbone: str, config: EmbeddingConfig = EmbeddingConfig(), progress=True) -> list:
    """``(path, flag, reason)`` for every ``off_class`` and ``label_issue`` finding among ``paths``."""
    paths, labels = list(paths), list(labels)
    if not paths:
        return []
    vectors = embed(paths, backbone, config.size, config.batch_size, progress)
    far = off_class(vectors, labels, config.neighbours, config.off_class_z)
    doubtful = label_issues(vectors, labels, config)
    return ([(paths[row.position], "off_class", row.reason) for row in far.itertuples()]
            + [(paths[row.position], "label_issue", row.reason) for row in doubtful.itertuples()])


def _reason_of(reason: str, flag: str) -> str:
    """The part of a FLAGS.csv ``reason`` that ``flag`` wrote (reasons are ``flag: text; flag: text``)."""
    return next((part[len(flag) + 2:] for part in reason.split("; ") if part.startswith(f"{flag}: ")), "")


def ranked(flags: pandas.DataFrame, flag: str) -> pandas.DataFrame:
    """The files carrying ``flag``, most certain first: ``path``, ``label``, ``suggested`` (the class a label issue
    looks like; empty for ``off_class``), ``certainty`` (its probability, or the robust z) and a short ``title``:
    ``batman→superman .87`` (filed under, looks like, probability) or ``batman z 6.1``.
    """
    if flag not in ("off_class", "label_issue"):
        raise ValueError(f"flag must be off_class or label_issue, not {flag!r}")
    rows = flags[flags["flags"].str.split(";").map(lambda found: flag in found)]
    items = []
    for path, label, reason in zip(rows["path"], rows["label"], rows["reason"]):
        text = _reason_of(reason, flag)
        if flag == "label_issue":
            likely, p = re.match(r"looks like (.+?) \(p ([\d.]+)\)", text).groups()
            items.append((path, label, likely, float(p), f"{label}→{likely} {p.lstrip('0')}"))
        else:
            z = float(re.search(r"robust z (-?[\d.]+)", text).group(1))
            items.append((path, label, "", z, f"{label} z {z:.1f}"))
    frame = pandas.DataFrame(items, columns=["path", "label", "suggested", "certainty", "title"])
    return frame.sort_values(["certainty", "path"], ascending=[False, True]).reset_index(drop=True)


def sheet_items(flags: pandas.DataFrame, flag: str, limit=36) -> tuple:
    """``(paths, titles)`` of the first ``limit`` files of ``ranked``, for ``plots.sheets.contact_sheet``."""
    top = ranked(flags, flag).head(limit)
    return list(top["path"]), list(top["title"])
