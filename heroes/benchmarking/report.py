"""The result dict as markdown, pure functions of it: headline, suffix sentence, row tables, steps, targets met."""


def _number(value, digits=1, unit=""):
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def _accuracy(row) -> str:
    if row["test_accuracy"] is None:
        return "not measured"
    return f"{100 * row['test_accuracy']:.1f}% (n={row['test_n']})"


def markdown(result: dict) -> str:
    """The tables: naive vs cached, VGG16's suffix direct vs span, one row per (backbone, path), the cached path's
    steps, the ceiling, and what limits the targets."""
    machine, load = result["machine"], result["load_1min"]
    lines = [
        f"### Training benchmark, {result['date']}: {machine['cpu']}, {machine['logical_cores']} cores, "
        f"{'AVX-512' if machine['cpu_flags']['avx512f'] else 'AVX2'}, "
        f"bf16 native: {'yes' if machine['bf16_native'] else 'no'}, {machine['gpus']} GPU. Machine shared: 1-min "
        f"load average {load['mean']:.1f} mean ({load['min']:.1f}–{load['max']:.1f}) on {machine['logical_cores']} "
        "cores during the run, so wall times are noisy; CPU seconds are beside them.", "",
    ]
    lines += _headline_lines(result) + _suffix_lines(result.get("suffix"))
    if result["backbones"]:
        lines += _backbone_tables(result) + _step_lines(result)
    return "\n".join(lines)


def _headline_lines(result: dict) -> list:
    entries = [(entry["backbone"], result[entry["backbone"]]) for entry in result["backbones"]]
    if not entries:
        return []
    lines = ["| backbone | naive wall s | naive test accuracy | cached path (default here) | cached wall s "
             "| cached test accuracy | naive / cached |", "|---|---:|---:|---|---:|---:|---:|"]
    for name, summary in entries:
        naive, cached_row = summary["naive"], summary["cached"]
        naive_wall = f"≈{naive['wall_s']:,.0f} (extrapolated)" if naive["extrapolated"] else f"{naive['wall_s']:,.0f}"
        lines.append(f"| {name} | {naive_wall} | {_accuracy(naive)} | {cached_row['feature_dtype']} features, "
                     f"{cached_row['suffix_path']} suffix, {cached_row['suffix_precision']} | "
                     f"{cached_row['wall_s']:,.1f} | {_accuracy(cached_row)} | {_number(summary['speedup'], 2, '×')} |")
    lines.append("")
    for name, summary in entries:
        effect = summary["bf16_effect"]
        lines.append(f"- {name}, bf16's effect: test accuracy {_percent(effect['float32_test_accuracy'])} with "
                     f"float32 features and suffix, {_percent(effect['bfloat16_test_accuracy'])} with bf16 features "
                     f"and a {effect['bfloat16_suffix_precision']} suffix ({_number(effect['points'], 1)} points; "
                     f"{effect['wall_s']['float32']:,.0f} s vs {effect['wall_s']['bfloat16']:,.0f} s).")
    return lines + [""]


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _suffix_lines(suffix) -> list:
    if not suffix:
        return []
    return [
        f"VGG16's suffix alone ({suffix['shape']}, batch {suffix['batch_size']}, {suffix['optimizer']}, "
        f"{suffix['epochs']} epochs, {suffix['features']} features): direct {suffix['direct_s_per_epoch']:.2f} s/epoch, "
        f"span {suffix['span_s_per_epoch']:.2f} s/epoch ({_number(suffix['speedup_per_epoch'], 2, '×')}; best epochs "
        f"{_number(suffix['speedup_best_epoch'], 2, '×')}; CPU seconds of the whole suffix training, setup included, "
        f"{_number(suffix['speedup_cpu_s_total'], 2, '×')}); max "
        f"difference span vs direct: validation probability {suffix['max_probability_difference']:.2g}, training loss "
        f"{suffix['max_loss_difference']:.2g}, fc1 weight {suffix['fc1_max_difference']:.2g}"
        + _reference_text(suffix["round_off_reference"])
        + f". Span setup (X·W0, X·Xᵀ, validation rows) {suffix['span']['steps_s']['suffix_inputs']:.1f} s, "
        f"materialising W0 + XᵀA {suffix['span']['steps_s']['materialise']:.1f} s.", ""]


def _reference_text(reference) -> str:
    if not reference:
        return ""
    return (f" (direct vs direct with XLA {'on' if reference['xla'] else 'off'}, float32 round-off alone: "
            f"probability {reference['max_probability_difference']:.2g}, loss {reference['max_loss_difference']:.2g}, "
            f"fc1 {reference['fc1_max_difference']:.2g})")


def _step_lines(result: dict) -> list:
    """Where each cached run's wall time went, step by step."""
    rows = [(entry["backbone"], name, row) for entry in result["backbones"] for name, row in entry["rows"].items()
            if "steps_s" in row]
    names = list(dict.fromkeys(step for _, _, row in rows for step in row["steps_s"]))
    lines = ["", "| cached run: seconds per step | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for backbone, name, row in rows:
        lines.append(f"| {backbone} {name} ({row['suffix_path']}, {row['suffix_precision']}) | "
                     + " | ".join(_number(row["steps_s"].get(step), 2) for step in names) + " |")
    return lines


def _backbone_tables(result: dict) -> list:
    """One row per (backbone, path), the ratios, the ceiling and what limits the targets."""
    settings, counts = result["settings"], result["data"]
    lines = [
        f"{len(counts['classes'])} classes, {settings['image_size']} px, {counts['train']}/{counts['val']}/"
        f"{counts['test']} train/val/test images, batch {settings['batch_size']}, {settings['epochs']} epochs, "
        f"study policy, weights=None, seed {settings['seed']}.",
        "",
        f"| backbone | path | extract img/s | s/epoch | {settings['epochs']}-epoch wall s | CPU s "
        "| RSS MiB start→peak³ | load | test accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in result["backbones"]:
        for name, row in entry["rows"].items():
            resources = row["resources"]
            extract = (f"{row['stack_images_per_s']:.2f}¹" if row["extract_images_per_s"] is None
                       else f"{row['extract_images_per_s']:.2f}")
            wall = f"≈{row['wall_s']:,.0f} (extrapolated²)" if row["extrapolated"] else f"{row['wall_s']:,.0f}"
            lines.append(
                f"| {entry['backbone']} | {name} | {extract} | {row['seconds_per_epoch']:,.1f} | {wall} | "
                f"{resources['cpu_s']:,.0f} | {resources['rss_start_mib']:,.0f}→{resources['peak_rss_mib']:,.0f} | "
                f"{resources['load_1min_mean']:.1f} | "
                f"{_accuracy(row)} |")
    lines += ["", "| backbone | naive / cached fp32 | naive / cached bf16 | same in CPU-s⁴ | ideal (stack passes) "
              "| bound, free extraction⁵ | bf16 / fp32 extraction | epoch-1 val loss · acc: naive, fp32, bf16 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in result["backbones"]:
        analysis, rows = entry["analysis"], entry["rows"]
        epoch1 = ", ".join(_epoch1_cell(rows[key]) for key in ("naive", "cached float32", "cached bfloat16"))
        lines.append(
            f"| {entry['backbone']} | {_number(analysis['speedup_cached_float32'], 2, '×')} | "
            f"{_number(analysis['speedup_cached_bfloat16'], 2, '×')} | "
            f"{_number(analysis['speedup_cpu_seconds_float32'], 2, '×')} · "
            f"{_number(analysis['speedup_cpu_seconds_bfloat16'], 2, '×')} | "
            f"{_number(analysis['ideal_ratio_frozen_stack_passes'], 1, '×')} | "
            f"{_number(analysis['bound_with_free_extraction_bfloat16'], 1, '×')} | "
            f"{_number(analysis['extraction_bf16_over_float32'], 2, '×')} | {epoch1} |")
    best = result["ceiling"]["best"]
    lines += ["", "| kernel | GFLOP/s (wall) | GFLOP per CPU-s | fraction of the same-dtype matmul ceiling |",
              "|---|---:|---:|---:|"]
    for dtype in ("float32", "bfloat16"):
        ceiling = best[dtype]
        lines.append(f"| matmul {ceiling['size']}² {dtype} (best size, before/after) | {ceiling['gflops']:.1f} | "
                     f"{_number(ceiling['gflop_per_cpu_s'])} | 1 |")
    for entry in result["backbones"]:
        probe, fraction = entry["probe"], entry["analysis"]["fraction_of_ceiling"]
        gflops = entry["analysis"]["extraction_gflops_in_run"]
        for dtype in ("float32", "bfloat16"):
            lines.append(
                f"| {entry['backbone']} prefix {dtype}, {probe['gflop_per_image']:.2f} GFLOP/img: probe · in run | "
                f"{probe[dtype]['gflops']:.1f} · {gflops[dtype]:.1f} | {probe[dtype]['gflop_per_cpu_s']:.1f} | "
                f"{_number(fraction[f'{dtype}_probe_wall'], 2)} (probe) · {_number(fraction[f'{dtype}_run_wall'], 2)} "
                f"(run) · {_number(fraction[f'{dtype}_probe_per_cpu_s'], 2)} (per CPU-s) |")
    lines += ["", "¹ naive has no extraction step: images/s through the frozen stack inside `fit` (train + val).",
              f"² {next(note for note in result['notes'] if note.startswith('naive'))}.",
              "³ process RSS (sampled): TensorFlow's BFC allocator keeps its pool, so each row starts from what the "
              "rows before it reserved.",
              "⁴ naive/cached in CPU seconds (fp32 · bf16), less sensitive to the shared machine; for an "
              "extrapolated naive run, its timed phase's CPU/wall × its extrapolated wall.",
              "⁵ naive wall / (cached bf16 wall − its extraction): the ratio if extraction cost nothing."]
    return lines + ["", *_limits(result)]


def _limits(result: dict) -> list:
    """Plain sentences: the targets, met or not, and what limits them, from the measurements."""
    lines = []
    for entry in result["backbones"]:
        analysis = entry["analysis"]
        breakdown = analysis["cached_bfloat16_breakdown_s"]
        needed = analysis["extraction_speedup_needed_for_15x"]
        lines.append(
            f"- {entry['backbone']}: naive/cached bf16 {_number(analysis['speedup_cached_bfloat16'], 2, '×')}; "
            f"counting frozen-stack passes alone caps caching at {analysis['ideal_ratio_frozen_stack_passes']:.1f}× "
            f"({analysis['frozen_stack_passes']['naive']:,} vs {analysis['frozen_stack_passes']['cached']:,} images); "
            f"cached bf16 spent {breakdown['extraction']:,.0f} s extracting, {breakdown['training']:,.0f} s training, "
            f"{breakdown['other']:,.0f} s on the rest; bf16 extraction ran "
            f"{_number(analysis['extraction_bf16_over_float32'], 2, '×')} float32's; with training free it would be "
            f"{_number(analysis.get('bound_with_free_training_bfloat16'), 2, '×')}. "
            + (f"15× needs extraction {needed:.1f}× faster." if needed else
               f"15× is out of reach even with free extraction: the rest alone "
               f"({breakdown['training'] + breakdown['other']:,.0f} s) exceeds naive/15 "
               f"({analysis['target_wall_s_for_15x']:,.0f} s); free extraction gives at most "
               f"{_number(analysis['bound_with_free_extraction_bfloat16'], 1, '×')}."))
    targets = result.get("targets") or {}
    if targets:
        lines.append(
            f"- Targets (VGG16): 15× end-to-end {'met' if targets['speedup_15x']['met'] else 'NOT met'} "
            f"({_number(targets['speedup_15x']['measured'], 2, '×')}); accuracy within 2 points: "
            + ("not measured (naive extrapolated)" if targets['accuracy_within_2_points']['met'] is None else
               f"{'met' if targets['accuracy_within_2_points']['met'] else 'NOT met'} "
               f"({targets['accuracy_within_2_points']['measured_gap']} points)")
            + f"; extraction ≥ 50% of the bf16 matmul ceiling: "
            f"{'met' if targets['extraction_half_of_bf16_ceiling']['met'] else 'NOT met'} "
            f"({_number(targets['extraction_half_of_bf16_ceiling']['measured'], 2)}).")
    if not result["machine"]["bf16_native"]:
        lines.append("- This CPU has no AVX-512-BF16/AMX (no bf16 arithmetic units): bf16 is widened to float32 for "
                     "the arithmetic, so it cannot speed extraction here; on hardware with bf16 matrix units it would.")
    over = [entry["backbone"] for entry in result["backbones"]
            if (entry["analysis"]["fraction_of_ceiling"]["float32_probe_wall"] or 0) > 1]
    if over:
        lines.append(f"- {', '.join(over)} convolutions beat the float32 matmul 'ceiling': `tf.linalg.matmul` at these "
                     "sizes is not the machine's peak (compare GFLOP per CPU-s), so fractions above 1 mean the "
                     "extractor runs at least as close to the hardware as TensorFlow's own matmul does.")
    return lines


def _epoch1_cell(row) -> str:
    if row["val_accuracy_epoch1"] is None:
        return "—"
    return f"{row['val_loss_epoch1']:.3g} · {100 * row['val_accuracy_epoch1']:.1f}%"
