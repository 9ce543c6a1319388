"""Review decisions (``sha256,decision,label,note``): validated, replayed on every run, never lost or doubled.

A decision is keyed by the file's sha256, so renaming or moving a file keeps it.
``keep`` overrides every automatic flag of that picture, ``drop`` removes it,
``relabel`` moves it to ``label`` (an existing class) before duplicates are
grouped, so a relabelled cross-class copy becomes an ordinary duplicate. An empty
decision is a pending review: cleaning appends one row per picture that needs a
person, and leaves every existing row exactly as it was.
"""

from pathlib import Path

import pandas

from heroes.errors import UserError
from heroes.io import read_csv, write_csv

DECISION_COLUMNS = ["sha256", "decision", "label", "note"]
DECISIONS = ("keep", "drop", "relabel")


def empty_decisions() -> pandas.DataFrame:
    return pandas.DataFrame(columns=DECISION_COLUMNS, dtype=str)


def read_decisions(path, manifest: pandas.DataFrame) -> pandas.DataFrame:
    """The decisions file checked against ``manifest``; an absent file means no decisions yet."""
    if path is None or not Path(path).exists():
        return empty_decisions()
    frame = read_csv(path, required=["sha256", "decision"], what="decisions file")
    for column in DECISION_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[DECISION_COLUMNS].apply(lambda column: column.str.strip())
    frame["decision"] = frame["decision"].str.lower()
    _check(frame, manifest, path)
    return frame.drop_duplicates().reset_index(drop=True)


def _check(frame: pandas.DataFrame, manifest: pandas.DataFrame, path) -> None:
    """Unknown decisions, relabels without a known class, strangers and contradictions are errors."""
    line = frame.index + 2  # header is line 1
    unknown = ~frame["decision"].isin(("", *DECISIONS))
    if unknown.any():
        first = unknown.idxmax()
        raise UserError(f"decisions file {path} line {line[first]}: unknown decision {frame.at[first, 'decision']!r} "
                        f"(expected {', '.join(DECISIONS)}, or empty while pending)")
    data = manifest[manifest["status"] == "ok"]
    labels = set(data.loc[data["role"].isin(["data", ""]), "label"]) if "role" in data else set(data["label"])
    bad_label = (frame["decision"] == "relabel") & ~frame["label"].isin(labels)
    if bad_label.any():
        first = bad_label.idxmax()
        raise UserError(f"decisions file {path} line {line[first]}: relabel needs a label among "
                        f"{', '.join(sorted(labels))}; got {frame.at[first, 'label']!r}")
    stranger = ~frame["sha256"].isin(set(manifest["sha256"]) - {""})
    if stranger.any():
        first = stranger.idxmax()
        raise UserError(f"decisions file {path} line {line[first]}: sha256 {frame.at[first, 'sha256'][:16]}… is "
                        f"not in the manifest (a file that left the data? delete the row or re-scan)")
    decided = frame[frame["decision"] != ""].drop_duplicates(["sha256", "decision", "label"])
    doubled = decided["sha256"].duplicated(keep=False)
    if doubled.any():
        first = decided.index[doubled.argmax()]
        raise UserError(f"decisions file {path} line {line[first]}: sha256 {frame.at[first, 'sha256'][:16]}… has "
                        f"conflicting decisions; keep one row per picture")


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
    is_data = frame["role"].isin(["data", ""]) if "role" in frame.columns else True
    moved = frame["sha256"].isin(relabel.index) & is_data
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
    data = manifest[(manifest["status"] == "ok") & ~manifest["path"].isin(flagged)]
    if "role" in data.columns:
        data = data[data["role"].isin(["data", ""])]
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
    """Append pending rows for new reviews (atomically); existing rows are kept as they are. Returns rows added."""
    new = pending(flags, decisions)
    if new.empty:
        return 0
    write_csv(pandas.concat([decisions, new], ignore_index=True)[DECISION_COLUMNS], path)
    return len(new)
