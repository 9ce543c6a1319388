"""Scan a folder of class sub-folders into a manifest (one row per file), and read/write it."""

import hashlib
import os
import sys
import unicodedata
import warnings
from collections import Counter
from pathlib import Path, PurePosixPath

import pandas

from heroes import io
from heroes.data.decode import DecodeError, inspect_image
from heroes.data.workers import fork_context, ordered_map
from heroes.errors import UserError

COLUMNS = [
    "path", "relpath", "label", "class_id", "role", "status", "reason",
    "sha256", "width", "height", "format", "mode", "bytes",
]
REQUIRED_COLUMNS = ["path", "label", "status", "reason", "sha256", "width", "height", "format"]
INTEGER_COLUMNS = ["width", "height", "bytes"]
STATUSES = ("ok", "rejected")
ROLES = ("data", "probe")  # class data; unmasked-hero probes under probes/<class>/ (never trained on)
SHA256_PATTERN = "[0-9a-f]{64}"
PROBES_FOLDER = "probes"
SYSTEM_NAMES = {"thumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin", "system volume information"}
# Below this many files a process pool costs more to start than it saves.
POOL_MIN_FILES = 200
CHUNK_SIZE = 32


def scan(root, progress: bool = True, workers: int | None = None) -> pandas.DataFrame:
    """One row per file under ``root`` (read-only), sorted by ``relpath``; columns ``COLUMNS``.

    ``progress=True`` shows a tqdm bar on stderr when stderr is a terminal; ``False`` never.
    ``workers`` defaults to ``min(2, cpu count)`` processes for large folders.
    """
    root_path = _checked_root(root)
    entries, extra_rows = _walk(root_path)
    rows = extra_rows + _inspect_all(entries, progress, workers)
    absolute = io.name_text(Path(os.path.abspath(root_path)).as_posix())  # text, like relpath; never cwd-relative
    for row in rows:
        row["path"] = io.native_name(f"{absolute}/{row['relpath']}")
    name_classes(rows)
    rows.sort(key=lambda row: row["relpath"])
    frame = pandas.DataFrame(rows, columns=COLUMNS)
    for column in INTEGER_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    frame.attrs["root"] = str(root_path)
    return frame


def write_manifest(frame: pandas.DataFrame, path, inputs=()) -> Path:
    """Write the manifest CSV atomically, its paths absolute; a bad destination (an input, a folder, inside the
    dataset) is a ``UserError``, never an ``OSError``."""
    io.check_output_path(path, inputs=inputs, forbidden_dirs=dataset_roots(frame))
    written = frame.assign(path=io.absolute_paths(frame["path"]))
    return io.write_csv(written, path)


def read_manifest(path) -> pandas.DataFrame:
    """Read a manifest CSV: strings, with ``width``/``height``/``bytes`` as nullable integers, and absolute paths
    (relative ones are taken from the manifest's folder, never from the working directory)."""
    frame = io.read_csv(path, required=REQUIRED_COLUMNS, what="manifest")
    bad_status = sorted(set(frame["status"]) - set(STATUSES))
    if bad_status:
        raise UserError(f"manifest {path}: unknown status value(s) {', '.join(map(repr, bad_status))}")
    _check_digests(frame, path)
    frame["path"] = io.resolved_paths(frame["path"], path)
    for column in INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = _integers(frame[column], column, path)
    return frame


def dataset_roots(frame: pandas.DataFrame) -> list:
    """The scanned folders a manifest's (or splits file's) rows come from: no command writes inside them.

    Known from the required columns alone (``path`` and ``label``), so a file without ``relpath`` is guarded too:
    the folder above the nearest folder named like the row's class (its original one after a relabel), else the
    file's own folder.
    """
    roots = {frame.attrs["root"]} if frame.attrs.get("root") else set()
    labels = frame["original_label" if "original_label" in frame.columns else "label"]
    folders = {(path.rpartition("/")[0], label) for path, label in zip(frame["path"], labels) if path}
    roots |= {_scanned_root(folder, label) for folder, label in folders}
    return sorted(root for root in roots if root)


def _scanned_root(folder: str, label: str) -> str:
    """The folder holding the class folder of a file in ``folder`` (``root/<class>/..``, ``root/probes/<class>/..``)."""
    wanted = class_id_for(label) if label else None
    for class_folder in (PurePosixPath(folder), *PurePosixPath(folder).parents):
        if wanted and class_folder.name and class_id_for(io.name_text(class_folder.name)) == wanted:
            root = class_folder.parent
            return str(root.parent if root.name == PROBES_FOLDER else root)
    return folder


def data_rows(manifest: pandas.DataFrame, usable: bool = False, role: str = "data") -> pandas.Series:
    """The one "is this a data row" test, a mask over ``manifest``: rows of ``role`` ("data": class data, also rows
    the scan placed in no class folder; "probe": unmasked-hero probes), and with ``usable`` only those the scan could
    decode (status ok). A manifest without ``role`` is all class data; one without ``status`` (a splits file) all
    decodable. Cleaning, splitting, sizing and the probe helpers all ask this."""
    if "role" in manifest.columns:
        rows = manifest["role"].isin(["data", ""] if role == "data" else [role])
    else:
        rows = pandas.Series(role == "data", index=manifest.index)
    if usable and "status" in manifest.columns:
        rows &= manifest["status"] == "ok"
    return rows


def _check_digests(frame: pandas.DataFrame, path) -> None:
    """An ok row without its sha256 cannot be grouped, split or matched to a decision: re-scan, never guess."""
    ok = frame[frame["status"] == "ok"]
    bad = ok[~ok["sha256"].str.fullmatch(SHA256_PATTERN)]
    if not bad.empty:
        raise UserError(f"manifest {path}: {len(bad)} ok row(s) lack a sha256 of 64 hex digits "
                        f"(e.g. {bad['path'].iloc[0]!r}); re-run the scan")


def describe_manifest(frame: pandas.DataFrame, out_path=None) -> str:
    """A few lines: files found, ok, rejected by reason, ok images per class, where it was written."""
    ok = frame[frame["status"] == "ok"]
    rejected = frame[frame["status"] != "ok"]
    lines = [f"{len(frame):,} files: {len(ok):,} ok, {len(rejected):,} rejected"]
    reasons = Counter(reason.split(":")[0] for reason in rejected["reason"])
    by_count = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    lines += [f"  rejected {count:>5,}  {reason}" for reason, count in by_count]
    for role in ROLES:
        counts = frame[data_rows(frame, usable=True, role=role)]["label"].value_counts().sort_index()
        if counts.empty:
            continue
        title = "ok per class" if role == "data" else f"ok per class ({role})"
        lines.append(f"{title}: " + ", ".join(f"{io.printable(label)} {count:,}" for label, count in counts.items()))
    if out_path is not None:
        lines.append(f"manifest written to {io.printable(str(out_path))}")
    return "\n".join(lines)


def manifest_hash(frame: pandas.DataFrame) -> str:
    """sha256 over the sorted ``sha256,label`` pairs of the ok rows: same images and labels, same hash."""
    ok = frame[frame["status"] == "ok"]
    pairs = sorted(f"{digest},{label}" for digest, label in zip(ok["sha256"], ok["label"]))
    return hashlib.sha256("\n".join(pairs).encode("utf-8")).hexdigest()


def class_id_for(label: str) -> str:
    """A safe identifier for a display name: ASCII-folded, lower-case, ``_`` for the rest."""
    folded = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii").lower()
    safe = "_".join("".join(c if c.isalnum() else " " for c in folded).split())
    return safe or f"class_{hashlib.sha1(label.encode('utf-8')).hexdigest()[:8]}"


def name_classes(rows: list) -> None:
    """Give each row its ``class_id`` (the normalised folder name) and one display ``label`` per class, in place.

    Folder names that normalise alike are one class (``Not a hero``, ``not-a-hero`` and ``NOT_A_HERO`` are all
    ``not_a_hero``); its label is the first such data-folder name in sorted order, so a probe folder ``batman/``
    joins the class of ``Batman/``. Code works with ``class_id``; people see ``label``.
    """
    labelled = [row for row in rows if row["label"]]
    display = {}
    for row in sorted(labelled, key=lambda row: (row["role"] != "data", row["label"])):
        display.setdefault(class_id_for(row["label"]), row["label"])
    for row in rows:
        row["class_id"] = class_id_for(row["label"]) if row["label"] else ""
        row["label"] = display.get(row["class_id"], row["label"])


def _checked_root(root) -> Path:
    """The folder to scan, or a one-line ``UserError`` saying what is wrong with it."""
    root_path = Path(root)
    if not root_path.exists():
        raise UserError(f"folder not found: {root}")
    if not root_path.is_dir():
        raise UserError(f"not a folder: {root}")
    try:
        top = list(os.scandir(root_path))
    except OSError as error:
        raise UserError(f"cannot read folder {root}: {error.strerror or error}") from None
    classes = [
        entry for entry in top
        if entry.is_dir(follow_symlinks=False) and not _is_hidden(entry.name) and entry.name != PROBES_FOLDER
    ]
    if not classes:
        linked = any(e.is_symlink() and e.is_dir() for e in top)
        hint = " (symlinked folders are not followed)" if linked else ""
        raise UserError(f"no class sub-folders in {root}: expected {root}/<class>/<images>{hint}")
    return root_path


def _walk(root: Path):
    """List every file under ``root`` without following symlinked folders.

    Returns the entries to inspect and the rows already decided (unlistable or
    symlinked folders).
    """
    entries, rows = [], []

    def unlistable(error):
        relpath = Path(os.path.relpath(error.filename, root)).as_posix()
        rows.append(_rejected_row(io.name_text(relpath), f"cannot list folder: {error.strerror or error}"))

    for folder, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
        dirnames.sort()
        relfolder = Path(os.path.relpath(folder, root))
        for name in dirnames:
            if os.path.islink(os.path.join(folder, name)):
                relpath = io.name_text((relfolder / name).as_posix())
                rows.append(_rejected_row(relpath, "symlinked folder not followed"))
        for name in sorted(filenames):
            entries.append(_entry((relfolder / name).as_posix(), os.path.join(folder, name)))
    return entries, rows


def _entry(relpath: str, file: str) -> dict:
    """Classify a file by where it sits: label, role, or a reason to reject it without decoding; names are read as
    UTF-8 whatever the locale, so a manifest does not depend on it."""
    text = io.name_text(relpath)
    parts = text.split("/")
    entry = {"file": file, "relpath": text, "label": "", "role": "", "skip": ""}
    if io.native_name(text) != relpath:  # a byte that is not UTF-8 became \xNN
        entry["skip"] = "file or folder name is not valid UTF-8"
        return entry
    hidden = any(_is_hidden(part) for part in parts)
    probe = parts[0] == PROBES_FOLDER
    class_folder = 1 if probe else 0  # index of the part naming the class
    if len(parts) < class_folder + 2 or any(_is_hidden(part) for part in parts[: class_folder + 1]):
        entry["skip"] = "hidden/system file" if hidden else "not inside a class folder"
        return entry
    entry["label"] = unicodedata.normalize("NFC", parts[class_folder])
    entry["role"] = "probe" if probe else "data"
    entry["skip"] = "hidden/system file" if hidden else ""
    return entry


def _inspect_all(entries, progress: bool, workers: int | None) -> list:
    """Inspect every entry, in a small forked process pool for large folders; order is preserved."""
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    context = fork_context() if workers > 1 and len(entries) >= POOL_MIN_FILES else None
    rows = []
    with _progress_bar(len(entries), progress) as bar, warnings.catch_warnings():
        _quiet()
        if context is None:
            inspected = map(_inspect, entries)
        else:
            inspected = ordered_map(_inspect, entries, workers, context, CHUNK_SIZE, initializer=_quiet)
        for row in inspected:
            rows.append(row)
            bar.update()
    return rows


def _progress_bar(total: int, progress: bool):
    """A tqdm bar on stderr, shown only when stderr is a terminal (logs and one-line errors stay clean), never when
    quiet (``--quiet``)."""
    from tqdm import tqdm

    from heroes.progress import quiet

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: a later scan must still see a single-threaded process

    return Bar(total=total, desc="scan", unit="file", file=sys.stderr,
               disable=None if progress and not quiet() else True)


def _quiet() -> None:
    """Pillow warns on odd EXIF and palettes; the manifest reports what matters."""
    warnings.simplefilter("ignore")


def _inspect(entry: dict) -> dict:
    """Hash and decode one file, read-only; never raises."""
    row = _rejected_row(entry["relpath"], "")
    row.update(label=entry["label"], role=entry["role"])
    read_problem = _read_facts(entry["file"], row)
    reason = entry["skip"] or read_problem
    if not reason:
        try:
            row.update(inspect_image(entry["file"]))
        except DecodeError as error:
            reason = error.reason
    row.update(status="rejected" if reason else "ok", reason=reason)
    return row


def _read_facts(file: str, row: dict) -> str:
    """Fill ``bytes`` and ``sha256``; return a rejection reason when the file cannot be read."""
    problem = io.file_problem(file)  # the words predict uses too: broken symlink, symlink loop, not a regular file
    if problem:
        return problem
    try:
        row["bytes"] = os.path.getsize(file)
        with open(file, "rb") as handle:
            row["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    return ""


def _rejected_row(relpath: str, reason: str) -> dict:
    """A row with nothing known but where the file is and why it is rejected."""
    row = {column: "" for column in COLUMNS}
    row.update(relpath=relpath, status="rejected", reason=reason, width=None, height=None, bytes=None)
    return row


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def _integers(column: pandas.Series, name: str, path) -> pandas.Series:
    """Empty cells become <NA>; anything else must be a whole number."""
    try:
        return pandas.to_numeric(column.where(column != "", None)).astype("Int64")
    except (ValueError, TypeError):
        raise UserError(f"manifest {path}: column {name} must hold whole numbers") from None
