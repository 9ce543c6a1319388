"""Review decisions: replayed every run, keyed by content, never lost or doubled; bad files refused whole."""

import shutil
import subprocess
import sys

import pandas
import pytest
from clean_helpers import picture, save
from PIL import Image

from heroes.cleaning import flags as clean_flags
from heroes.cleaning import review
from heroes.data import scan
from heroes.errors import UserError


def make_tree(raw, copy_name="x_copy.png"):
    """Two classes; a cross-class copy, a resized copy, and plain pictures."""
    save(picture(1), raw / "batman" / "a.png")
    save(picture(1).resize((70, 70), Image.Resampling.BICUBIC), raw / "batman" / "a_small.png")
    save(picture(5), raw / "superman" / "x.png")
    shutil.copyfile(raw / "superman" / "x.png", raw / "batman" / copy_name)
    for index in range(4):
        save(picture(10 + index), raw / "batman" / f"ok{index}.png")
        save(picture(20 + index), raw / "superman" / f"ok{index}.png")
    return scan.scan(raw, progress=False)


@pytest.fixture
def tree(tmp_path):
    raw = tmp_path / "raw"
    manifest = make_tree(raw)
    manifest_path = tmp_path / "manifest.csv"
    scan.write_manifest(manifest, manifest_path)
    return {"raw": raw, "manifest": manifest, "manifest_path": manifest_path, "tmp": tmp_path,
            "decisions": tmp_path / "review" / "decisions.csv"}


def sha_of(manifest, path):
    return manifest.set_index("path").at[str(path), "sha256"]


def run(tree, manifest_path=None):
    out = tree["tmp"] / "out"
    clean_flags.run(manifest_path or tree["manifest_path"], out / "flags.csv", tree["decisions"], out / "clean.csv",
              progress=False)
    return pandas.read_csv(out / "flags.csv", keep_default_na=False), scan.read_manifest(out / "clean.csv")


def write_decisions(path, rows):
    pandas.DataFrame(rows, columns=review.DECISION_COLUMNS).to_csv(path, index=False)


def test_pending_rows_are_added_once_and_kept_as_they_are(tree):
    flags, _ = run(tree)
    small = flags.set_index("path").loc[str(tree["raw"] / "batman" / "a_small.png")]
    assert (small["flag"], small["action"]) == ("near_duplicate", "drop")  # until someone says keep
    first = tree["decisions"].read_text()
    pending = pandas.read_csv(tree["decisions"], keep_default_na=False)
    assert list(pending.columns) == review.DECISION_COLUMNS
    # The cross-class picture has the same bytes in both classes: one row for it.
    assert pending["sha256"].tolist() == [sha_of(tree["manifest"], tree["raw"] / "superman" / "x.png")]
    assert (pending["decision"] == "").all() and "cross_class_duplicate" in pending.at[0, "note"]
    run(tree)
    assert tree["decisions"].read_text() == first


def test_relabel_drop_and_keep_are_replayed_idempotently(tree):
    manifest, raw = tree["manifest"], tree["raw"]
    tree["decisions"].parent.mkdir(parents=True)
    write_decisions(tree["decisions"], [
        (sha_of(manifest, raw / "superman" / "x.png"), "relabel", "superman", "it is Superman"),
        (sha_of(manifest, raw / "batman" / "ok1.png"), "drop", "", "fan art"),
        (sha_of(manifest, raw / "batman" / "a_small.png"), "keep", "", "a different crop really"),
    ])
    before = tree["decisions"].read_text()
    flags, cleaned = run(tree)
    again_flags, again_cleaned = run(tree)
    assert tree["decisions"].read_text() == before  # nothing pending: the file is untouched
    pandas.testing.assert_frame_equal(flags, again_flags)
    pandas.testing.assert_frame_equal(cleaned, again_cleaned)
    copies = cleaned[cleaned["sha256"] == sha_of(manifest, raw / "superman" / "x.png")]
    assert copies["label"].tolist() == ["superman"]  # relabelled, then one of two exact copies kept
    assert str(raw / "batman" / "ok1.png") not in set(cleaned["path"])
    decision_row = flags.set_index("path").loc[str(raw / "batman" / "ok1.png")]
    assert (decision_row["flag"], decision_row["action"]) == ("decision", "drop")
    assert {str(raw / "batman" / "a.png"), str(raw / "batman" / "a_small.png")} <= set(cleaned["path"])


def test_decisions_follow_a_renamed_file(tree):
    tree["decisions"].parent.mkdir(parents=True)
    sha = sha_of(tree["manifest"], tree["raw"] / "superman" / "x.png")
    write_decisions(tree["decisions"], [(sha, "relabel", "superman", "")])
    renamed_raw = tree["tmp"] / "renamed"
    manifest = make_tree(renamed_raw, copy_name="renamed_copy.png")
    scan.write_manifest(manifest, tree["tmp"] / "renamed.csv")
    flags, cleaned = run(tree, tree["tmp"] / "renamed.csv")
    assert cleaned.loc[cleaned["sha256"] == sha, "label"].tolist() == ["superman"]
    assert len(pandas.read_csv(tree["decisions"])) == 1


@pytest.mark.parametrize("row, message", [
    (("SHA", "maybe", "", ""), "line 2: unknown decision 'maybe'"),
    (("not-a-digest", "drop", "", ""), "line 2: sha256 'not-a-digest' is not 64 hex digits"),
    (("SHA", "relabel", "aquaman", ""), "line 2: relabel needs a label"),
])
def test_bad_decisions_are_refused(tree, row, message):
    sha = sha_of(tree["manifest"], tree["raw"] / "batman" / "ok0.png")
    tree["decisions"].parent.mkdir(parents=True)
    write_decisions(tree["decisions"], [tuple(sha if value == "SHA" else value for value in row)])
    with pytest.raises(UserError, match=message):
        review.read_decisions(tree["decisions"], tree["manifest"])


def test_conflicting_decisions_for_one_picture_are_refused(tree):
    sha = sha_of(tree["manifest"], tree["raw"] / "batman" / "ok0.png")
    tree["decisions"].parent.mkdir(parents=True)
    write_decisions(tree["decisions"], [(sha, "keep", "", ""), (sha, "drop", "", "")])
    with pytest.raises(UserError, match="conflicting"):
        review.read_decisions(tree["decisions"], tree["manifest"])


def test_decisions_for_pictures_not_in_the_manifest_stay_inactive_with_one_warning(tree, capsys):
    """Issue 13.5: another dataset's rows, a deleted file's, a pending row clean wrote itself: never blocking."""
    tree["decisions"].parent.mkdir(parents=True)
    sha = sha_of(tree["manifest"], tree["raw"] / "batman" / "ok1.png")
    write_decisions(tree["decisions"], [("0" * 64, "drop", "", "another dataset"), ("1" * 64, "", "", "pending x"),
                                        ("2" * 64, "relabel", "aquaman", "a class of another dataset"),
                                        (sha, "drop", "", "fan art")])
    before = tree["decisions"].read_bytes()
    flags, cleaned = run(tree)
    assert str(tree["raw"] / "batman" / "ok1.png") not in set(cleaned["path"])  # the active row still applies
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "3 row(s)" in warnings[0] and "(2 decided, 1 pending)" in warnings[0]
    assert tree["decisions"].read_bytes().startswith(before)  # kept, byte for byte


def test_bad_decisions_file_on_the_command_line_writes_nothing(tree):
    tree["decisions"].parent.mkdir(parents=True)
    write_decisions(tree["decisions"], [(sha_of(tree["manifest"], tree["raw"] / "batman" / "ok0.png"), "kept", "", "")])
    before = tree["decisions"].read_text()
    out = tree["tmp"] / "out"
    result = subprocess.run([sys.executable, "-m", "heroes", "clean", str(tree["manifest_path"]),
                             "--out", str(out / "flags.csv"), "--decisions", str(tree["decisions"]),
                             "--clean-manifest", str(out / "clean.csv")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert tree["decisions"].read_text() == before
