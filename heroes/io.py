"""Files in and out: output-path checks, atomic writes, strict CSV, spreadsheet-safe cells and strict JSON."""

import csv
import errno
import io
import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy

from heroes.errors import UserError, short_error

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): files meant for people get
# such cells prefixed with a single quote, which spreadsheets show as text and ``from_spreadsheet`` strips.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NAME_MAX = 255  # bytes in one file name where the file system does not say (Linux, macOS, Windows)
RANDOM_PART = 8  # characters ``tempfile`` puts in a temporary name


def jsonable(value):
    """``value`` with numpy scalars made Python and NaN made None, so ``json.dump`` writes strict JSON."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, numpy.ndarray)):
        return [jsonable(item) for item in value]
    if isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def file_problem(path) -> str:
    """Why ``path`` cannot be read as a plain file without blocking, in the words every command uses; "" if it can."""
    try:
        info = os.stat(path)
    except OSError as error:
        if os.path.islink(path):
            return "symlink loop" if error.errno == errno.ELOOP else "broken symlink"
        return "not found" if error.errno == errno.ENOENT else f"unreadable: {error.strerror or error}"
    if stat.S_ISDIR(info.st_mode):
        return f"unreadable: {os.strerror(errno.EISDIR)}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"  # a FIFO or a device would block or never end
    return ""


def printable(text: str) -> str:
    """``text`` on one line: control characters and undecodable bytes escaped (``\\n``, ``\\udcff``)."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for char in text)


def name_text(name) -> str:
    """A file name as CSVs, JSON and people get it whatever the locale: its bytes read as UTF-8, others as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def native_name(text: str) -> str:
    """The file name ``name_text`` gave, as this locale's file functions take it (the same text in a UTF-8 one)."""
    return os.fsdecode(text.encode("utf-8", "surrogateescape"))


def check_output_path(path, inputs=(), forbidden_dirs=(), folder=False) -> Path:
    """``path`` if a command may write it, else a one-line ``UserError``; call it before the work, not after.

    Refused: an input of the command (``inputs``, also through links), a place inside ``forbidden_dirs`` (a
    dataset folder stays unchanged), an existing folder (or, with ``folder=True``, an existing file), a device or
    FIFO, a name longer than the file system allows, and a parent folder that cannot be created or written.
    """
    path = Path(path)
    for given in inputs:
        if given is not None and _same_file(path, given):
            raise UserError(f"refusing to write {path}: it would overwrite {given}; choose another output")
    for dataset in forbidden_dirs:
        if dataset and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(dataset)):
            raise UserError(f"refusing to write {path} inside the dataset folder {dataset}: it must stay unchanged")
    _check_parent(path)
    _check_existing(path, folder)
    return path


def _same_file(path: Path, other) -> bool:
    """Same file by inode where both exist (hard and symbolic links too), else the same resolved path."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return os.path.realpath(path) == os.path.realpath(other)


def _check_existing(path: Path, folder: bool) -> None:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # absent: the parent check says what is wrong, if anything
        return
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode) and not folder:
        raise UserError(f"cannot write {path}: it is a folder; give a file name")
    if folder and not stat.S_ISDIR(info.st_mode):
        raise UserError(f"cannot write {path}: it exists and is not a folder")
    if not folder and not stat.S_ISREG(info.st_mode):
        raise UserError(f"cannot write {path}: it is not a regular file")


def _check_parent(path: Path) -> None:
    """The nearest existing folder above ``path`` must be a folder this process can write in."""
    parent = Path(os.path.abspath(path)).parent
    while not os.path.exists(parent) and parent != parent.parent:
        parent = parent.parent
    if not os.path.isdir(parent):
        raise UserError(f"cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: no permission to write in {parent}")
    limit = _name_max(parent)
    if len(os.fsencode(path.name)) > limit:
        raise UserError(f"cannot write {path}: its name is longer than the {limit} bytes a file name may have")


def _name_max(folder) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _temporary_prefix(name: str, suffix: str, folder) -> str:
    """``.name.``, shortened so the temporary name (prefix, random part, suffix) is a legal file name too."""
    room = _name_max(folder) - len(os.fsencode(suffix)) - RANDOM_PART - 2
    short = os.fsencode(name)[: max(room, 1)].decode("utf-8", "ignore") or "output"
    return f".{short}."


def cannot_write(path, error: OSError) -> UserError:
    """The one line of a failed write: the file and the cause ("cannot write x.csv: No space left on device")."""
    return UserError(f"cannot write {path}: {error.strerror or short_error(error)}")


@contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    ``suffix`` ends the temporary name: Keras picks its format from it (``.keras``, ``.weights.h5``). A symlink
    is written through (the file it names gets the content, the link stays) and a replaced file keeps its mode.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = _temporary_prefix(target.name, suffix, target.parent)
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
        os.close(handle)
        os.chmod(temporary, _kept_mode(target))  # mkstemp creates 0600 files
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except OSError as error:  # the block only writes: a full disk, a quota or a permission lost meanwhile
        raise cannot_write(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _kept_mode(path: Path) -> int:
    """The permissions of the file ``path`` replaces, else the usual ones of a new file (0666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def spreadsheet_safe(value):
    """A cell a spreadsheet shows as text: a string starting like a formula gets a leading single quote."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def from_spreadsheet(value: str) -> str:
    """The cell ``spreadsheet_safe`` was given: its leading quote, when a formula start follows it, removed."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def write_csv(frame, path, for_people=False) -> Path:
    """Write a pandas DataFrame to CSV atomically.

    ``for_people``: a file a person opens in a spreadsheet (flags, leaks): formula-like cells are quoted with
    ``spreadsheet_safe``. Files the pipeline reads back (manifests, splits) keep every value exact.
    """
    if for_people:
        frame = frame.map(spreadsheet_safe)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
    return Path(path)


def read_rows(path, what="file") -> tuple:
    """(header, [(line number, cells), ...]) of a CSV file; a row whose cell count differs from the header's,
    broken quoting, a file that is not UTF-8 text or not a plain file: a one-line ``UserError`` naming the line.

    Blank rows are skipped; a UTF-8 byte-order mark is allowed.
    """
    text = read_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((reader.line_num, cells))
    except csv.Error as error:
        raise UserError(f"{what} {path} line {reader.line_num}: not valid CSV ({error})") from None
    if not records:
        raise UserError(f"{what} {path} is empty: expected a header row")
    (_, header), rows = records[0], records[1:]
    header = [name.strip() for name in header]
    doubled = sorted({name for name in header if header.count(name) > 1})
    if doubled:
        raise UserError(f"{what} {path}: column {doubled[0]!r} appears more than once in the header")
    for line, cells in rows:
        if len(cells) != len(header):
            names = f" ({','.join(header)})" if len(header) <= 6 else ""
            raise UserError(f"{what} {path} line {line}: {len(cells)} cells where the header has {len(header)}{names}; "
                            f"a cell holding a comma must be in double quotes")
    return header, rows


def read_text(path, what="file") -> str:
    """The UTF-8 text of an input file; missing, a folder, a FIFO, unreadable or not UTF-8: one-line ``UserError``."""
    problem = file_problem(path)
    if problem:
        raise UserError(f"{what} not found: {path}" if problem == "not found" else f"{what} {path}: {problem}")
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise UserError(f"{what} {path}: unreadable: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def read_csv(path, required=(), what="file"):
    """Read a CSV strictly (``read_rows``) into strings, raising ``UserError`` when it lacks ``required`` columns."""
    import pandas

    header, rows = read_rows(path, what)
    missing = [column for column in required if column not in header]
    if missing:
        raise UserError(f"{what} {path} lacks required column(s): {', '.join(missing)}")
    return pandas.DataFrame([cells for _, cells in rows], columns=header, dtype=str)


def absolute_paths(paths) -> list:
    """``paths`` as CSVs store them: absolute, so no reader depends on the folder a command ran in, and UTF-8
    text whatever the locale (``name_text``)."""
    return [name_text(Path(os.path.abspath(path)).as_posix()) if path else path for path in paths]


def resolved_paths(paths, csv_path) -> list:
    """Absolute ``paths`` from a CSV at ``csv_path``: relative ones are taken from its folder, never the cwd."""
    folder = os.path.dirname(os.path.abspath(csv_path))
    return [Path(os.path.normpath(os.path.join(folder, native_name(path)))).as_posix() if path else path
            for path in paths]


def write_json(path, data, indent=2) -> Path:
    """Strict JSON (numpy scalars as Python, NaN as null), written atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(jsonable(data), indent=indent, default=str) + "\n")
    return Path(path)
