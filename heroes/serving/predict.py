"""Predict image files with a saved model: decode like the scan, resize like evaluation, report the top-k classes."""

# Exit policy (``run``): 0 when at least one image was predicted, rejected inputs (missing path, unreadable image,
# empty folder) are rows with status "rejected" and a reason; 2 when nothing at all could be predicted.

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy
import pandas
from tqdm.auto import tqdm

from heroes.data.decode import DecodeError, decode_image, fit_and_crop
from heroes.data.sources import DATA_NOTEBOOK
from heroes.errors import UserError
from heroes.io import file_problem, name_text, native_name, printable
from heroes.training import runs

BATCH_SIZE = 32
TOP_K = 3
RUN_MODEL = "model.keras"  # the model inside a run directory (heroes.training.runs.MODEL)
SYSTEM_NAMES = {"thumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin", "system volume information"}


@dataclass(frozen=True)
class Prediction:
    """One input: status "ok" with ``top`` ((class, probability), ...) best first, or "rejected" with ``reason``."""

    path: str
    status: str
    reason: str = ""
    top: tuple = ()

    def to_json(self) -> dict:
        """The JSON line of ``--json``: path, status, reason, predicted, probability, top [{label, probability}].

        ``path`` is UTF-8 text whatever the locale (``name_text``); a name that is not UTF-8 also gets its exact
        bytes in ``path_bytes_b64``, so the line still names the file (and holds no lone surrogate).
        """
        best = self.top[0] if self.top else (None, None)
        record = {
            "path": name_text(self.path), "status": self.status, "reason": self.reason,
            "predicted": best[0], "probability": best[1],
            "top": [{"label": label, "probability": probability} for label, probability in self.top],
        }
        if native_name(record["path"]) != self.path:
            record["path_bytes_b64"] = base64.b64encode(os.fsencode(self.path)).decode("ascii")
        return record


def model_file(path) -> Path:
    """The ``.keras`` file: ``path`` itself, or ``model.keras`` inside a run directory."""
    path = Path(path)
    return path / RUN_MODEL if path.is_dir() else path


def input_size(model) -> int:
    """Side of the square RGB images ``model`` takes; ``UserError`` for any other input."""
    shape = tuple(model.input_shape[1:]) if len(model.inputs) == 1 else ()
    if len(shape) != 3 or shape[2] != 3 or shape[0] != shape[1] or shape[0] is None:
        raise UserError(f"incompatible model {model.name}: takes input {model.input_shape}, not square RGB images")
    if len(model.output_shape) != 2:
        raise UserError(f"incompatible model {model.name}: output {model.output_shape} is not class probabilities")
    return int(shape[0])


def load_predictor(path) -> tuple:
    """(model, class names) of a saved heroes model or run directory; ``UserError`` when missing or unusable."""
    from heroes.models import saving

    model, class_names = saving.load_model(model_file(path), compile=False)  # inference needs no optimizer
    input_size(model)
    return saving.as_probabilities(model, model_file(path)), list(class_names)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def _walk(folder: Path) -> list:
    """Every non-hidden file under ``folder``, recursively, sorted; symlinked folders are not followed (as the scan)."""
    found = []
    for current, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not _is_hidden(name))
        found += [(Path(current) / name).as_posix() for name in sorted(filenames) if not _is_hidden(name)]
    return found


def collect_inputs(inputs) -> list:
    """(path, reason) per file to predict, in the order given (folders expanded); reason is "" when readable so far."""
    entries = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = _walk(path)
            entries += [(file, "") for file in files] or [(str(given), "folder holds no files")]
        else:  # "not found", "broken symlink", "symlink loop", "not a regular file": the scan's words
            entries.append((str(given), file_problem(path)))
    return entries


def _pixels(path: str, size: int):
    """(uint8 image, "") or (None, reason): exactly the scan's decoding and the evaluation resize."""
    try:
        return fit_and_crop(decode_image(path), size), ""
    except DecodeError as error:
        return None, error.reason
    except OSError as error:  # a file that vanished or cannot be opened between listing and reading
        return None, f"unreadable: {error.strerror or error}"


def top_classes(probabilities, class_names, top_k: int) -> tuple:
    """((class, probability), ...) for the ``top_k`` most probable classes, ties in class order."""
    order = numpy.argsort(-numpy.asarray(probabilities), kind="stable")[: max(1, top_k)]
    return tuple((class_names[index], float(probabilities[index])) for index in order)


def _predict_chunk(model, class_names, chunk, size, top_k) -> list:
    """Decode a chunk of (path, reason) entries, predict the readable ones in one batch, keep the order."""
    decoded = [(path, *_pixels(path, size)) if not reason else (path, None, reason) for path, reason in chunk]
    readable = [pixels for _, pixels, _ in decoded if pixels is not None]
    if readable:
        rows = iter(numpy.asarray(model.predict_on_batch(numpy.stack(readable).astype("float32"))))
    results = []
    for path, pixels, reason in decoded:
        if pixels is None:
            results.append(Prediction(path, "rejected", reason))
        else:
            results.append(Prediction(path, "ok", top=top_classes(next(rows), class_names, top_k)))
    return results


def iter_predictions(model, class_names, inputs, top_k=TOP_K, batch_size=BATCH_SIZE, progress=None, entries=None):
    """Yield one ``Prediction`` per input file, in order, predicting ``batch_size`` images at a time.

    ``progress``: None shows a tqdm bar on stderr only when it is a terminal, True always, False never.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    size = input_size(model)
    entries = collect_inputs(inputs) if entries is None else entries
    disable = None if progress is None else not progress
    with tqdm(total=len(entries), desc="predict", unit="img", disable=disable, file=sys.stderr) as bar:
        for start in range(0, len(entries), batch_size):
            chunk = entries[start : start + batch_size]
            yield from _predict_chunk(model, class_names, chunk, size, top_k)
            bar.update(len(chunk))


def format_probability(probability: float) -> str:
    """Percent with one decimal; "<0.1%" and ">99.9%" rather than a misleading 0.0% or 100.0%."""
    if probability < 0.0005:
        return "<0.1%"
    if probability > 0.9995:
        return ">99.9%"
    return f"{100 * probability:.1f}%"


def table_header(path_width: int, top_k: int, cell_width: int) -> str:
    ranks = [f"{'top-' + str(rank):<{cell_width}}" for rank in range(1, top_k + 1)]
    return "  ".join([f"{'image':<{path_width}}", *ranks]).rstrip()


def table_row(prediction: Prediction, path_width: int, cell_width: int) -> str:
    """One line: the path, then "class  97.3%" per rank (names padded so percentages line up), or "rejected: reason"."""
    if prediction.status != "ok":
        cells = [f"rejected: {prediction.reason}"]
    else:
        cells = [f"{printable(label):<{cell_width - 7}} {format_probability(p):>6}" for label, p in prediction.top]
    return "  ".join([f"{printable(prediction.path):<{path_width}}", *cells]).rstrip()


def run(inputs, model_path, top_k=TOP_K, as_json=False, batch_size=BATCH_SIZE, progress=None, out=None) -> int:
    """What ``python -m heroes predict`` does: print a table (or JSON lines), return the exit status."""
    out = out or sys.stdout
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    model, class_names = load_predictor(model_path)
    top_k = min(top_k, len(class_names))
    entries = collect_inputs(inputs)
    path_width = max([len(printable(path)) for path, _ in entries] + [5])
    cell_width = max(len(printable(name)) for name in class_names) + 7
    if not as_json:
        _emit(table_header(path_width, top_k, cell_width), out)
    counts = {"ok": 0, "rejected": 0}
    for prediction in iter_predictions(model, class_names, inputs, top_k, batch_size, progress, entries):
        counts[prediction.status] += 1
        line = json.dumps(prediction.to_json()) if as_json else table_row(prediction, path_width, cell_width)
        _emit(line, out)
    summary = f"{counts['ok']} of {len(entries)} images predicted, {counts['rejected']} rejected"
    if counts["ok"] == 0:
        raise UserError(f"no image could be predicted ({summary})")
    print(summary, file=sys.stderr)
    return 0


def _emit(line: str, out) -> None:
    """Print above the progress bar (tqdm.write clears and redraws it) so the two never mix."""
    tqdm.write(line, file=out)


def predict_images(model, class_names, image_paths, image_size: int, batch_size: int = 32) -> pandas.DataFrame:
    """Probabilities of ``model`` on image files, decoded and resized exactly as training and ``predict`` do.

    Columns ``path``, ``predicted``, ``probability`` (of the predicted class) and ``prob_<class>``; the rows keep
    the order of ``image_paths``. An undecodable file is a ``UserError`` naming it (the scan accepted it).
    """
    image_paths = [str(path) for path in image_paths]
    class_names = [str(name) for name in class_names]
    if len(class_names) != model.output_shape[-1]:
        raise UserError(f"{len(class_names)} class names for a model with {model.output_shape[-1]} outputs")
    columns = ["path", "predicted", "probability", *runs.probability_columns(class_names)]
    if not image_paths:
        return pandas.DataFrame(columns=columns)
    pixels = []
    for path in image_paths:
        try:
            pixels.append(fit_and_crop(decode_image(path), image_size))
        except Exception as error:  # DecodeError, OSError: either way the file changed since the scan
            raise UserError(f"cannot decode {path} ({error}); re-run {DATA_NOTEBOOK}, the data changed") from None
    batch = numpy.stack(pixels).astype("float32")
    probabilities = numpy.asarray(model.predict(batch, batch_size=batch_size, verbose=0), dtype="float64")
    best = probabilities.argmax(axis=1)
    frame = pandas.DataFrame({
        "path": image_paths,
        "predicted": [class_names[index] for index in best],
        "probability": probabilities[numpy.arange(len(best)), best],
    })
    return pandas.concat([frame, pandas.DataFrame(probabilities, columns=columns[3:])], axis=1)
