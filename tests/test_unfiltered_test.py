"""The test split is never filtered by a compared model: images held out for review are tested, never trained on.

Label issues come from EfficientNet-Lite0's embedding, and EfficientNet-Lite0 is one of the compared models: so an
image it flags may leave train and validation, but stays in test where the hash puts it, marked, and a scorer scores
the test split both as it is and ``unflagged``.
"""

import pandas
import pytest
from clean_helpers import dirty_set

from heroes.cleaning import flags, leakage
from heroes.data import prepare, split
from heroes.errors import UserError
from heroes.training import folder

SEED = 3
COUNTS = (8, 3, 3)
FRACTIONS = (0.6, 0.2, 0.2)


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    """A drawn dirty set cleaned with the embedding flags: label issues and cross-class copies wait for review."""
    root = tmp_path_factory.mktemp("unfiltered")
    images, manifest, _ = dirty_set(root, per_class=20, size=64, seed=SEED)
    result = flags.clean(manifest, config=flags.CleanConfig(backbone="efficientnet_lite0"), progress=False)
    waiting = result.flags[result.flags["action"] == "review"]
    held = set(waiting["path"]) - set(result.manifest["path"])
    assert {"label_issue", "cross_class_duplicate"} <= set(waiting.loc[waiting["path"].isin(held), "flag"])
    return {"images": images, "manifest": manifest, "result": result, "held": held,
            "waiting": set(waiting["path"]), "splits": {sizes: prepare.split_cleaned(result, sizes, SEED)[1]
                                                        for sizes in (COUNTS, FRACTIONS)}}


def _paths(splits, *names) -> set:
    return set(splits.loc[splits["split"].isin(names), "path"])


def _as_if_unflagged(cleaned) -> pandas.DataFrame:
    """The pool split as if no image waited for review: where the hash alone puts each image."""
    pool = prepare.split_pool(cleaned["result"])
    return pool.assign(test_only=False)


@pytest.mark.parametrize("sizes", [COUNTS, FRACTIONS])
def test_held_images_are_tested_where_they_fall_and_never_trained_or_validated(cleaned, sizes):
    splits, held = cleaned["splits"][sizes], cleaned["held"]
    assert not held & _paths(splits, "train", "val")
    tested = held & _paths(splits, "test")
    assert tested, "the drawn set should put some held images in test"
    # the test split is exactly the one the hash gives when nothing is flagged: no flag chose it
    unflagged_sizes = prepare.split_cleaned(cleaned["result"].manifest, sizes, SEED)[0]
    plain = split.make_splits(_as_if_unflagged(cleaned), *unflagged_sizes, seed=SEED)
    assert _paths(splits, "test") == _paths(plain, "test")
    if sizes == FRACTIONS:  # each image's own hash: held_out_of names the split it would have joined
        assert held & _paths(plain, "train", "val") == set(splits.loc[splits["held_out_of"] != "", "path"])
    by_path = splits.set_index("path")
    assert (by_path.loc[sorted(held), "test_only"]).all()
    assert set(by_path.index[by_path["pending_review"]]) == cleaned["waiting"] & set(by_path.index)
    assert (by_path.loc[sorted(cleaned["waiting"] & set(by_path.index)), "flags"] != "").all()


def test_counts_stay_full_and_equal_per_class(cleaned):
    """Held images fill no train or val place: every class keeps the asked counts (a split per seed needs them)."""
    splits = cleaned["splits"][COUNTS]
    table = pandas.crosstab(splits["label"], splits["split"])
    assert (table[["train", "val", "test"]] == list(COUNTS)).all().all()


def test_fraction_train_and_val_are_those_of_the_cleaned_manifest(cleaned):
    """With fractions an image's split is its own hash's: holding images out of train and val moves no other."""
    before = split.make_splits(cleaned["result"].manifest, *FRACTIONS, seed=SEED)
    after = cleaned["splits"][FRACTIONS]
    for name in ("train", "val"):
        assert _paths(after, name) == _paths(before, name)
    assert _paths(after, "test") - _paths(before, "test") <= cleaned["held"]


@pytest.mark.parametrize("sizes", [COUNTS, FRACTIONS])
def test_duplicates_never_straddle_splits(cleaned, sizes):
    assert leakage.find_leaks(cleaned["splits"][sizes], progress=False).empty


@pytest.mark.parametrize("sizes", [COUNTS, FRACTIONS])
def test_removal_table_counts_what_each_flag_took_out(cleaned, sizes):
    splits, result = cleaned["splits"][sizes], cleaned["result"]
    table = split.flag_removals(splits, result.flags)
    assert list(table.columns) == ["train_removed", "val_removed", "test_marked"] and table.index[-1] == "total"
    primary = dict(zip(result.flags["path"], result.flags["flag"]))
    pending = splits[splits["pending_review"]]
    for flag in table.index[:-1]:
        rows = pending[pending["path"].map(primary) == flag]
        assert table.loc[flag].tolist() == [int((rows["held_out_of"] == "train").sum()),
                                            int((rows["held_out_of"] == "val").sum()),
                                            int((rows["split"] == "test").sum())]
    assert table.loc["total"].tolist() == table.iloc[:-1].sum().tolist()
    assert table.loc["total", "test_marked"] == int((splits["pending_review"] & (splits["split"] == "test")).sum())
    assert table.loc["total", ["train_removed", "val_removed"]].sum() == int((splits["held_out_of"] != "").sum())
    assert table.loc["label_issue"].sum() > 0
    assert split.flag_removals(splits).equals(table)  # the split's own flags column gives the same primary flag


def _predictions(test_rows: pandas.DataFrame) -> pandas.DataFrame:
    """A predictions frame as runs write it (path, sha256, label, predicted, correct, prob_<class>)."""
    return pandas.DataFrame({"path": test_rows["path"].to_numpy(), "sha256": test_rows["sha256"].to_numpy(),
                             "label": test_rows["label"].to_numpy(), "predicted": test_rows["label"].to_numpy(),
                             "correct": True, "prob_batman": 0.5})


def test_unflagged_selects_exactly_the_unflagged_test_rows(cleaned, tmp_path):
    splits = cleaned["splits"][COUNTS]
    test_rows = splits[splits["split"] == "test"]
    expected = set(test_rows.loc[~test_rows["pending_review"], "path"])
    assert expected and expected != set(test_rows["path"])
    assert set(split.unflagged(test_rows)["path"]) == expected
    predictions = _predictions(test_rows.sample(frac=1, random_state=0))
    assert set(split.unflagged(predictions, splits)["path"]) == expected
    moved = predictions.assign(path=predictions["path"].str.replace("/", "/elsewhere/", n=1, regex=False))
    assert len(split.unflagged(moved, splits)) == len(expected)  # matched by sha256 where the path differs
    split.write_splits(splits, tmp_path / "splits.csv")
    read = split.read_splits(tmp_path / "splits.csv")
    assert read["pending_review"].dtype == bool and read["test_only"].dtype == bool
    assert set(split.unflagged(predictions, read)["path"]) == expected
    with pytest.raises(UserError, match="not in the split"):
        split.unflagged(moved.assign(sha256="0" * 64), splits)
    with pytest.raises(UserError, match="pending_review"):
        split.unflagged(predictions, splits.drop(columns="pending_review"))


def test_same_seed_same_split(cleaned):
    result = cleaned["result"]
    for sizes in (COUNTS, FRACTIONS):
        again = prepare.split_cleaned(result, sizes, SEED)[1]
        pandas.testing.assert_frame_equal(again, cleaned["splits"][sizes])
        shuffled = split.make_splits(prepare.split_pool(result).sample(frac=1, random_state=1),
                                     *prepare.split_cleaned(result, sizes, SEED)[0], seed=SEED)
        pandas.testing.assert_frame_equal(shuffled, cleaned["splits"][sizes])
        other = prepare.split_cleaned(result, sizes, SEED + 1)[1]
        assert _paths(other, "test") != _paths(cleaned["splits"][sizes], "test")


def test_a_split_of_the_splits_keeps_held_images_out_and_groups_whole(cleaned, tmp_path):
    """Notebook 04's later seeds can split notebook 01's splits frame again (read back from CSV): held images stay
    test-only and duplicate groups (``group_key``) stay on one side."""
    split.write_splits(cleaned["splits"][COUNTS], tmp_path / "splits.csv")
    again = split.make_splits(split.read_splits(tmp_path / "splits.csv"), *COUNTS, seed=SEED + 7)
    assert not cleaned["held"] & _paths(again, "train", "val")
    assert set(again.loc[again["test_only"], "path"]) == cleaned["held"]
    sides = again[again["split"] != "unused"].groupby("group_key")["split"].nunique()
    assert (sides == 1).all()
    assert (pandas.crosstab(again["label"], again["split"])[["train", "val", "test"]] == list(COUNTS)).all().all()


def test_a_plain_manifest_is_split_as_before_with_empty_review_columns(cleaned):
    splits = split.make_splits(cleaned["manifest"], *COUNTS, seed=SEED)
    assert list(splits.columns[-4:]) == split.REVIEW_COLUMNS
    assert (splits["flags"] == "").all() and not splits["pending_review"].any() and not splits["test_only"].any()
    assert split.flag_removals(splits).loc["total"].tolist() == [0, 0, 0]


def test_heroes_train_trains_on_train_and_val_only_and_predicts_the_whole_test_split(cleaned, tmp_path):
    """`heroes train`'s preparation: the decoded sets never hold a held image in train or val, test is the split's
    whole test; the run reports its accuracy on every test image and on the unflagged ones."""
    prepared = folder.prepare(cleaned["images"], seed=SEED, split=FRACTIONS, image_size=16, cache_dir=tmp_path,
                              progress=False)
    splits, sets = prepared["splits"], prepared["sets"]
    held = set(splits.loc[splits["test_only"], "path"])
    assert held and held & _paths(splits, "test")
    for name in ("train", "val"):
        assert set(sets[name].paths) == _paths(splits, name) and not held & set(sets[name].paths)
    assert set(sets["test"].paths) == _paths(splits, "test")
    test_rows = splits[splits["split"] == "test"]
    predictions = _predictions(test_rows).assign(correct=~test_rows["pending_review"].to_numpy())
    flagged = folder.flagged_test_count(splits)
    assert flagged == int(test_rows["pending_review"].sum()) > 0
    text = folder.scored_both_ways(predictions, splits)
    assert text.startswith(f"Test accuracy {100 * (1 - flagged / len(test_rows)):.1f}% on all {len(test_rows)}")
    assert f"100.0% on the {len(test_rows) - flagged} not flagged" in text
