"""The training benchmark runs at tiny sizes and produces every field (timings are never asserted)."""

import dataclasses
import json

import pytest

from heroes import cli
from heroes.benchmarking import command, measure, report
from heroes.benchmarking.settings import QUICK

ROW_FIELDS = ("path", "extrapolated", "extract_images_per_s", "seconds_per_epoch", "wall_s", "train_s",
              "test_accuracy", "test_n", "loss_epoch1", "val_loss_epoch1", "val_accuracy_epoch1", "resources")
RESOURCE_FIELDS = ("wall_s", "cpu_s", "cpu_per_wall", "rss_start_mib", "peak_rss_mib", "load_1min_start",
                   "load_1min_mean", "load_1min_max")
ANALYSIS_FIELDS = ("speedup_cached_float32", "speedup_cached_bfloat16", "epoch_ratio_naive_over_cached_float32",
                   "extraction_bf16_over_float32", "ideal_ratio_frozen_stack_passes", "cached_bfloat16_breakdown_s",
                   "target_wall_s_for_15x", "extraction_speedup_needed_for_15x", "extraction_gflops_in_run",
                   "fraction_of_ceiling", "speedup_cpu_seconds_float32", "speedup_cpu_seconds_bfloat16",
                   "bound_with_free_extraction_bfloat16", "probe_bf16_over_float32_per_cpu_s")


def tiny(**changes):
    return dataclasses.replace(QUICK, image_size=32, train=2, val=1, test=1, epochs=2, matmul_sizes=(64,),
                               matmul_reps=1, probe_images=2, batch_size=4, suffix_rows=8, suffix_val=4,
                               suffix_epochs=2, suffix_image_size=32, **changes)


def check_headline(written, backbones):
    """The keys the issue names: naive and cached wall times and their ratio, the suffix paths, native bf16."""
    assert isinstance(written["bf16_native"], bool)
    for name in backbones:
        summary = written[name]
        assert summary["naive"]["wall_s"] > 0 and summary["cached"]["wall_s"] > 0 and summary["speedup"] > 0
        assert summary["cached"]["row"] == ("cached bfloat16" if written["bf16_native"] else "cached float32")
    suffix = written["suffix"]
    assert suffix["direct_s_per_epoch"] > 0 and suffix["span_s_per_epoch"] > 0
    assert (suffix["direct"]["path"], suffix["span"]["path"]) == ("direct", "span")
    assert 0 <= suffix["max_probability_difference"] < 1e-4  # same model on both paths


def check_rows(entry):
    assert set(entry["rows"]) == {"naive", "cached float32", "cached bfloat16"}
    for row in entry["rows"].values():
        for name in ROW_FIELDS:
            assert name in row, name
        for name in RESOURCE_FIELDS:
            assert row["resources"][name] is not None, name
        assert row["seconds_per_epoch"] > 0 and row["wall_s"] > 0
    for dtype in ("float32", "bfloat16"):
        assert entry["rows"][f"cached {dtype}"]["extract_images_per_s"] > 0
        assert entry["rows"][f"cached {dtype}"]["test_accuracy"] is not None
    assert entry["probe"]["flops_per_image"] > 0
    for name in ANALYSIS_FIELDS:
        assert name in entry["analysis"], name
    analysis = entry["analysis"]  # free training can only raise the ratio
    assert analysis["bound_with_free_training_bfloat16"] > analysis["speedup_cached_bfloat16"]


def test_extrapolated_naive_rows_report_every_field_and_no_invented_accuracy(tmp_path):
    out = tmp_path / "bench.json"
    result = measure.run_benchmark(tiny(naive_epochs=1, measured_naive=()), out=out, verbose=False)
    written = json.loads(out.read_text())
    assert [entry["backbone"] for entry in written["backbones"]] == ["vgg16", "resnet50"]
    check_headline(written, ("vgg16", "resnet50"))
    vgg_rows = written["backbones"][0]["rows"]
    assert vgg_rows["cached float32"]["suffix_path"] == "span"  # 12 training rows < fc1's 512 inputs
    assert {"build_model", "extract_features", "fit", "materialise", "test_predictions", "write_run"} \
        <= set(vgg_rows["cached float32"]["steps_s"])
    for entry in written["backbones"]:
        check_rows(entry)
        naive = entry["rows"]["naive"]
        assert naive["extrapolated"] and naive["test_accuracy"] is None and "extrapolation" in naive
    for dtype in ("float32", "bfloat16"):
        assert written["ceiling"]["best"][dtype]["gflops"] > 0
    assert written["machine"]["cpu_flags"] and written["load_1min"]["samples"] > 0 and written["targets"]
    table = report.markdown(result)
    assert "not measured" in table and "extrapolated" in table and table.count("| vgg16 |") >= 4


def test_fully_trained_naive_row_reports_its_accuracy(tmp_path):
    settings = tiny(naive_epochs=1, backbones=("vgg16",), measured_naive=("vgg16",))
    result = measure.run_benchmark(settings, out=None, verbose=False)
    (entry,) = result["backbones"]
    check_headline(result, ("vgg16",))
    assert result["vgg16"]["naive"]["test_accuracy"] is not None and not result["vgg16"]["naive"]["extrapolated"]
    check_rows(entry)
    naive, float32 = entry["rows"]["naive"], entry["rows"]["cached float32"]
    assert not naive["extrapolated"] and naive["test_accuracy"] is not None
    # Same seed, same batches, same model: the first epoch agrees between the two paths.
    for name in ("loss_epoch1", "val_loss_epoch1", "val_accuracy_epoch1"):
        assert naive[name] == pytest.approx(float32[name], rel=1e-4), name
    assert entry["analysis"]["accuracy_gap_points_bf16_vs_naive"] is not None


def test_suffix_only_comparison_runs_alone(tmp_path):
    out = tmp_path / "suffix.json"
    settings = command.parse_args(["--quick", "--suffix-only", "--suffix-rows", "8", "--suffix-size", "32"])[0]
    assert settings.backbones == () and settings.suffix_rows == 8
    result = measure.run_benchmark(dataclasses.replace(settings, matmul_sizes=(64,), matmul_reps=1), out=out,
                                     verbose=False)
    assert json.loads(out.read_text())["suffix"]["rows"] == 8 and result["backbones"] == []
    assert "VGG16's suffix alone (8 x 512" in report.markdown(result)


def test_bench_command_rejects_a_folder_as_out(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    assert "folder" in capsys.readouterr().err


def test_the_machine_record_keeps_the_keys_readers_of_latest_json_read():
    from heroes.benchmarking import probes

    record = probes.machine_record()
    for name in ("cpu", "cpu_family", "cpu_model_number", "logical_cores", "cpu_flags", "bf16_native", "gpus",
                 "memory_gib", "tensorflow", "keras", "python", "onednn", "tf_cpu_allocator_use_bfc", "malloc",
                 "intra_op_threads"):
        assert name in record, name
    assert isinstance(record["gpus"], int) and record["gpus"] == len(record["gpu_names"])


def test_the_script_entry_answers_bad_input_with_one_line_and_status_2(capsys):
    assert command.main(["--quick", "--counts", "1,2"]) == 2
    assert capsys.readouterr().err == "error: --counts takes three integers, train,val,test per class, not '1,2'\n"
