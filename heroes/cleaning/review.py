"""Review decisions (``sha256,decision,label,note``): read strictly, replayed on every run, never lost or doubled.

A decision is keyed by the file's sha256, so renaming or moving a file keeps it.
``keep`` overrides every automatic flag of that picture, ``drop`` removes it,
``relabel`` moves it to ``label`` (an existing class) before duplicates are
grouped, so a relabelled cross-class copy becomes an ordinary duplicate. An empty
decision is a pending review: cleaning appends one row per picture that needs a
person.

The file is a person's, so this module is the one place that reads and writes it,
and it only ever appends: rows already there stay byte for byte as they were, with
any columns a person added (``reviewer``, ``date``), their values and their order.
A row whose cell count differs from the header's (a note with an unquoted comma),
broken quoting, an unknown decision or two decisions for one picture stop the run
with one line naming the line. A decision whose picture is not in the manifest
(another dataset, a deleted file, a row written for another run) stays in the file,
inactive, counted in one warning line. Appended cells that start like a spreadsheet
formula get a leading quote, which reading removes (``heroes.io.spreadsheet_safe``).
"""

import csv
import io
import sys
from pathlib import Path

import pandas

from heroes.data.scan import data_rows
from heroes.errors import UserError
from heroes.io import atomic_path, from_spreadsheet, printable, read_rows, read_text, spreadsheet_safe

DECISION_COLUMNS = ["sha256", "decision", "label", "note"]
REQUIRED_COLUMNS = ["sha256", "decision"]
DECISIONS = ("keep", "drop", "relabel")
SHA256_DIGITS = "[0-9a-f]{64}"
WHAT = "decisions file"


def empty_decisions() -> pandas.DataFrame:
    return pandas.DataFrame(columns=DECISION_COLUMNS, dtype=str)


def read_decisions(path, manifest: pandas.DataFrame) -> pandas.DataFrame:
    """The decisions that apply to ``manifest``, checked; an absent file means no decisions yet.

    Values are read as meant (spaces trimmed, decisions in lower case), never written back. Rows for pictures not
    in ``manifest`` are left out and counted in one warning line on stderr.
    """
    frame = read_all(path)
    active = frame["sha256"].isin(set(manifest["sha256"]) - {""})
    _warn_inactive(frame[~active], path)
    frame = frame[active]
    _check_labels(frame, manifest, path)
    return frame[DECISION_COLUMNS].drop_duplicates().reset_index(drop=True)


def read_all(path) -> pandas.DataFrame:
    """Every row of the file, checked, whatever manifest it belongs to; an absent or blank file has none."""
    if path is None or not Path(path).exists() or not read_text(path, WHAT).strip():
        return empty_decisions()
    frame = _read_file(path)
    _check(frame, path)
    return frame


def _read_file(path) -> pandas.DataFrame:
    """Every row of the file, its values as meant, with the ``line`` it starts on; strict about its shape."""
    header, rows = read_rows(path, WHAT)
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise UserError(f"{WHAT} {path} lacks required column(s): {', '.join(missing)}")
    records = [{"line": line, **{column: _meant(cells[header.index(column)]) if column in header else ""
                                 for column in DECISION_COLUMNS}} for line, cells in rows]
    frame = pandas.DataFrame(records, columns=["line", *DECISION_COLUMNS])
    frame["decision"] = frame["decision"].str.lower()
    frame["sha256"] = frame["sha256"].str.lower()
    return frame


def _meant(cell: str) -> str:
    return from_spreadsheet(cell.strip()).strip()


def _check(frame: pandas.DataFrame, path) -> None:
    """Unknown decisions, malformed digests and contradictions are errors, in any row."""
    _refuse(frame, ~frame["sha256"].str.fullmatch(SHA256_DIGITS), path,
            lambda row: f"sha256 {row.sha256!r} is not 64 hex digits (copy it from the note or the manifest)")
    _refuse(frame, ~frame["decision"].isin(("", *DECISIONS)), path,
            lambda row: f"unknown decision {row.decision!r} (expected {', '.join(DECISIONS)}, or empty while pending)")
    decided = frame[frame["decision"] != ""].drop_duplicates(["sha256", "decision", "label"])
    _refuse(decided, decided["sha256"].duplicated(keep=False), path,
            lambda row: f"sha256 {row.sha256[:16]}… has conflicting decisions; keep one row per picture")


def _check_labels(frame: pandas.DataFrame, manifest: pandas.DataFrame, path) -> None:
    """A relabel of a picture in this manifest names one of its classes."""
    labels = relabel_targets(manifest)
    _refuse(frame, (frame["decision"] == "relabel") & ~frame["label"].isin(labels), path,
            lambda row: f"relabel needs a label among {', '.join(sorted(labels))}; got {row.label!r}")


def relabel_targets(manifest: pandas.DataFrame) -> set:
    """The classes a picture of ``manifest`` can be relabelled to: those of its decodable class data."""
    return set(manifest.loc[data_rows(manifest, usable=True), "label"])


def _refuse(frame: pandas.DataFrame, bad: pandas.Series, path, message) -> None:
    """A one-line ``UserError`` for the first ``bad`` row, naming its line."""
    if bad.any():
        row = next(frame[bad].itertuples())
        raise UserError(f"{WHAT} {path} line {row.line}: {message(row)}")


def _warn_inactive(inactive: pandas.DataFrame, path) -> None:
    """One line: how many rows name pictures this manifest does not hold (they stay in the file, unused)."""
    if inactive.empty:
        return
    decided = int((inactive["decision"] != "").sum())
    print(f"warning: {len(inactive)} row(s) of {printable(str(path))} name pictures not in this manifest "
          f"({decided} decided, {len(inactive) - decided} pending): another dataset or a removed file; they stay in "
          f"the file, inactive", file=sys.stderr)


def decided(decisions: pandas.DataFrame) -> pandas.DataFrame:
    """Rows with a decision (pending rows removed), one per sha256, indexed by sha256."""
    rows = decisions[decisions["decision"] != ""]
    return rows.drop_duplicates("sha256").set_index("sha256")


def apply_relabels(manifest: pandas.DataFrame, decisions: pandas.DataFrame) -> pandas.DataFrame:
    """The manifest with relabelled class data moved to its new label (``original_label`` keeps the old)."""
    relabel = decided(decisions)
    relabel = relabel[relabel["decision"] == "relabel"]["label"]
    frame = manifest.copy()
    frame["original_label"] = frame["label"]
    moved = frame["sha256"].isin(relabel.index) & data_rows(frame)
    frame.loc[moved, "label"] = frame.loc[moved, "sha256"].map(relabel)
    if "class_id" in frame.columns:
        ids = dict(zip(manifest["label"], manifest["class_id"]))
        frame.loc[moved, "class_id"] = frame.loc[moved, "label"].map(ids)
    return frame


def apply_decisions(flags: pandas.DataFrame, manifest: pandas.DataFrame, decisions: pandas.DataFrame,
                    flag_columns) -> pandas.DataFrame:
    """Flags with the people's word applied: keep/drop override the action, relabel settles a review.

    A decided file with no automatic flag gets a ``decision`` row when the decision changes something.
    """
    chosen = decided(decisions)
    flags = flags.copy()
    decision = flags["sha256"].map(lambda sha: chosen["decision"].get(sha, ""))
    note = flags["sha256"].map(lambda sha: chosen["note"].get(sha, ""))
    override = decision.isin(["keep", "drop"])
    flags.loc[override, "action"] = decision[override]
    settled = (decision == "relabel") & (flags["action"] == "review")
    flags.loc[settled, "action"] = "keep"
    flags.loc[decision != "", "reason"] = flags["reason"] + "; decision: " + decision + note.map(
        lambda text: f" ({text})" if text else "")
    extra = _decision_rows(manifest, chosen, set(flags["path"]), flag_columns)
    return pandas.concat([flags, extra], ignore_index=True) if not extra.empty else flags


def _decision_rows(manifest, chosen, flagged: set, flag_columns) -> pandas.DataFrame:
    """Rows for unflagged class data that a decision drops or relabels."""
    data = manifest[data_rows(manifest, usable=True) & ~manifest["path"].isin(flagged)]
    data = data[data["sha256"].isin(chosen.index)]
    rows = []
    for row in data.itertuples():
        decision, note = chosen.at[row.sha256, "decision"], chosen.at[row.sha256, "note"]
        if decision == "keep":
            continue
        action = "drop" if decision == "drop" else "keep"
        what = f"relabelled {row.original_label} -> {row.label}" if decision == "relabel" else "dropped"
        rows.append({"path": row.path, "flag": "decision", "group_id": "", "action": action,
                     "reason": f"decision: {what}" + (f" ({note})" if note else ""), "flags": "decision",
                     "label": row.label, "sha256": row.sha256})
    return pandas.DataFrame(rows, columns=flag_columns)


def pending(flags: pandas.DataFrame, decisions: pandas.DataFrame) -> pandas.DataFrame:
    """Decision rows to append: one per picture under review that has no row yet."""
    waiting = flags[(flags["action"] == "review") & ~flags["sha256"].isin(set(decisions["sha256"]))]
    rows = []
    for sha256, files in waiting.groupby("sha256", sort=True):
        first = files.sort_values("path").iloc[0]
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        group = f" {first['group_id']}" if first["group_id"] else ""
        rows.append({"sha256": sha256, "decision": "", "label": "",
                     "note": f"pending {first['flag']}{group}: {first['path']}{more}"})
    return pandas.DataFrame(rows, columns=DECISION_COLUMNS)


def sync_decisions(path, decisions: pandas.DataFrame, flags: pandas.DataFrame) -> int:
    """Append pending rows for new reviews (atomically); existing rows stay byte for byte. Returns rows added."""
    new = pending(flags, decisions)
    if new.empty:
        return 0
    append_decisions(path, new)
    return len(new)


def append_decisions(path, rows: pandas.DataFrame) -> None:
    """Append ``rows`` to the decisions file atomically, under its own header (columns a person added stay, empty
    in the new rows; a column the file lacks is left out) and line endings; create the file when absent."""
    path = Path(path)
    original = path.read_bytes() if path.exists() else b""
    header = read_rows(path, WHAT)[0] if original.strip() else DECISION_COLUMNS
    newline = "\r\n" if b"\r\n" in original else "\n"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=newline)
    if not original.strip():
        original = b""
        writer.writerow(header)
    for row in rows.to_dict("records"):
        writer.writerow([spreadsheet_safe(str(row.get(column, ""))) for column in header])
    if original and not original.endswith((b"\n", b"\r")):
        original += newline.encode()
    with atomic_path(path) as temporary:
        temporary.write_bytes(original + text.getvalue().encode("utf-8"))
