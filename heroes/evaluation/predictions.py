"""Predictions tables: load, validate and align per-image predictions with their file paths."""

from dataclasses import dataclass
from pathlib import Path

import numpy
import pandas

from heroes.config import CLASS_DISPLAY_NAMES
from heroes.errors import UserError
from heroes.training.runs import PROBABILITY_PREFIX  # the column prefix runs write

REQUIRED_COLUMNS = ("path", "sha256", "label", "predicted")
# A softmax written to CSV as float32 text sums to 1 only to about 1e-6; anything further off is not a probability.
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Predictions:
    """One run's predictions on a fixed, ordered test set: row i of every array is the same image."""

    paths: numpy.ndarray  # (N,) str
    sha256: numpy.ndarray  # (N,) str
    labels: numpy.ndarray  # (N,) int, index into class_names
    probabilities: numpy.ndarray  # (N, K) float, rows sum to 1
    class_names: tuple  # K names, in the column order of the table
    source: str = "predictions"

    def __len__(self):
        return len(self.labels)

    @property
    def predicted(self) -> numpy.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def correct(self) -> numpy.ndarray:
        return self.predicted == self.labels

    @property
    def confidence(self) -> numpy.ndarray:
        """Top-label probability: what the model claims about the class it picked."""
        return self.probabilities.max(axis=1)

    def take(self, order) -> "Predictions":
        """The same predictions with rows reordered (or subset) by ``order``."""
        return Predictions(self.paths[order], self.sha256[order], self.labels[order],
                           self.probabilities[order], self.class_names, self.source)


def _read_table(source):
    """A DataFrame and a description of where it came from; a run directory means its predictions.csv."""
    if isinstance(source, pandas.DataFrame):
        return source.copy(), "predictions table"
    path = Path(source)
    if path.is_dir():
        if not (path / "predictions.csv").is_file():
            raise UserError(f"run directory {path} has no predictions.csv: re-run training for this run")
        path = path / "predictions.csv"
    if not path.is_file():
        raise UserError(f"predictions file {path} not found: re-run training, which writes it beside the model")
    try:
        return pandas.read_csv(path, dtype={"path": str, "sha256": str, "label": str, "predicted": str},
                               keep_default_na=False), str(path)
    except (pandas.errors.ParserError, pandas.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"predictions file {path} is not a readable CSV: {error}") from None


def _class_index(class_names):
    """Map every spelling of a class (folder name or display name) to its column index."""
    index = {}
    display_to_folder = {display: folder for folder, display in CLASS_DISPLAY_NAMES.items()}
    for position, name in enumerate(class_names):
        for alias in (name, CLASS_DISPLAY_NAMES.get(name), display_to_folder.get(name)):
            if alias is not None:
                index.setdefault(alias, position)
    return index


def _encode(values, class_names, column, origin):
    """Class names (or integer indices) in ``column`` as integer indices into ``class_names``."""
    index = _class_index(class_names)
    values = [str(value) for value in values]
    if all(value.lstrip("-").isdigit() for value in values) and not any(value in index for value in values):
        codes = numpy.array([int(value) for value in values])
        if codes.min() < 0 or codes.max() >= len(class_names):
            raise UserError(f"{origin}: column {column!r} has class indices outside 0..{len(class_names) - 1}")
        return codes
    unknown = sorted({value for value in values if value not in index})
    if unknown:
        raise UserError(f"{origin}: column {column!r} has classes with no probability column: "
                        f"{', '.join(unknown[:5])} (columns: {', '.join(class_names)})")
    return numpy.array([index[value] for value in values])


def _probabilities(frame, columns, origin):
    """The probability block as floats, checked to be finite rows of probabilities, renormalised."""
    try:
        block = frame[columns].astype(float).to_numpy()
    except ValueError as error:
        raise UserError(f"{origin}: probability columns are not all numbers ({error})") from None
    if not numpy.isfinite(block).all() or (block < 0).any():
        raise UserError(f"{origin}: probabilities must be finite and non-negative")
    sums = block.sum(axis=1)
    bad = numpy.flatnonzero(numpy.abs(sums - 1) > SUM_TOLERANCE)
    if bad.size:
        raise UserError(f"{origin}: probabilities of {bad.size} row(s) do not sum to 1 "
                        f"(row {bad[0]} sums to {sums[bad[0]]:.4f}): store softmax outputs, not logits")
    return block / sums[:, None]


def _check_predicted(predicted, probabilities, paths, origin):
    """Refuse a table whose ``predicted`` column disagrees with its own probabilities (ties excepted)."""
    rows = numpy.arange(len(predicted))
    off = numpy.flatnonzero(probabilities[rows, predicted] < probabilities.max(axis=1) - 1e-6)
    if off.size:
        raise UserError(f"{origin}: column 'predicted' disagrees with the most probable class on {off.size} "
                        f"row(s), first {paths[off[0]]}: the table was not written by one model")


def load_predictions(source) -> Predictions:
    """Read and validate a predictions table (run directory, CSV path or DataFrame) into ``Predictions``."""
    frame, origin = _read_table(source)
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    prob_columns = [column for column in frame.columns if str(column).startswith(PROBABILITY_PREFIX)]
    if len(prob_columns) < 2:
        missing.append(f"{PROBABILITY_PREFIX}<class> (one per class, at least 2)")
    if missing:
        raise UserError(f"{origin} lacks required column(s): {', '.join(missing)}")
    if frame.empty:
        raise UserError(f"{origin} has no rows: the test set was empty")
    duplicated = frame["path"][frame["path"].duplicated()]
    if not duplicated.empty:
        raise UserError(f"{origin}: path {duplicated.iloc[0]} appears more than once")
    class_names = tuple(column[len(PROBABILITY_PREFIX):] for column in prob_columns)
    probabilities = _probabilities(frame, prob_columns, origin)
    labels = _encode(frame["label"], class_names, "label", origin)
    paths = frame["path"].astype(str).to_numpy()
    _check_predicted(_encode(frame["predicted"], class_names, "predicted", origin), probabilities, paths, origin)
    return Predictions(paths, frame["sha256"].astype(str).to_numpy(), labels, probabilities, class_names, origin)


def _keys(predictions):
    """Image identity: sha256 when every row has a distinct one, else the path."""
    sha = predictions.sha256
    if all(sha) and len(set(sha)) == len(sha):
        return sha, "sha256"
    return predictions.paths, "path"


def _same_classes(a, b):
    """B's probability columns in A's class order; refuse when the two models know different classes."""
    if set(a.class_names) != set(b.class_names):
        raise UserError(f"cannot compare {a.source} and {b.source}: different classes "
                        f"({', '.join(a.class_names)} vs {', '.join(b.class_names)})")
    columns = [b.class_names.index(name) for name in a.class_names]
    remap = numpy.argsort(columns)  # old index in b -> new index in a's order
    return Predictions(b.paths, b.sha256, remap[b.labels], b.probabilities[:, columns], a.class_names, b.source)


def align(predictions_a, predictions_b) -> tuple:
    """The two predictions on the same images in A's order; ``UserError`` when the test sets differ."""
    a, b = predictions_a, _same_classes(predictions_a, predictions_b)
    (keys_a, kind_a), (keys_b, kind_b) = _keys(a), _keys(b)
    if kind_a != kind_b:
        keys_a, keys_b, kind_a = a.paths, b.paths, "path"
    if set(keys_a) != set(keys_b) or len(keys_a) != len(keys_b):
        only_a, only_b = len(set(keys_a) - set(keys_b)), len(set(keys_b) - set(keys_a))
        raise UserError(f"refusing to compare {a.source} and {b.source}: they were evaluated on different test "
                        f"sets ({len(a)} vs {len(b)} images; {only_a} only in the first, {only_b} only in the "
                        f"second, matched by {kind_a}); a paired comparison needs the same images")
    position = {key: row for row, key in enumerate(keys_b)}
    b = b.take(numpy.array([position[key] for key in keys_a]))
    differ = numpy.flatnonzero(a.labels != b.labels)
    if differ.size:
        raise UserError(f"refusing to compare {a.source} and {b.source}: {differ.size} image(s) carry different "
                        f"labels, first {a.paths[differ[0]]}; the test sets were labelled differently")
    return a, b
