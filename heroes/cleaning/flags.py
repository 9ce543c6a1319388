"""Flag what should not be trained on, replay the review decisions, and write the cleaned manifest.

Flags (one row per flagged file in FLAGS.csv; ``flag`` is the most important of
``flags``, in the order of ``FLAGS``):

* ``unreadable``: rejected by the scan (or no longer decodable): drop.
* ``exact_duplicate``: same sha256 or the same decoded pixels as another file.
* ``near_duplicate``: perceptual hash (pHash and dHash of the Y, Cb, Cr planes, 384 bits)
  within ``near_threshold`` bits of another file (resized, re-encoded, slightly cropped
  or brightened copies; ``heroes.cleaning.near_duplicates``).
  Exact and near copies form groups (connected components); in a one-class group
  the largest resolution (then the first path) is kept and the rest dropped.
* ``cross_class_duplicate``: a group spanning two labels: every member goes to
  ``review``, never silently kept in one class.
* ``tiny``: shorter side under ``min_side`` (64 px): drop.
* ``low_information``: near-uniform (colour spread under ``min_spread``): drop.
* ``extreme_aspect``: longer/shorter side above ``max_aspect`` (3): review.
* ``outlier`` (optional): far from its class in an embedding (a cheap colour one unless
  ``embed`` gives another): review, never drop.
* ``label_issue`` (``backbone``): out-of-fold probabilities of a logistic regression on a
  pretrained backbone's embedding say it belongs to another class (cleanlab): review; it
  stays out of the cleaned manifest while its label is in doubt.
* ``off_class`` (``backbone``): far from every classmate in that embedding, like fan art or
  a picture of something else (``heroes.cleaning.embedding_flags``): review.
* ``decision``: a file with no automatic flag that a review decision dropped or relabelled.

Probes (``role == probe``) are never cleaned as class data: they keep their
place in the cleaned manifest untouched. ``data/raw`` is only ever read.

Near-duplicate threshold (``NEAR_THRESHOLD`` = 80), chosen by measurement:
``python benchmarks/clean_benchmark.py --thresholds`` draws four dirty embedded sets
(seed/size/per class: 0/224/250, 1/128/120, 2/224/250, 0/96/40; 126 injected near
duplicates, 247 injected copies of any kind, 3,511 clean drawings) and counts, per
threshold on the 384-bit hash distance, the injected copies found and the pairs of
distinct clean drawings matched (``heroes.cleaning.truth.threshold_table``, pooled):

  threshold  near-dup recall  all-copies recall  false pairs  clean images in them
         64            0.921              0.931            0                     0
         68            0.952              0.951            0                     0
         72            0.976              0.968            1                     2
         76            0.992              0.984            3                     6
       > 80            0.992              0.988            4                     7
         84            0.992              0.988            8                    15
         88            1.000              0.996           14                    26
         96            1.000              0.996           47                    73

80 finds 99% of the near duplicates while matching 0.2% of the clean drawings (same-pose
close-ups of one hero, which really do look alike). A false match in one class costs one
clean image (dropped as the smaller copy); across classes it sends both to review.
"""

from dataclasses import dataclass

import numpy
import pandas

from heroes.cleaning import embedding_flags
from heroes.cleaning.fingerprints import fingerprint_all, hash_words
from heroes.cleaning.near_duplicates import close_pairs, distances
from heroes.data.scan import data_rows
from heroes.data.split import link_equal, linked_components
from heroes.errors import UserError
from heroes.io import printable

FLAG_COLUMNS = ["path", "flag", "group_id", "action", "reason", "flags", "label", "sha256"]
FLAGS = ("unreadable", "cross_class_duplicate", "exact_duplicate", "near_duplicate", "tiny",
         "low_information", "label_issue", "off_class", "extreme_aspect", "outlier", "decision")
ACTIONS = ("keep", "drop", "review")
# Defects of the file itself: dropped whatever group it belongs to.
FILE_DEFECTS = {"unreadable", "tiny", "low_information"}
# Review flags that still let a file into the cleaned manifest while no one has decided.
SOFT_REVIEW = {"extreme_aspect", "outlier", "off_class"}
# Measured on the embedded set's injected copies: see "Near-duplicate threshold" in the module docstring.
NEAR_THRESHOLD = 80


@dataclass(frozen=True)
class CleanConfig:
    """Thresholds of the automatic flags (module docstring)."""

    near_threshold: int = NEAR_THRESHOLD  # summed Hamming distance, bits of 384 (measured)
    min_side: int = 64  # pixels; shorter side below it is ``tiny``
    max_aspect: float = 3.0  # longer / shorter side above it is ``extreme_aspect``
    min_spread: float = 4.0  # colour spread (0-255) of a 16x16 thumbnail below it is ``low_information``
    outliers: bool = False  # the optional k-nearest-neighbour step
    outlier_neighbours: int = 5
    outlier_z: float = 5.0  # robust z-score of the kNN distance within the class
    backbone: str | None = None  # registered backbone with ImageNet weights: turns on off_class and label_issue
    embedding: embedding_flags.EmbeddingConfig = embedding_flags.EmbeddingConfig()


@dataclass(frozen=True)
class FlagResult:
    """Flags (one row per flagged file), the group id of every usable image, and the fingerprints."""

    flags: pandas.DataFrame
    group_ids: pandas.Series  # path -> group id ("" for a picture with no copy)
    fingerprints: pandas.DataFrame


def _issue(path, flag, action, reason, group_id="") -> dict:
    return {"path": path, "flag": flag, "action": action, "reason": reason, "group_id": group_id}


def _unreadable(manifest: pandas.DataFrame) -> list:
    """Rejected by the scan (any role): carried over with the scan's reason."""
    rejected = manifest[manifest["status"] != "ok"]
    return [_issue(path, "unreadable", "drop", reason or "rejected by the scan")
            for path, reason in zip(rejected["path"], rejected["reason"])]


def _quality(usable: pandas.DataFrame, config: CleanConfig) -> list:
    """Per-file flags: tiny, extreme aspect, low information, and files that stopped decoding."""
    issues = []
    short = numpy.minimum(usable["width"], usable["height"]).astype(float)
    long = numpy.maximum(usable["width"], usable["height"]).astype(float)
    for path, side, aspect, spread, error in zip(usable["path"], short, long / short.clip(1), usable["spread"],
                                                usable["error"]):
        if error:
            issues.append(_issue(path, "unreadable", "drop", f"no longer decodes: {error}"))
            continue
        if side < config.min_side:
            issues.append(_issue(path, "tiny", "drop", f"shorter side {side:.0f} px < {config.min_side}"))
        if aspect > config.max_aspect:
            issues.append(_issue(path, "extreme_aspect", "review", f"aspect {aspect:.1f}:1 > {config.max_aspect:g}:1"))
        if spread < config.min_spread:
            issues.append(_issue(path, "low_information", "drop",
                                 f"near-uniform (colour spread {spread:.1f} < {config.min_spread:g})"))
    return issues


def duplicate_components(usable: pandas.DataFrame, near_threshold: int, searchable=None) -> tuple:
    """Component label per row (exact and near copies linked) and a mask of exact copies.

    ``searchable`` masks the rows whose perceptual hash is meaningful (flat images
    hash alike, so they are only grouped when exactly equal).
    """
    count = len(usable)
    searchable = numpy.ones(count, dtype=bool) if searchable is None else numpy.asarray(searchable)
    sha_a, sha_b = link_equal(usable["sha256"])
    pixel_a, pixel_b = link_equal(usable["pixel_sha256"])
    index = numpy.flatnonzero(searchable)
    pairs, _ = close_pairs(hash_words(usable)[index], near_threshold)
    near_a, near_b = index[pairs[:, 0]], index[pairs[:, 1]]
    component = linked_components(count, numpy.concatenate([sha_a, pixel_a, near_a]),
                                  numpy.concatenate([sha_b, pixel_b, near_b]))
    exact = numpy.zeros(count, dtype=bool)
    exact[numpy.concatenate([sha_a, sha_b, pixel_a, pixel_b]).astype(numpy.int64)] = True
    return component, exact


def group_ids(usable: pandas.DataFrame, component: numpy.ndarray) -> pandas.Series:
    """``g`` + the first 12 hex digits of the smallest sha256 in each group of two or more; "" otherwise."""
    frame = pandas.DataFrame({"component": component, "sha256": usable["sha256"].to_numpy()}, index=usable.index)
    smallest = frame.groupby("component")["sha256"].transform("min")
    size = frame.groupby("component")["sha256"].transform("size")
    return ("g" + smallest.str[:12]).where(size > 1, "")


def _keeper(members: pandas.DataFrame, defective: set) -> str:
    """Largest resolution, then path order: the one copy of a group that stays.

    A member dropped for its own defect (tiny, flat) is never chosen while another can be.
    """
    area = members["width"].astype("int64") * members["height"].astype("int64")
    flawed = members["path"].isin(defective)
    order = members.assign(area=area, flawed=flawed).sort_values(["flawed", "area", "path"],
                                                                 ascending=[True, False, True])
    return order["path"].iloc[0]


def _group_issues(usable: pandas.DataFrame, component, exact, defective: set) -> list:
    """exact/near duplicate flags for every member of a group; cross-class groups all go to review."""
    words = hash_words(usable)
    usable = usable.assign(component=component, exact=exact, position=numpy.arange(len(usable)))
    issues = []
    for _, members in usable[usable["group_id"] != ""].groupby("component"):
        labels = sorted(set(members["label"]))
        keeper = _keeper(members, defective)
        keeper_hash = words[members.loc[members["path"] == keeper, "position"].iloc[0]]
        group_id = members["group_id"].iloc[0]
        for row in members.itertuples():
            kind = "exact_duplicate" if row.exact else "near_duplicate"
            distance = int(distances(words[row.position], keeper_hash))
            if len(labels) > 1:
                issues.append(_issue(row.path, "cross_class_duplicate", "review",
                                     f"same picture under {', '.join(labels)} ({len(members)} files)", group_id))
                issues.append(_issue(row.path, kind, "review", f"{kind.replace('_', ' ')} in a cross-class group",
                                     group_id))
            elif row.path == keeper:
                issues.append(_issue(row.path, kind, "keep", f"kept: largest of {len(members)} copies", group_id))
            else:
                how = "identical to" if row.exact else f"{distance} hash bits from"
                issues.append(_issue(row.path, kind, "drop", f"{how} {keeper}", group_id))
    return issues


def _outliers(usable: pandas.DataFrame, vectors: numpy.ndarray, config: CleanConfig) -> list:
    """Images whose mean distance to their k nearest classmates is a robust outlier within the class."""
    from sklearn.neighbors import NearestNeighbors

    issues = []
    for label in sorted(set(usable["label"])):
        where = numpy.flatnonzero((usable["label"] == label).to_numpy())
        neighbours = min(config.outlier_neighbours, len(where) - 1)
        if neighbours < 2:
            continue
        model = NearestNeighbors(n_neighbors=neighbours + 1).fit(vectors[where])
        score = model.kneighbors(vectors[where])[0][:, 1:].mean(axis=1)
        median = numpy.median(score)
        spread = 1.4826 * numpy.median(numpy.abs(score - median)) or 1e-9
        for position in numpy.flatnonzero((score - median) / spread > config.outlier_z):
            z = (score[position] - median) / spread
            issues.append(_issue(usable["path"].iloc[where[position]], "outlier", "review",
                                 f"far from the rest of {label} (robust z {z:.1f})"))
    return issues


def _embedding_issues(rows: pandas.DataFrame, config: CleanConfig, progress) -> list:
    """off_class and label_issue (review) from the backbone's embedding of the images that are not dropped anyway."""
    found = embedding_flags.find(rows["path"], rows["label"], config.backbone, config.embedding, progress)
    return [_issue(path, flag, "review", reason) for path, flag, reason in found]


def _final_action(flags: set, actions: set) -> str:
    """File defects drop; then a cross-class review; then a duplicate drop; then any review."""
    if flags & FILE_DEFECTS:
        return "drop"
    if "cross_class_duplicate" in flags:
        return "review"
    if "drop" in actions:
        return "drop"
    return "review" if "review" in actions else "keep"


def resolve(issues: list, manifest: pandas.DataFrame) -> pandas.DataFrame:
    """One row per flagged file: primary flag, all flags, final action, reasons in flag order."""
    if not issues:
        return pandas.DataFrame(columns=FLAG_COLUMNS)
    rank = {flag: index for index, flag in enumerate(FLAGS)}
    frame = pandas.DataFrame(issues)
    frame["rank"] = frame["flag"].map(rank)
    facts = manifest.drop_duplicates("path").set_index("path")
    rows = []
    for path, found in frame.sort_values(["rank", "reason"]).groupby("path", sort=True):
        flags = list(dict.fromkeys(found["flag"]))
        group_id = next((value for value in found["group_id"] if value), "")
        rows.append({
            "path": path, "flag": flags[0], "group_id": group_id,
            "action": _final_action(set(flags), set(found["action"])),
            "reason": "; ".join(f"{flag}: {reason}" for flag, reason in zip(found["flag"], found["reason"])),
            "flags": ";".join(flags), "label": facts.at[path, "label"], "sha256": facts.at[path, "sha256"],
        })
    return pandas.DataFrame(rows, columns=FLAG_COLUMNS)


def usable_rows(manifest: pandas.DataFrame, progress=True, workers=None) -> tuple:
    """Decodable class-data rows with their fingerprints, and the embedding of each."""
    usable = manifest[data_rows(manifest, usable=True)].reset_index(drop=True)
    prints, vectors = fingerprint_all(usable["path"], progress=progress, workers=workers)
    return pandas.concat([usable, prints.drop(columns="path")], axis=1), vectors


def find_flags(manifest: pandas.DataFrame, config: CleanConfig = CleanConfig(), progress=True,
               workers=None, embed=None) -> FlagResult:
    """Every automatic flag of the manifest (review decisions are applied afterwards).

    ``embed`` (outlier step only) maps a list of paths to an (n, d) array; by default a
    cheap colour embedding. ``config.backbone`` adds off_class and label_issue from that
    backbone's ImageNet embedding of every image not dropped for its own defect.
    """
    _check_manifest(manifest)
    if config.backbone:  # refuse an unknown backbone or one without ImageNet weights before any work
        embedding_flags.imagenet_choice(config.backbone, config.embedding.size)
    usable, vectors = usable_rows(manifest, progress, workers)
    readable = (usable["error"] == "").to_numpy()
    searchable = readable & (usable["spread"].fillna(0).to_numpy() >= config.min_spread)
    component, exact = duplicate_components(usable, config.near_threshold, searchable)
    component = numpy.where(readable, component, -1 - numpy.arange(len(usable)))  # unreadable rows stay alone
    usable["group_id"] = group_ids(usable, component)
    quality = _quality(usable, config)
    defective = {issue["path"] for issue in quality if issue["flag"] in FILE_DEFECTS}
    issues = _unreadable(manifest) + quality + _group_issues(usable, component, exact, defective)
    if config.outliers:
        readable_rows = usable[readable].reset_index(drop=True)
        embedded = numpy.asarray(embed(list(readable_rows["path"]))) if embed else vectors[readable]
        issues += _outliers(readable_rows, embedded, config)
    if config.backbone:
        issues += _embedding_issues(usable[readable & ~usable["path"].isin(defective).to_numpy()], config, progress)
    groups = pandas.Series(usable["group_id"].to_numpy(), index=usable["path"].to_numpy(), name="group_id")
    return FlagResult(resolve(issues, manifest), groups, usable)


def _check_manifest(manifest: pandas.DataFrame) -> None:
    """Width and height must be numbers for the ok rows; duplicated paths make no sense."""
    ok = manifest[manifest["status"] == "ok"]
    if ok[["width", "height"]].isna().any().any():
        raise UserError("manifest has ok rows without width/height; re-run the scan")
    duplicated = manifest["path"][manifest["path"].duplicated()]
    if not duplicated.empty:
        raise UserError(f"manifest lists {duplicated.iloc[0]} more than once")


@dataclass(frozen=True)
class CleanResult:
    """Flags after review decisions, the cleaned manifest, and the decision rows still waiting for a person."""

    flags: pandas.DataFrame
    manifest: pandas.DataFrame
    pending: pandas.DataFrame
    fingerprints: pandas.DataFrame


def clean_manifest(manifest: pandas.DataFrame, flags: pandas.DataFrame, groups: pandas.Series) -> pandas.DataFrame:
    """Usable class data that survives cleaning (with ``group_id``), then the probes, untouched.

    A file pending review stays out while its label is in doubt (cross-class), and
    stays in when only its shape or its distance from the class is in question.
    """
    action = flags.set_index("path")["action"]
    flag_sets = flags.set_index("path")["flags"].str.split(";").map(set)
    frame = manifest[manifest["status"] == "ok"].copy()
    # object dtype first: with no flags at all the lookups are empty float Series, and NaN -> "" must stay text
    frame["group_id"] = frame["path"].map(groups).astype(object).fillna("")
    frame["action"] = frame["path"].map(action).astype(object).fillna("keep")
    frame["flags"] = frame["path"].map(flags.set_index("path")["flags"]).astype(object).fillna("")
    soft = frame["path"].map(flag_sets).map(lambda found: isinstance(found, set) and found <= SOFT_REVIEW)
    survives = (frame["action"] == "keep") | ((frame["action"] == "review") & soft)
    probes = ~data_rows(frame)
    frame.loc[probes, ["group_id", "action", "flags"]] = ["", "keep", ""]
    return frame[survives | probes].sort_values("path").reset_index(drop=True)


def clean(manifest: pandas.DataFrame, decisions=None, config: CleanConfig = CleanConfig(), progress=True,
          workers=None, embed=None) -> CleanResult:
    """Relabel, flag, apply keep/drop decisions, and build the cleaned manifest (nothing is written)."""
    from heroes.cleaning import review

    decisions = review.empty_decisions() if decisions is None else decisions
    relabelled = review.apply_relabels(manifest, decisions)
    found = find_flags(relabelled, config, progress, workers, embed)
    flags = review.apply_decisions(found.flags, relabelled, decisions, FLAG_COLUMNS)
    flags = flags.sort_values("path").reset_index(drop=True)
    return CleanResult(flags, clean_manifest(relabelled, flags, found.group_ids),
                       review.pending(flags, decisions), found.fingerprints)


def save(result: CleanResult, flags_path, clean_manifest_path=None, decisions_path=None, decisions=None,
         manifest_path=None) -> str:
    """Check every output place, then write the cleaned manifest, the new pending decision rows and the flags
    (spreadsheet-safe: people open it), each atomically; describe them."""
    from heroes.cleaning import review
    from heroes.data import scan
    from heroes.io import absolute_paths, write_csv

    check_outputs(manifest_path, flags_path, clean_manifest_path, decisions_path, result.manifest)
    if clean_manifest_path is not None:
        scan.write_manifest(result.manifest, clean_manifest_path, inputs=(manifest_path,))
    added = 0
    if decisions_path is not None:
        decisions = review.empty_decisions() if decisions is None else decisions
        added = review.sync_decisions(decisions_path, decisions, result.flags)
    write_csv(result.flags[FLAG_COLUMNS].assign(path=absolute_paths(result.flags["path"])), flags_path, for_people=True)
    return describe(result, flags_path, clean_manifest_path, decisions_path, added)


def check_outputs(manifest_path, flags_path, clean_manifest_path=None, decisions_path=None, manifest=None) -> None:
    """Refuse, before any work, an output that is the manifest or another output of the run, lies inside the
    dataset folder, is a folder or cannot be written (the decisions file is read and appended to: it may exist)."""
    from heroes.data.scan import dataset_roots
    from heroes.io import check_output_path

    roots = dataset_roots(manifest) if manifest is not None else []
    outputs = [path for path in (flags_path, clean_manifest_path, decisions_path) if path is not None]
    for index, path in enumerate(outputs):
        others = outputs[:index] + outputs[index + 1:]
        check_output_path(path, inputs=(manifest_path, *others), forbidden_dirs=roots)


def run(manifest_path, flags_path, decisions_path=None, clean_manifest_path=None,
        config: CleanConfig = CleanConfig(), progress=True) -> str:
    """``python -m heroes clean``: read and check every input and output place first, then write each output
    atomically; a clean that would drop every image writes nothing and says why in one line."""
    from heroes.cleaning import review
    from heroes.data import scan

    manifest = scan.read_manifest(manifest_path)
    check_outputs(manifest_path, flags_path, clean_manifest_path, decisions_path, manifest)
    decisions = review.read_decisions(decisions_path, manifest)
    result = clean(manifest, decisions, config, progress)
    _check_something_left(result, manifest_path)
    return save(result, flags_path, clean_manifest_path, decisions_path, decisions, manifest_path)


def _check_something_left(result: CleanResult, manifest_path) -> None:
    """Every image dropped is a wrong input (paths that lead nowhere, another dataset), not a cleaning result."""
    if data_rows(result.manifest).any():
        return
    flagged = result.flags[result.flags["action"] == "drop"]
    why = f"; e.g. {flagged['path'].iloc[0]}: {flagged['reason'].iloc[0]}" if len(flagged) else ""
    raise UserError(f"clean would drop every image of {manifest_path}, nothing written{why}"[:400])


def describe(result: CleanResult, flags_path=None, manifest_path=None, decisions_path=None, added=0) -> str:
    """A few lines for people: flags by kind and action, what the cleaned manifest holds, where things went."""
    flags = result.flags
    lines = [f"{len(flags)} files flagged: " + ", ".join(
        f"{action} {int(count)}" for action, count in flags["action"].value_counts().reindex(ACTIONS).dropna().items())]
    table = pandas.crosstab(flags["flag"], flags["action"]) if len(flags) else pandas.DataFrame()
    if len(table):
        lines.append(table.reindex([flag for flag in FLAGS if flag in table.index]).to_string())
    kept = result.manifest[data_rows(result.manifest)]
    lines.append(f"cleaned manifest: {len(kept)} images: " + ", ".join(
        f"{printable(label)} {count}" for label, count in kept["label"].value_counts().sort_index().items()))
    for what, path in (("flags", flags_path), ("cleaned manifest", manifest_path), ("decisions", decisions_path)):
        if path is not None:
            lines.append(f"{what}: {printable(str(path))}")
    waiting = int((flags["action"] == "review").sum())
    if waiting:
        lines.append(f"{waiting} files wait for review ({added} new rows in the decisions file)")
    return "\n".join(lines)
