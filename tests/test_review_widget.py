"""The review widget: a click appends one decision row, the next clean applies it, and headless it is a static grid."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
from clean_helpers import picture, save
from PIL import Image

import heroes
from heroes.cleaning import flags as clean_flags
from heroes.cleaning import review
from heroes.data import scan


@pytest.fixture
def tree(tmp_path):
    """Two classes: a near-duplicate pair (one dropped), a cross-class copy (review), a tiny picture (drop)."""
    raw = tmp_path / "raw"
    save(picture(1), raw / "batman" / "a.png")
    save(picture(1).resize((70, 70), Image.Resampling.BICUBIC), raw / "batman" / "a_small.png")
    save(picture(5), raw / "superman" / "x.png")
    shutil.copyfile(raw / "superman" / "x.png", raw / "batman" / "x_copy.png")
    save(picture(7, (40, 40)), raw / "superman" / "tiny.jpg", "JPEG")
    for index in range(4):
        save(picture(10 + index), raw / "batman" / f"ok{index}.png")
        save(picture(20 + index), raw / "superman" / f"ok{index}.png")
    return {"raw": raw, "manifest": scan.scan(raw, progress=False), "decisions": tmp_path / "review" / "decisions.csv"}


def clean(tree):
    """The notebook's cleaning cell: read the decisions, clean, write the pending rows."""
    decisions = review.read_decisions(tree["decisions"], tree["manifest"])
    result = clean_flags.clean(tree["manifest"], decisions, progress=False)
    review.sync_decisions(tree["decisions"], decisions, result.flags)
    return result


def widget(tree, result, flags=None):
    return heroes.review(result.flags if flags is None else flags, tree["manifest"], tree["decisions"], thumb=48)


def rows(tree):
    return pandas.read_csv(tree["decisions"], keep_default_na=False, dtype=str)


def test_click_keep_appends_one_row_and_the_next_clean_keeps_the_picture(tree):
    small = str(tree["raw"] / "batman" / "a_small.png")
    before = clean(tree)
    assert before.flags.set_index("path").at[small, "action"] == "drop"
    assert small not in set(before.manifest["path"])
    pending = tree["decisions"].read_bytes()
    reviewer = widget(tree, before)
    reviewer.card(small).buttons["keep"].click()
    after = rows(tree)
    assert tree["decisions"].read_bytes().startswith(pending)  # appended: the pending rows stay byte for byte
    sha = before.flags.set_index("path").at[small, "sha256"]
    assert after[after["decision"] != ""][["sha256", "decision"]].values.tolist() == [[sha, "keep"]]
    assert reviewer.card(small).status.value == "<small>decided: keep</small>"
    reviewer.card(small).buttons["keep"].click()  # the same decision again: nothing doubled
    assert len(rows(tree)) == len(after)
    again = clean(tree)
    assert again.flags.set_index("path").at[small, "action"] == "keep"
    assert "decision: keep" in again.flags.set_index("path").at[small, "reason"]
    assert small in set(again.manifest["path"])


def test_group_relabel_settles_a_cross_class_group_on_the_next_clean(tree):
    copy, original = str(tree["raw"] / "batman" / "x_copy.png"), str(tree["raw"] / "superman" / "x.png")
    before = clean(tree)
    group = before.flags.set_index("path").at[copy, "group_id"]
    assert before.flags.set_index("path").at[copy, "action"] == "review"
    reviewer = widget(tree, before)
    card = reviewer.card(group=group)
    assert set(card.paths) == {copy, original}
    assert card.relabel_to.options == ("batman", "superman")  # the manifest's classes (tiny.jpg is one of them)
    card.relabel_to.value = "superman"
    card.buttons["relabel"].click()
    decided = rows(tree)[lambda frame: frame["decision"] != ""]
    assert decided[["decision", "label"]].values.tolist() == [["relabel", "superman"]]  # one row: same bytes
    assert f"{group}: " in decided["note"].iloc[0]
    again = clean(tree)
    kept = again.manifest[again.manifest["sha256"] == decided["sha256"].iloc[0]]
    assert kept["label"].tolist() == ["superman"]  # relabelled, then one of the two exact copies kept


def test_a_contrary_click_appends_nothing_and_says_why(tree):
    small = str(tree["raw"] / "batman" / "a_small.png")
    reviewer = widget(tree, clean(tree))
    reviewer.card(small).buttons["drop"].click()
    written = tree["decisions"].read_bytes()
    reviewer.card(small).buttons["keep"].click()
    assert tree["decisions"].read_bytes() == written
    assert "already decided (drop)" in reviewer.message.value
    clean(tree)  # and the file stays readable: no conflicting rows


def test_columns_a_person_added_stay_and_new_rows_leave_them_empty(tree):
    tree["decisions"].parent.mkdir(parents=True)
    tree["decisions"].write_text("reviewer,sha256,decision,label,note\r\nann,"
                                 f"{tree['manifest']['sha256'].iloc[0]},,,\r\n")
    before = tree["decisions"].read_bytes()
    result = clean(tree)
    tiny = str(tree["raw"] / "superman" / "tiny.jpg")
    widget(tree, result).card(tiny).buttons["drop"].click()
    text = tree["decisions"].read_bytes()
    assert text.startswith(before) and text.count(b"\r\n") == text.count(b"\n")
    last = rows(tree).iloc[-1]
    assert list(rows(tree).columns) == ["reviewer", "sha256", "decision", "label", "note"]
    assert (last["reviewer"], last["decision"]) == ("", "drop")


def test_sections_group_by_flag_with_sizes_formats_and_most_certain_first(tree):
    result = clean(tree)
    raw = tree["raw"]
    # Two label issues the embedding would report (no backbone needed to show them).
    issues = pandas.DataFrame([
        {"path": str(raw / "batman" / f"ok{index}.png"), "flag": "label_issue", "group_id": "", "action": "review",
         "reason": f"label_issue: looks like superman (p {p}), not batman (p 0.10)", "flags": "label_issue",
         "label": "batman", "sha256": tree["manifest"].set_index("path").at[str(raw / "batman" / f"ok{index}.png"),
                                                                           "sha256"]}
        for index, p in ((0, "0.61"), (1, "0.93"))])
    reviewer = widget(tree, result, pandas.concat([result.flags, issues], ignore_index=True))
    titles = [title for title, _ in reviewer.sections]
    assert titles == ["duplicate groups", "label_issue", "tiny"]
    label_issues = dict(reviewer.sections)["label_issue"]
    assert [items[0].path for _, items in label_issues] == [issues["path"][1], issues["path"][0]]
    assert reviewer.card(issues["path"][1]).relabel_to.value == "superman"  # the suggested class
    grid = reviewer.to_html()
    assert "batman→superman .93" in grid and "96×96 PNG" in grid and "70×70 PNG" in grid and "40×40 JPEG" in grid
    groups = dict(reviewer.sections)["duplicate groups"]
    assert sorted(len(items) for _, items in groups) == [2, 2]  # each group's members side by side


def test_displayed_it_is_a_live_widget_with_a_static_grid_for_papermill(tree):
    reviewer = widget(tree, clean(tree))
    bundle = reviewer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == reviewer.widget.model_id
    assert bundle["text/html"].count("<img src='data:image/jpeg;base64,") == 5  # two pairs and the tiny one
    assert "<button" not in bundle["text/html"] and "not decided" in bundle["text/html"]


def test_a_flags_csv_works_as_well_as_the_frame(tree, tmp_path):
    result = clean(tree)
    clean_flags.save(result, tmp_path / "flags.csv")
    reviewer = heroes.review(tmp_path / "flags.csv", decisions=tree["decisions"], thumb=48)
    assert reviewer.classes == ["batman", "superman"]
    assert [title for title, _ in reviewer.sections] == ["duplicate groups", "tiny"]


def test_import_heroes_loads_no_widget_and_changes_no_environment():
    code = ("import json, os, sys; before = dict(os.environ); import heroes; "
            "print(json.dumps([dict(os.environ) == before, 'ipywidgets' in sys.modules, callable(heroes.review)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(heroes.__file__).parents[1])}).stdout
    assert json.loads(out) == [True, False, True]
