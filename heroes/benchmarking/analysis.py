"""What the rows mean: ratios naive/cached, the ideal ratio, the headline per backbone, the targets, the notes."""

from heroes.benchmarking.settings import TARGET_ACCURACY_POINTS, TARGET_CEILING_FRACTION, TARGET_SPEEDUP, TARGET_SUFFIX


def ratio(numerator, denominator):
    """numerator / denominator to 2 decimals, or None where either is missing or zero."""
    return round(numerator / denominator, 2) if numerator and denominator else None


def analyse(rows: dict, settings, counts: dict, probe: dict, ceilings: dict) -> dict:
    """Ratios naive/cached, the ideal ratio from counting frozen-stack passes, and what limits the 15x target."""
    naive, float32, bf16 = rows["naive"], rows["cached float32"], rows["cached bfloat16"]
    passes_naive = settings.epochs * (counts["train"] + counts["val"]) + counts["test"]
    passes_cached = counts["train"] + counts["val"] + counts["test"]
    target_wall = naive["wall_s"] / TARGET_SPEEDUP
    rest = bf16["wall_s"] - bf16["extract_s"]  # model build, suffix training, test pass, writing the run
    needed = bf16["extract_s"] / (target_wall - rest) if target_wall > rest else None
    # Contention moves wall times; CPU seconds move less. The naive CPU time of the extrapolated run is estimated
    # as its timed phase's CPU/wall times the extrapolated wall time.
    naive_cpu = naive["resources"]["cpu_per_wall"] * naive["wall_s"] if naive["extrapolated"] \
        else naive["resources"]["cpu_s"]
    fp32_ceiling, bf16_ceiling = ceilings["float32"], ceilings["bfloat16"]
    gflop = probe["gflop_per_image"]
    accuracy_gap = (None if naive["test_accuracy"] is None
                    else round(100 * abs(bf16["test_accuracy"] - naive["test_accuracy"]), 1))
    return {
        "speedup_cached_float32": ratio(naive["wall_s"], float32["wall_s"]),
        "speedup_cached_bfloat16": ratio(naive["wall_s"], bf16["wall_s"]),
        "epoch_ratio_naive_over_cached_float32": ratio(naive["seconds_per_epoch"], float32["seconds_per_epoch"]),
        "speedup_cpu_seconds_float32": ratio(naive_cpu, float32["resources"]["cpu_s"]),
        "speedup_cpu_seconds_bfloat16": ratio(naive_cpu, bf16["resources"]["cpu_s"]),
        "bound_with_free_extraction_bfloat16": ratio(naive["wall_s"], rest),
        # the suffix trained at no cost: what extraction, the test pass and bookkeeping alone allow
        "bound_with_free_training_bfloat16": ratio(naive["wall_s"], bf16["wall_s"] - bf16["train_s"]),
        "extraction_bf16_over_float32": ratio(bf16["extract_images_per_s"], float32["extract_images_per_s"]),
        "probe_bf16_over_float32": ratio(probe["bfloat16"]["images_per_s"], probe["float32"]["images_per_s"]),
        "probe_bf16_over_float32_per_cpu_s": ratio(probe["bfloat16"]["gflop_per_cpu_s"],
                                                    probe["float32"]["gflop_per_cpu_s"]),
        "ideal_ratio_frozen_stack_passes": round(passes_naive / passes_cached, 2),
        "frozen_stack_passes": {"naive": passes_naive, "cached": passes_cached},
        "cached_bfloat16_breakdown_s": {"extraction": bf16["extract_s"], "training": bf16["train_s"],
                                        "other": round(bf16["wall_s"] - bf16["extract_s"] - bf16["train_s"], 1)},
        "target_wall_s_for_15x": round(target_wall, 1),
        "extraction_speedup_needed_for_15x": None if needed is None else round(needed, 2),
        "target_15x_reachable_by_faster_extraction_alone": needed is not None,
        "accuracy_gap_points_bf16_vs_naive": accuracy_gap,
        "extraction_gflops_in_run": {
            "float32": round(gflop * float32["extract_images_per_s"], 2),
            "bfloat16": round(gflop * bf16["extract_images_per_s"], 2)},
        "fraction_of_ceiling": {
            "float32_run_wall": ratio(gflop * float32["extract_images_per_s"], fp32_ceiling["gflops"]),
            "bfloat16_run_wall": ratio(gflop * bf16["extract_images_per_s"], bf16_ceiling["gflops"]),
            "float32_probe_wall": ratio(probe["float32"]["gflops"], fp32_ceiling["gflops"]),
            "bfloat16_probe_wall": ratio(probe["bfloat16"]["gflops"], bf16_ceiling["gflops"]),
            "float32_probe_per_cpu_s": ratio(probe["float32"]["gflop_per_cpu_s"], fp32_ceiling["gflop_per_cpu_s"]),
            "bfloat16_probe_per_cpu_s": ratio(probe["bfloat16"]["gflop_per_cpu_s"], bf16_ceiling["gflop_per_cpu_s"]),
        },
    }


def notes(settings) -> list:
    """Sentences the JSON carries beside the numbers: how naive was run, what the cached rows are, the caveats."""
    everything = settings.naive_epochs >= settings.epochs and not settings.naive_batches
    measured = [name for name in settings.backbones if everything or name in settings.measured_naive]
    timed = [name for name in settings.backbones if name not in measured]
    naive = "naive: " + "; ".join(
        ([f"{', '.join(measured)}: every epoch really trained and measured, with test accuracy"] if measured else [])
        + ([f"{', '.join(timed)}: timed {settings.naive_epochs} epoch(s)"
            + (f" of {settings.naive_batches} training batches" if settings.naive_batches else "")
            + f" and EXTRAPOLATED to {settings.epochs} epochs; test accuracy not measured"] if timed else []))
    return [
        naive,
        "cached rows: one heroes.training.train.train_run each, feature cache in a fresh temporary folder per row "
        "(nothing reused; a bf16 row also extracts float32 test features: the float32 model is what it scores)",
        "weights=None (random): same FLOPs as ImageNet weights; accuracies are on the synthetic data set",
        "shared machine: wall times depend on the other processes; CPU seconds and the 1-minute load average are "
        "recorded beside every wall time",
        "peak RSS is sampled every %.2f s per phase (short spikes can be missed)" % settings.sample_seconds,
        "FLOPs: 2 x multiply-adds of the prefix's Conv2D/Dense layers, counted from their shapes",
    ]


def headline(entry: dict, bf16_native: bool) -> dict:
    """naive vs the cached path this machine runs by default (bf16 features where native, else float32)."""
    rows = entry["rows"]
    name = "cached bfloat16" if bf16_native else "cached float32"
    naive, cached_row = rows["naive"], rows[name]
    keep = ("wall_s", "seconds_per_epoch", "test_accuracy", "test_n")
    return {
        "naive": {key: naive[key] for key in keep} | {"extrapolated": naive["extrapolated"]},
        "cached": {key: cached_row[key] for key in keep} | {
            "row": name, "feature_dtype": cached_row["feature_dtype"], "suffix_path": cached_row["suffix_path"],
            "suffix_precision": cached_row["suffix_precision"], "steps_s": cached_row["steps_s"]},
        "speedup": ratio(naive["wall_s"], cached_row["wall_s"]),
        "bf16_effect": _bf16_effect(rows["cached float32"], rows["cached bfloat16"]),
    }


def _bf16_effect(float32: dict, bf16: dict) -> dict:
    """Test accuracy with float32 features and suffix against bf16 features and ``auto`` suffix precision."""
    first, second = float32["test_accuracy"], bf16["test_accuracy"]
    return {"float32_test_accuracy": first, "bfloat16_test_accuracy": second,
            "bfloat16_suffix_precision": bf16["suffix_precision"],
            "points": None if first is None or second is None else round(100 * (second - first), 1),
            "wall_s": {"float32": float32["wall_s"], "bfloat16": bf16["wall_s"]}}


def targets(result: dict) -> dict:
    """The issue's targets, for VGG16 when it was measured, and the span path's 4x per suffix epoch."""
    checked = {}
    suffix = result.get("suffix")
    if suffix:
        speed = suffix["speedup_per_epoch"]
        checked["suffix_span_4x_per_epoch"] = {"measured": speed, "met": bool(speed and speed >= TARGET_SUFFIX)}
    entry = next((item for item in result["backbones"] if item["backbone"] == "vgg16"), None)
    if entry is None:
        return checked
    analysis = entry["analysis"]
    speedup = result["vgg16"]["speedup"]
    fraction = analysis["fraction_of_ceiling"]["bfloat16_run_wall"]
    gap = analysis["accuracy_gap_points_bf16_vs_naive"]
    return checked | {
        "speedup_15x": {"measured": speedup, "met": bool(speedup and speedup >= TARGET_SPEEDUP),
                        "cached_row": result["vgg16"]["cached"]["row"]},
        "accuracy_within_2_points": {"measured_gap": gap,
                                     "met": None if gap is None else gap <= TARGET_ACCURACY_POINTS},
        "extraction_half_of_bf16_ceiling": {"measured": fraction,
                                            "met": bool(fraction and fraction >= TARGET_CEILING_FRACTION)},
    }
