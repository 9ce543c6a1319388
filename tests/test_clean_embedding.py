"""clean --backbone: off-class pictures and misfiled figures found in the ImageNet embedding, sent to review."""

import numpy
import pandas
import pytest
from clean_helpers import dirty_set

from heroes import cli
from heroes.cleaning import embedding_flags
from heroes.cleaning.flags import FLAGS
from heroes.cleaning.truth import read_truth
from heroes.config import CLASSES
from heroes.data import scan
from heroes.data.synthetic import dataset
from heroes.reporting.plots import sheets

BACKBONE = "efficientnet_lite0"


def _clean(root, manifest_path, *extra):
    """``python -m heroes clean`` in-process; exit status and the paths it was given."""
    outputs = {name: root / f"{name}.csv" for name in ("flags", "decisions", "clean")}
    status = cli.main(["clean", str(manifest_path), "--out", str(outputs["flags"]), "--decisions",
                       str(outputs["decisions"]), "--clean-manifest", str(outputs["clean"]), *extra])
    return status, outputs


def _read(path):
    return pandas.read_csv(path, keep_default_na=False)


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    """16 drawings per class at 96 px with every defect, scanned and cleaned once with the backbone."""
    root = tmp_path_factory.mktemp("embedding")
    _, manifest, truth_path = dirty_set(root, per_class=16, size=96, seed=1)
    manifest_path = root / "manifest.csv"
    scan.write_manifest(manifest, manifest_path)
    status, outputs = _clean(root, manifest_path, "--backbone", BACKBONE)
    assert status == 0
    truth = read_truth(truth_path)
    data = manifest[(manifest["status"] == "ok") & (manifest["role"] == "data")]
    return {"root": root, "manifest": manifest, "manifest_path": manifest_path, "truth": truth,
            "outputs": outputs, "flags": _read(outputs["flags"]).set_index("path"),
            "clean_paths": set(data["path"]) - set(truth["path"])}


def _flag_sets(flags):
    return flags["flags"].str.split(";").map(set)


def test_synth_truth_has_misfiled_figures_and_pictures_of_no_class(cleaned):
    truth = cleaned["truth"]
    for kind in ("mislabelled", "off_class"):
        rows = truth[truth["kind"] == kind]
        assert sorted(rows["label"]) == sorted(CLASSES)  # one per class at 16 per class
        assert (rows["source"] == "").all()
    mislabelled = truth[truth["kind"] == "mislabelled"]
    assert (mislabelled["true_label"] != mislabelled["label"]).all() and mislabelled["true_label"].isin(CLASSES).all()
    assert (truth.loc[truth["kind"] == "off_class", "true_label"] == "").all()


@pytest.mark.parametrize("kind, flag, at_least", [("off_class", "off_class", 5), ("mislabelled", "label_issue", 4)])
def test_injected_files_get_their_flag_and_go_to_review(cleaned, kind, flag, at_least):
    flags, truth = cleaned["flags"], cleaned["truth"]
    paths = truth.loc[truth["kind"] == kind, "path"]
    found = [path for path in paths if path in flags.index and flag in flags.at[path, "flags"].split(";")]
    assert len(found) >= at_least, f"{kind}: {len(found)} of {len(paths)} flagged {flag}"
    assert (flags.loc[found, "action"] == "review").all()
    assert all(f"{flag}: " in reason for reason in flags.loc[found, "reason"])


def test_few_clean_images_are_flagged_and_every_flag_is_listed(cleaned):
    flags = cleaned["flags"]
    sets = _flag_sets(flags)
    checked = set(flags.index[sets.map(lambda found: bool(found & {"off_class", "label_issue"}))])
    assert len(checked & cleaned["clean_paths"]) <= 0.12 * len(cleaned["clean_paths"])
    rank = {flag: index for index, flag in enumerate(FLAGS)}
    ordered = flags["flags"].str.split(";").map(lambda listed: listed == sorted(listed, key=rank.get))
    assert ordered.all() and (flags["flag"] == flags["flags"].str.split(";").str[0]).all()
    reasons = flags.loc[list(checked), "reason"]
    assert reasons.str.contains(r"looks like \w+ \(p [01]\.\d\d\), not \w+ \(p [01]\.\d\d\)|robust z \d+\.\d > 3").all()


def test_label_issue_stays_out_of_the_cleaned_manifest_off_class_alone_stays_in(cleaned):
    flags, kept = cleaned["flags"], set(_read(cleaned["outputs"]["clean"])["path"])
    sets = _flag_sets(flags)
    assert not set(flags.index[sets.map(lambda found: "label_issue" in found)]) & kept
    only_far = set(flags.index[sets.map(lambda found: found == {"off_class"})])
    assert only_far and only_far <= kept


def test_keep_and_relabel_decisions_settle_the_reviews(cleaned):
    root, truth, flags = cleaned["root"], cleaned["truth"], cleaned["flags"]
    misfiled = truth[(truth["kind"] == "mislabelled") & truth["path"].isin(flags.index[flags["flag"] == "label_issue"])]
    keep, relabel = misfiled.iloc[0], misfiled.iloc[1]
    sha = cleaned["manifest"].set_index("path")["sha256"]
    decisions = _read(cleaned["outputs"]["decisions"])
    assert set(decisions["sha256"]) >= {sha[keep["path"]], sha[relabel["path"]]}  # pending rows were written
    decisions.loc[decisions["sha256"] == sha[keep["path"]], ["decision", "note"]] = ["keep", "a fan-art crossover"]
    decisions.loc[decisions["sha256"] == sha[relabel["path"]], ["decision", "label"]] = ["relabel",
                                                                                         relabel["true_label"]]
    decisions.to_csv(cleaned["outputs"]["decisions"], index=False)
    status, outputs = _clean(root, cleaned["manifest_path"], "--backbone", BACKBONE)
    assert status == 0
    again, kept = _read(outputs["flags"]).set_index("path"), _read(outputs["clean"]).set_index("path")
    assert again.at[keep["path"], "action"] == "keep" and "decision: keep" in again.at[keep["path"], "reason"]
    assert keep["path"] in kept.index and kept.at[keep["path"], "label"] == keep["label"]
    assert again.at[relabel["path"], "action"] == "keep"
    assert kept.at[relabel["path"], "label"] == relabel["true_label"]


def test_sheet_items_feed_a_contact_sheet(cleaned, tmp_path):
    flags = cleaned["flags"].reset_index()
    for flag in ("off_class", "label_issue"):
        paths, titles = embedding_flags.sheet_items(flags, flag, limit=8)
        assert 0 < len(paths) == len(titles) <= 8
        assert set(paths) <= set(flags.loc[_flag_sets(flags).map(lambda found: flag in found), "path"])
        sheets.contact_sheet(paths, titles, tmp_path / f"{flag}.png", thumb=48)
    assert all("→" in title for title in embedding_flags.sheet_items(flags, "label_issue")[1])


def test_unknown_backbone_is_one_line_exit_two_and_nothing_written(cleaned, tmp_path, capsys):
    status, outputs = _clean(tmp_path, cleaned["manifest_path"], "--backbone", "no_such_net")
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "unknown backbone 'no_such_net'" in err
    assert not any(path.exists() for path in outputs.values())


def test_backbone_without_imagenet_weights_is_refused(cleaned, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEROES_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty weights cache
    status, outputs = _clean(tmp_path, cleaned["manifest_path"], "--backbone", "vgg16")
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "vgg16 has no ImageNet weights" in err
    assert "Traceback" not in err and not any(path.exists() for path in outputs.values())


def _clusters(rng, per_class=30, classes=4, dims=32):
    """Tight Gaussian clusters around random directions: an embedding where the truth is known."""
    centres = rng.normal(size=(classes, dims)) * 4
    labels = numpy.repeat(numpy.arange(classes), per_class)
    return centres[labels] + rng.normal(size=(len(labels), dims)), labels


def test_label_issues_find_swapped_labels_in_known_clusters():
    vectors, labels = _clusters(numpy.random.default_rng(0))
    swapped = numpy.array([3, 40, 75, 110])
    labels = labels.copy()
    labels[swapped] = (labels[swapped] + 1) % 4
    found = embedding_flags.label_issues(vectors, [f"class{label}" for label in labels])
    assert set(found["position"]) == set(swapped)
    assert found["reason"].str.startswith("looks like class").all()


def test_off_class_finds_the_far_points_only():
    rng = numpy.random.default_rng(1)
    vectors, labels = _clusters(rng)
    far = numpy.array([5, 70])
    vectors[far] = rng.normal(size=(2, vectors.shape[1])) * 4  # somewhere no class lives
    found = embedding_flags.off_class(vectors, labels).sort_values("score", ascending=False)
    assert set(found["position"][:2]) == set(far) and len(found) <= len(far) + 1  # a Gaussian tail may reach z 3
    assert (found["score"].iloc[:2] > 20).all()


def test_dirt_counts_give_a_handful_of_each_new_kind_at_sixty_per_class():
    counts = dataset.dirt_counts(60)
    assert counts["mislabelled"] * len(CLASSES) >= 5 and counts["off_class"] * len(CLASSES) >= 5
