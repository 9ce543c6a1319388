"""Tables and sheet contents for the cleaning notebook: counts per class, flags by kind, groups to look at."""

import pandas

from heroes.cleaning.flags import ACTIONS, FLAGS
from heroes.data.scan import data_rows


def class_counts(manifest: pandas.DataFrame, cleaned: pandas.DataFrame) -> pandas.DataFrame:
    """Class data per label: files found, decodable, and left in the cleaned manifest (probes apart)."""
    table = pandas.DataFrame({
        "files": manifest[data_rows(manifest)].groupby("label").size(),
        "decodable": manifest[data_rows(manifest, usable=True)].groupby("label").size(),
        "cleaned": cleaned[data_rows(cleaned)].groupby("label").size(),
    }).fillna(0).astype(int)
    table.loc["total"] = table.sum()
    return table


def probe_counts(manifest: pandas.DataFrame) -> pandas.DataFrame:
    """Probes per label (never cleaned, never trained on): files and decodable."""
    return pandas.DataFrame({
        "files": manifest[data_rows(manifest, role="probe")].groupby("label").size(),
        "decodable": manifest[data_rows(manifest, usable=True, role="probe")].groupby("label").size(),
    }).fillna(0).astype(int)


def flag_table(flags: pandas.DataFrame) -> pandas.DataFrame:
    """Files per primary flag and final action, with totals."""
    table = pandas.crosstab(flags["flag"], flags["action"], margins=True, margins_name="total")
    rows = [flag for flag in FLAGS if flag in table.index] + ["total"]
    columns = [action for action in ACTIONS if action in table.columns] + ["total"]
    return table.reindex(index=rows, columns=columns, fill_value=0)


def flagged_groups(flags: pandas.DataFrame, limit: int | None = None) -> list:
    """``[(heading, [(path, caption), ...])]`` per duplicate group, cross-class groups first."""
    grouped = flags[flags["group_id"] != ""]
    order = (grouped.assign(cross=grouped["flags"].str.contains("cross_class"))
             .groupby("group_id")["cross"].any().sort_index().sort_values(ascending=False, kind="stable"))
    groups = []
    for group_id in order.index[:limit]:
        members = grouped[grouped["group_id"] == group_id].sort_values(["action", "path"], ascending=[False, True])
        kind = "cross-class" if order[group_id] else members["flag"].iloc[0].replace("_", " ")
        heading = f"{group_id}\n{kind}\n{', '.join(sorted(set(members['label'])))}"
        groups.append((heading, [(path, f"{label}: {action}") for path, label, action
                                 in zip(members["path"], members["label"], members["action"])]))
    return groups


def flagged_singles(flags: pandas.DataFrame) -> tuple:
    """(paths, captions) of flagged files outside any group that can be shown (tiny, flat, odd shape, outlier...).

    Unreadable files are left out: there is nothing to look at, their reasons are in the flags file.
    """
    singles = flags[(flags["group_id"] == "") & (flags["flag"] != "unreadable")].sort_values(["flag", "path"])
    captions = [f"{flag}: {action}" for flag, action in zip(singles["flag"], singles["action"])]
    return list(singles["path"]), captions


def class_samples(cleaned: pandas.DataFrame, count: int) -> list:
    """``[(label, paths, captions)]``: the first ``count`` cleaned images of each class, in path order."""
    data = cleaned[data_rows(cleaned)].sort_values("path")
    samples = []
    for label, rows in data.groupby("label", sort=True):
        rows = rows.head(count)
        samples.append((label, list(rows["path"]), [path.rsplit("/", 1)[-1] for path in rows["path"]]))
    return samples
