"""Clumsy and hostile input (issue 14, and 13.5/13.6): every case one clear line, nothing lost, nothing hangs."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas
import pytest
from PIL import Image

from heroes import cli
from heroes.cleaning import review
from heroes.data import decode, scan, workers
from heroes.data.synthetic import dataset
from heroes.data.synthetic.hostile import jpeg_claiming, png_claiming
from heroes.errors import UserError
from heroes.io import atomic_path, check_output_path, from_spreadsheet, spreadsheet_safe, write_csv
from heroes.serving import export, predict

PROJECT = Path(__file__).resolve().parents[1]
FORMULA_CLASSES = ('=HYPERLINK("evil.example";"click")', "+SUM(1+1)")


def run(capsys, *argv) -> tuple:
    """(exit status, stdout, stderr) of ``heroes.cli.main`` in this process."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line(status, err, *words):
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err


def run_module(*argv, cwd=PROJECT, **options):
    return subprocess.run([sys.executable, "-m", "heroes", *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **options)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """The embedded set at 72 px (not tiny), 4 per class, scanned; probes left out."""
    root = tmp_path_factory.mktemp("clumsy")
    dataset.write_dataset(root / "drawn", per_class=4, size=72, seed=5, progress=False)
    shutil.rmtree(root / "drawn" / scan.PROBES_FOLDER, ignore_errors=True)
    return root / "drawn"


@pytest.fixture
def tree(drawn, tmp_path):
    """A fresh copy of the drawn set with its manifest written beside it."""
    images = tmp_path / "images"
    shutil.copytree(drawn, images)
    shutil.copyfile(sorted((images / "batman").iterdir())[-1], images / "superman" / "copied.png")  # to review
    manifest = tmp_path / "manifest.csv"
    scan.write_manifest(scan.scan(images, progress=False), manifest)
    return {"images": images, "manifest": manifest, "tmp": tmp_path, "decisions": tmp_path / "decisions.csv"}


def clean_args(tree, **outputs):
    places = {"out": tree["tmp"] / "flags.csv", "clean_manifest": tree["tmp"] / "clean.csv",
              "decisions": tree["decisions"], **outputs}
    return ["clean", tree["manifest"], "--out", places["out"], "--clean-manifest", places["clean_manifest"],
            "--decisions", places["decisions"]]


def first_sha(tree) -> str:
    return scan.read_manifest(tree["manifest"]).query("status == 'ok'")["sha256"].iloc[0]


# 1. The decisions file, edited by hand ------------------------------------------------------------------------


@pytest.mark.parametrize("row, words", [
    ("{sha},keep,,looks fine, keep it", ["line 2", "5 cells where the header has 4", "double quotes"]),
    ("{sha},keep,,note,,", ["line 2", "6 cells"]),
    ('{sha},keep,,"unclosed', ["line 2"]),
    ('{sha},keep,,"quoted"tail', ["line 2", "not valid CSV"]),
])
def test_a_malformed_decisions_row_is_one_line_naming_it_and_nothing_is_written(tree, capsys, row, words):
    tree["decisions"].write_text("sha256,decision,label,note\n" + row.format(sha=first_sha(tree)) + "\n")
    before = tree["decisions"].read_bytes()
    status, _, err = run(capsys, *clean_args(tree))
    assert_one_line(status, err, *words)
    assert tree["decisions"].read_bytes() == before
    assert not (tree["tmp"] / "flags.csv").exists() and not (tree["tmp"] / "clean.csv").exists()


def test_extra_columns_values_and_order_of_decisions_stay_as_a_person_wrote_them(tree, capsys):
    sha = first_sha(tree)
    text = ("sha256,decision,note,reviewer,date,label\r\n"
            f"{sha},KEEP ,\"looks fine, keep it\",ann,2026-01-02,\r\n"
            f"{'0' * 64},drop,another dataset,bob,2026-01-03,\r\n")
    tree["decisions"].write_bytes(text.encode())
    status, out, err = run(capsys, *clean_args(tree))
    assert status == 0, err
    after = tree["decisions"].read_bytes()
    assert after.startswith(text.encode())  # every byte of every existing row, CRLF included
    appended = after[len(text.encode()):].decode()
    assert appended.count("\r\n") == 1 and appended.endswith("\r\n")  # the review row, in the file's own endings
    cells = next(csv.reader([appended.strip()]))
    assert len(cells) == 6 and cells[1] == "" and cells[2].startswith("pending cross_class_duplicate")
    reread = review.read_decisions(tree["decisions"], scan.read_manifest(tree["manifest"]))
    assert reread.set_index("sha256").at[sha, "decision"] == "keep"  # read as meant, never rewritten
    assert "1 row(s)" in err and err.count("warning:") == 1  # the other dataset's row: inactive, one line


# 2. Ctrl-C ---------------------------------------------------------------------------------------------------


def _slow_square(value):
    time.sleep(0.05)
    return value * value


def test_the_worker_pool_ends_its_workers_when_the_parent_is_interrupted():
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = workers.ordered_map(_slow_square, range(400), 2, context, chunksize=4)
    assert next(results) == 0
    children = multiprocessing.active_children()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt)
    assert time.perf_counter() - started < 10
    assert not any(child.is_alive() for child in children)


def test_ctrl_c_during_a_pooled_scan_ends_with_one_line_and_no_process_left(tmp_path, drawn):
    """Ctrl-C reaches the whole process group; each run ends (no worker holds the pipes) within seconds."""
    images = tmp_path / "many"
    for copy in range(9):  # 9 x 24 files: over the pool threshold
        for path in drawn.rglob("*.*"):
            target = images / path.parent.name / f"{copy}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for delay in (0.3, 0.6, 0.9, 1.2):
        process = subprocess.Popen([sys.executable, "-m", "heroes", "scan", images, "--out", tmp_path / "m.csv"],
                                   cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        time.sleep(delay)
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        out, err = process.communicate(timeout=60)  # EOF on both pipes: no worker still holds them
        assert "Traceback" not in err.decode(), err.decode()
        assert process.returncode in (0, 130, -signal.SIGINT), err.decode()
        if process.returncode == 130:
            assert err.decode().strip() == "interrupted"
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # nothing left in the group


def test_an_interrupt_that_breaks_an_import_is_still_one_line(monkeypatch, capsys):
    def handler(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise ImportError("cannot import name 'x' from partially initialized module 'y'") from None

    monkeypatch.setattr(cli, "_bench", handler)
    # A job started in the background inherits SIGINT ignored, and main() rightly keeps it so: give this test
    # Python's usual Ctrl-C, whatever shell started the suite.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status, _, err = run(capsys, "bench")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (status, err.strip()) == (130, "interrupted")


def test_an_interrupt_while_the_command_line_imports_is_one_line():
    code = textwrap.dedent("""
        import builtins, runpy
        real = builtins.__import__
        def interrupted(name, *args, **kwargs):
            if name == "heroes.cli":
                raise KeyboardInterrupt
            return real(name, *args, **kwargs)
        builtins.__import__ = interrupted
        runpy.run_module("heroes", run_name="__main__")
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr.strip()) == (130, "interrupted")


# 3. Output paths ---------------------------------------------------------------------------------------------


def test_an_input_is_never_overwritten(tree, capsys):
    before = tree["manifest"].read_bytes()
    for argv in (clean_args(tree, out=tree["manifest"]), clean_args(tree, clean_manifest=tree["manifest"]),
                 clean_args(tree, out=tree["tmp"] / "same.csv", clean_manifest=tree["tmp"] / "same.csv"),
                 ["split", tree["manifest"], "--out", tree["manifest"]]):
        assert_one_line(*run(capsys, *argv)[::2], "would overwrite")
    assert tree["manifest"].read_bytes() == before


def test_nothing_is_written_inside_the_dataset_folder(tree, capsys):
    inside = tree["images"] / "batman" / "out.csv"
    for argv in (clean_args(tree, out=inside), clean_args(tree, clean_manifest=inside),
                 clean_args(tree, decisions=inside), ["split", tree["manifest"], "--out", inside],
                 ["scan", tree["images"], "--out", inside]):
        assert_one_line(*run(capsys, *argv)[::2], "inside the dataset folder")
    assert not inside.exists()


def test_an_existing_folder_as_output_is_one_line(tree, capsys):
    folder = tree["tmp"] / "folder"
    folder.mkdir()
    for argv in (["scan", tree["images"], "--out", folder], ["split", tree["manifest"], "--out", folder],
                 clean_args(tree, out=folder), ["synth", "--out", tree["tmp"] / "new", "--truth", folder]):
        assert_one_line(*run(capsys, *argv)[::2], "it is a folder")


def test_clean_checks_every_output_before_writing_any(tree, capsys):
    folder = tree["tmp"] / "folder"
    folder.mkdir()
    assert_one_line(*run(capsys, *clean_args(tree, clean_manifest=folder))[::2], "it is a folder")
    assert not (tree["tmp"] / "flags.csv").exists() and not tree["decisions"].exists()


def test_an_unwritable_or_impossible_place_is_one_line_before_the_work(tree, capsys, monkeypatch):
    (tree["tmp"] / "plain").write_text("a file")
    assert_one_line(*run(capsys, "scan", tree["images"], "--out", tree["tmp"] / "plain" / "m.csv")[::2],
                    "is not a folder")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("locked") else
                        real_access(path, mode))
    (tree["tmp"] / "locked").mkdir()
    scanned = []
    monkeypatch.setattr(scan, "scan", lambda *args, **kwargs: scanned.append(args))
    assert_one_line(*run(capsys, "scan", tree["images"], "--out", tree["tmp"] / "locked" / "m.csv")[::2],
                    "no permission to write in")
    assert not scanned  # refused before the scan, not after it
    with pytest.raises(UserError, match="not a regular file"):
        check_output_path("/dev/null")


def test_a_legal_long_output_name_is_written(tmp_path):
    name = "m" * 240 + ".csv"  # 244 characters: legal, and the temporary name beside it must be too
    written = write_csv(pandas.DataFrame({"a": [1]}), tmp_path / name)
    assert written.read_text() == "a\n1\n" and os.listdir(tmp_path) == [name]
    with pytest.raises(UserError, match="longer than the 255 bytes"):
        check_output_path(tmp_path / ("m" * 256))


# 4. Memory ---------------------------------------------------------------------------------------------------


def peak_rss_mib(code: str) -> float:
    """Peak resident memory of a fresh interpreter running ``code`` (imports included)."""
    probe = code + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1]) / 1024


def test_a_tiny_file_declaring_49_megapixels_is_refused_before_any_allocation(tmp_path):
    path = tmp_path / "tall.png"
    path.write_bytes(png_claiming(1, 49_000_000))
    with pytest.raises(decode.DecodeError, match="cannot fit in"):
        decode.decode_image(path)
    baseline = peak_rss_mib("import heroes.data.decode")
    peak = peak_rss_mib(f"from heroes.data import decode\ntry: decode.decode_image({str(path)!r})\n"
                        f"except decode.DecodeError: pass")
    assert peak - baseline < 50


def test_decoding_stays_under_its_memory_budget(tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("L", (3000, 3000), 90).save(wide)
    big_jpeg = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 3000), (10, 200, 30)).save(big_jpeg, quality=90)
    budget = decode.decode_bytes((3000, 3000), "RGB") // 3
    with pytest.raises(decode.DecodeError, match="over the .* MiB memory budget"):
        decode.decode_image(wide, max_bytes=budget)
    drafted = decode.decode_image(big_jpeg, max_bytes=budget)  # JPEG: decoded at a smaller DCT scale instead
    assert drafted.size in {(1500, 1500), (750, 750), (375, 375)}
    assert drafted.info["full_size"] == (3000, 3000)
    assert decode.inspect_image(big_jpeg) == {"width": 3000, "height": 3000, "format": "JPEG", "mode": "RGB"}
    one_pixel_wide = decode.image_bytes((1, 49_000_000), "RGB")
    assert one_pixel_wide > 49_000_000 * 8  # the row pointers, which a pixel count does not see
    assert decode.decode_bytes((1, 49_000_000), "RGB") > decode.DEFAULT_MAX_BYTES


def test_synth_refuses_a_size_that_does_not_fit_before_drawing(tmp_path, capsys):
    assert_one_line(*run(capsys, "synth", "--out", tmp_path / "huge", "--image-size", 40000)[::2], "memory budget")
    assert not (tmp_path / "huge").exists()


# 5. Broken pipe ----------------------------------------------------------------------------------------------


def test_a_reader_that_goes_away_ends_scan_quietly(tree):
    process = subprocess.Popen([sys.executable, "-m", "heroes", "scan", tree["images"], "--out",
                                tree["tmp"] / "again.csv"], cwd=PROJECT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # `| head -0`: gone before the first line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141 and err == "", err
    assert (tree["tmp"] / "again.csv").is_file()  # the work itself was done and written


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A square-RGB-input classifier small enough to save and load in a second or two."""
    import keras

    from heroes.models import saving

    folder = tmp_path_factory.mktemp("tiny")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    return saving.save_model(keras.Model(inputs, outputs), folder / "model.keras", ["Batman", "Not a hero"])


def test_a_reader_that_goes_away_ends_predict_quietly(tiny_model, tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(image)
    process = subprocess.Popen([sys.executable, "-m", "heroes", "predict", *[str(image)] * 400, "--model",
                                tiny_model, "--batch-size", "1"], cwd=PROJECT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.readline()
    process.stdout.close()  # `| head -2`
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


# 6. class_names.json -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ['{"class_names": [1, 2]}', "null", '{"class_names": null}', '"ab"',
                                     '{"class_names": "ab"}', '{"class_names": [{"a": 1}, {"b": 2}]}',
                                     '{"class_names": ["a", "a"]}', "{not json", "[]"])
def test_bad_class_names_beside_a_model_are_one_line(tiny_model, tmp_path, capsys, content):
    model = tmp_path / "model.keras"
    shutil.copyfile(tiny_model, model)
    (tmp_path / "model.class_names.json").write_text(content)
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert_one_line(*run(capsys, "predict", image, "--model", model)[::2], "class")
    assert_one_line(*run(capsys, "export", "--model", model, "--out", tmp_path / "exported")[::2], "class")
    assert not (tmp_path / "exported").exists()


# 7. Numbers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "-1", "2.5", "x"])
def test_a_split_size_that_is_not_a_count_or_fraction_is_exit_2(tree, capsys, value):
    with pytest.raises(SystemExit) as exited:
        cli.main(["split", str(tree["manifest"]), "--out", str(tree["tmp"] / "s.csv"), "--train", value])
    assert exited.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_usable_rows_without_a_sha256_are_refused(tree, capsys):
    frame = pandas.read_csv(tree["manifest"], dtype=str, keep_default_na=False)
    frame.loc[frame["status"] == "ok", "sha256"] = ""
    frame.to_csv(tree["tmp"] / "unhashed.csv", index=False)
    status, _, err = run(capsys, "split", tree["tmp"] / "unhashed.csv", "--out", tree["tmp"] / "s.csv")
    assert_one_line(status, err, "sha256", "re-run the scan")


def test_leakage_refuses_an_unknown_split_and_a_negative_threshold(tree, capsys):
    splits_path = tree["tmp"] / "splits.csv"
    assert run(capsys, "split", tree["manifest"], "--out", splits_path, "--train", 2, "--val", 1, "--test", 1)[0] == 0
    splits = pandas.read_csv(splits_path, dtype=str, keep_default_na=False)
    splits.loc[splits["split"] == "train", "split"] = "TRAIN"
    splits.to_csv(tree["tmp"] / "shouting.csv", index=False)
    assert_one_line(*run(capsys, "leakage", tree["tmp"] / "shouting.csv")[::2], "unknown split 'TRAIN'")
    for threshold in ("-5", "100000"):
        assert_one_line(*run(capsys, "leakage", splits_path, "--threshold", threshold)[::2], "threshold")
        assert_one_line(*run(capsys, *clean_args(tree), "--threshold", threshold)[::2], "threshold")


# 8. Spreadsheet formulas -------------------------------------------------------------------------------------


def test_formula_like_class_names_stay_exact_for_the_pipeline_and_inert_for_people(drawn, tmp_path, capsys):
    images = tmp_path / "images"
    for name, source in zip(FORMULA_CLASSES, ("batman", "superman")):
        shutil.copytree(drawn / source, images / name)
    shutil.copy(images / FORMULA_CLASSES[0] / sorted(os.listdir(images / FORMULA_CLASSES[0]))[0],
                images / FORMULA_CLASSES[1] / "copied.png")  # a cross-class copy: a review row and a flag row
    manifest, splits_path = tmp_path / "manifest.csv", tmp_path / "splits.csv"
    assert run(capsys, "scan", images, "--out", manifest)[0] == 0
    assert set(scan.read_manifest(manifest)["label"]) == set(FORMULA_CLASSES)  # exact: the pipeline reads it
    assert run(capsys, "split", manifest, "--out", splits_path, "--train", 0.5, "--val", 0.2, "--test", 0.2)[0] == 0
    assert set(pandas.read_csv(splits_path)["label"]) == set(FORMULA_CLASSES)
    decisions = tmp_path / "decisions.csv"
    assert run(capsys, "clean", manifest, "--out", tmp_path / "flags.csv", "--clean-manifest",
               tmp_path / "clean.csv", "--decisions", decisions)[0] == 0
    flags = pandas.read_csv(tmp_path / "flags.csv", dtype=str, keep_default_na=False)
    assert flags["label"].str.startswith("'").all()  # inert in a spreadsheet
    assert {from_spreadsheet(label) for label in flags["label"]} <= set(FORMULA_CLASSES)
    # A person settles the review with a relabel typed as a spreadsheet keeps it: the quote is read away.
    sha = pandas.read_csv(decisions, dtype=str)["sha256"].iloc[0]
    decisions.write_text(f"sha256,decision,label,note\n{sha},relabel,'{FORMULA_CLASSES[1]},mine\n")
    assert run(capsys, "clean", manifest, "--out", tmp_path / "flags.csv", "--clean-manifest",
               tmp_path / "clean.csv", "--decisions", decisions)[0] == 0
    cleaned = scan.read_manifest(tmp_path / "clean.csv")
    assert cleaned.loc[cleaned["sha256"] == sha, "label"].tolist() == [FORMULA_CLASSES[1]]


def test_spreadsheet_quoting_round_trips():
    for value in ("=1+1", "+SUM(1)", "-2", "@A1", "\tx", "\rx", "plain", "'quoted", "", "a=b"):
        assert from_spreadsheet(spreadsheet_safe(value)) == value
    assert spreadsheet_safe("=1+1") == "'=1+1" and spreadsheet_safe("plain") == "plain"
    assert spreadsheet_safe(-3) == -3  # numbers stay numbers


# 9. Smaller ones ---------------------------------------------------------------------------------------------


def test_a_fifo_is_not_an_empty_file_anywhere(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(decode.DecodeError, match="^not a regular file$"):
        decode.decode_image(fifo)  # and it does not block
    assert predict.collect_inputs([fifo]) == [(str(fifo), "not a regular file")]


def test_a_symlink_loop_reads_the_same_in_scan_and_predict(tmp_path):
    root = tmp_path / "raw"
    (root / "batman").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "batman" / "ok.png")
    os.symlink(root / "batman" / "loop.png", root / "batman" / "loop.png")
    rows = scan.scan(root, progress=False).set_index("relpath")
    assert rows.at["batman/loop.png", "reason"] == "symlink loop"
    assert predict.collect_inputs([root / "batman" / "loop.png"])[0][1] == "symlink loop"
    with pytest.raises(decode.DecodeError, match="^symlink loop$"):
        decode.decode_image(root / "batman" / "loop.png")


def test_a_newline_in_a_file_name_stays_on_its_row():
    row = predict.table_row(predict.Prediction("a\nb\udcff.png", "rejected", "not found"), 10, 12)
    assert "\n" not in row and row.startswith("a\\nb\\udcff.png")


def test_a_corrupt_jpeg_claiming_49_megapixels_is_rejected(tmp_path):
    path = tmp_path / "claims.jpg"
    path.write_bytes(jpeg_claiming(7000, 7000))
    with pytest.raises(decode.DecodeError, match="corrupt image data: 7000x7000 pixels cannot fit"):
        decode.inspect_image(path)


def test_an_export_that_replaces_another_never_leaves_none_and_has_its_class_names(tmp_path):
    workspace, out = tmp_path / "workspace", tmp_path / "model_savedmodel"
    workspace.mkdir()
    (out / "variables").mkdir(parents=True)
    (out / "saved_model.pb").write_text("old")
    new = workspace / "new"
    new.mkdir()
    (new / "saved_model.pb").write_text("new")
    (new / export.CLASS_NAMES).write_text("[]")  # written before the move, so the move brings it
    export._publish(new, out, workspace)
    assert (out / "saved_model.pb").read_text() == "new" and (out / export.CLASS_NAMES).exists()
    assert not (out / "variables").exists()
    broken = workspace / "missing"  # a move that fails puts the earlier export back
    with pytest.raises(UserError):
        export._publish(broken, out, workspace)
    assert (out / "saved_model.pb").read_text() == "new"


def test_export_writes_the_class_names_inside_before_publishing(tiny_model, tmp_path):
    out = export.export_model(tiny_model, "savedmodel", tmp_path / "served")
    assert (out / export.CLASS_NAMES).is_file() and (out / "saved_model.pb").is_file()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".export.")]
    before = tiny_model.read_bytes()
    with pytest.raises(UserError):
        export.export_model(tiny_model, "savedmodel", tiny_model)
    assert tiny_model.read_bytes() == before


# Issue 13.6: paths relative to the manifest, never to the working directory -----------------------------------


def test_scan_in_one_folder_and_clean_from_another_keep_every_image(drawn, tmp_path):
    work, elsewhere = tmp_path / "T", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    shutil.copytree(drawn, tmp_path / "syn")
    assert run_module("scan", "../syn", "--out", "ms.csv", cwd=work).returncode == 0
    assert pandas.read_csv(work / "ms.csv")["path"].str.startswith(str(tmp_path / "syn")).all()  # absolute
    result = run_module("clean", work / "ms.csv", "--out", "f.csv", "--clean-manifest", "c.csv", "--decisions",
                        "d.csv", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    cleaned = scan.read_manifest(elsewhere / "c.csv")
    assert len(cleaned) >= 20 and cleaned["path"].map(os.path.isfile).all()
    relative = pandas.read_csv(work / "ms.csv", dtype=str, keep_default_na=False)  # a hand-made manifest
    relative["path"] = "../syn/" + relative["relpath"]
    relative.to_csv(work / "relative.csv", index=False)
    assert scan.read_manifest(work / "relative.csv")["path"].tolist() == scan.read_manifest(work / "ms.csv")[
        "path"].tolist()  # relative paths are read from the manifest's folder, wherever the reader runs


def test_a_clean_that_would_drop_every_image_writes_nothing(tree, capsys):
    shutil.rmtree(tree["images"])
    status, _, err = run(capsys, *clean_args(tree))
    assert_one_line(status, err, "would drop every image")
    assert not (tree["tmp"] / "flags.csv").exists() and not (tree["tmp"] / "clean.csv").exists()


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.csv") as temporary:
        temporary.write_text("half")
        raise RuntimeError
    assert os.listdir(tmp_path) == []

