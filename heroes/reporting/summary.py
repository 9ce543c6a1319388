"""``reports/summary.md``, the study's summary, written from the notebooks' metrics files, never by hand.

Reads ``<reports_dir>/metrics/*.json`` through ``heroes.reporting.metrics_files``: each notebook's
``heroes.reporting.study_metrics`` dataclass (schema 1, or a file from before it mapped onto the same fields), read
by field name, and ``reproduce.json`` (per-notebook wall times, written by ``heroes.reporting.reproduce``). The summary
opens with what a reader must know first: random weights and synthetic data. A run's own ``summary.md`` is
``heroes.reporting.run_report``'s.
"""

from datetime import datetime, timezone
from pathlib import Path

from heroes import paths
from heroes.io import atomic_path
from heroes.reporting import published
from heroes.reporting.metrics_files import read_studies
from heroes.reporting.study_metrics import Comparison, StudyMetrics
from heroes.reporting.tables import markdown_cell, markdown_table

COMPARISON_FILE = "04-vgg-vs-resnet.json"
RANDOM_PREFIX = "random"
EMBEDDED = "the embedded synthetic dataset (procedurally drawn figures, not real photographs)"
HEADLINE_KEYS = ("test_n", "test_accuracy", "test_accuracy_ci", "macro_f1", "ece", "val_accuracy", "val_n",
                 "best_val_accuracy", "probe_accuracy")


def _table(block) -> list:
    if not isinstance(block, dict) or not block.get("columns"):
        return []
    return markdown_table(block["columns"], block.get("rows", []))


def _number(value, key="") -> str:
    """A headline value as people read it: accuracies and their intervals in percent, other floats to 3 places."""
    percent = "accuracy" in key
    if isinstance(value, bool) or value is None:
        return markdown_cell(value)
    if isinstance(value, (int, float)) and percent:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(item, (int, float)) for item in value):
        return (f"[{100 * value[0]:.1f}, {100 * value[1]:.1f}]" if percent
                else f"[{_number(value[0])}, {_number(value[1])}]")
    return markdown_cell(value)


def _figure_links(figures, reports_dir) -> list:
    """``- [caption](relative path)`` for each figure; a missing file is marked rather than linked silently."""
    lines = []
    for caption, relative in (figures or {}).items():
        missing = "" if (Path(reports_dir) / relative).is_file() else " (not found)"
        lines.append(f"- [{caption}]({relative}){missing}")
    return lines


def _warnings(studies: dict) -> list:
    """The first lines: random weights and synthetic data, whenever any metrics file says so."""
    lines = []
    random_sources = sorted({choice.get("source") or RANDOM_PREFIX for study in studies.values()
                             for choice in study.weights.values() if choice.get("random")})
    if any(study.weights_random for study in studies.values()):
        named = ", ".join(f"`{source}`" for source in random_sources)
        lines.append(f"> **Weights are random** ({named}): no ImageNet weights were loaded, so the backbones "
                     "started from random initialisation. These numbers show that the pipeline works end to end; "
                     "they are not what transfer learning from ImageNet achieves.")
    if any(study.embedded for study in studies.values()):
        lines += [">"] if lines else []
        lines.append(f"> **Data is {EMBEDDED}**, not the study's superhero photographs.")
    return lines


def _verdicts(metrics: Comparison) -> list:
    """The headline verdict (pooled over seeds when the file has it), its per-seed table, the first seed's alone."""
    pooled = metrics.pooled or {}
    lines = []
    if metrics.verdict:
        label = "Verdict, pooled over seeds" if pooled else "Verdict"
        lines += [f"**{label}.** {metrics.verdict}", ""]
    if metrics.equivalence:
        lines += [f"**Equivalence.** {metrics.equivalence}", ""]
    if (metrics.calibration or {}).get("sentence"):
        lines += [f"**Calibration.** {metrics.calibration['sentence']}", ""]
    if (metrics.flagged_test or {}).get("sentence"):
        lines += [f"**Flagged test images.** {metrics.flagged_test['sentence']}", ""]
        lines += _table((metrics.flagged_test or {}).get("table")) + [""]
    if _table(pooled.get("table")):
        lines += ["Each seed and all seeds pooled:", ""] + _table(pooled.get("table")) + [""]
    pairing = metrics.comparison.get("pairing")
    if pooled and metrics.first_seed_verdict:
        lines += [f"First seed alone ({pairing or 'seed 0'}): {metrics.first_seed_verdict}", ""]
    elif pairing:
        lines += [f"Paired on: {pairing}", ""]
    per_seed = _table(metrics.per_seed)
    if per_seed and not _table(pooled.get("table")):  # the pooled table already has a row per seed
        lines += ["The same paired comparison for each seed:", ""] + per_seed + [""]
    return lines


def _baselines(metrics: Comparison) -> list:
    """Which rows of the table are baselines, and what the paired exact tests against them say (when recorded)."""
    if not metrics.baselines:
        return []
    tests = metrics.baseline_tests or {}
    if not tests.get("sentence"):
        return [f"Baselines in the table ({', '.join(metrics.baselines)}): fitted on the same training images and "
                "scored on the same test images as the networks; no paired test against them was recorded.", ""]
    lines = [f"Baselines in the table ({', '.join(metrics.baselines)}): fitted on each seed's own training and "
             "validation images and scored on that seed's test images, their predictions published beside the "
             f"networks' in [`{published.FOLDER}/`]({published.FOLDER}/).", "",
             f"**Against the baselines.** {tests['sentence']}", ""]
    table = _table(tests.get("table"))
    return lines + (table + [""] if table else [])


def _convergence(metrics: Comparison) -> list:
    """How often the best epoch was the last one, per model."""
    convergence = metrics.convergence or {}
    if not convergence.get("sentence"):
        return []
    table = _table(convergence.get("table"))
    return [f"**Convergence.** {convergence['sentence']}", ""] + (table + [""] if table else [])


def _comparison(metrics: Comparison, reports_dir) -> list:
    lines = [f"## {metrics.title} (notebook 04)", ""]
    if metrics.sign_convention:
        lines += [f"**Sign convention.** {metrics.sign_convention}", ""]
    lines += _table(metrics.table) + [""]
    if metrics.table_note:
        lines += [metrics.table_note, ""]
    lines += _baselines(metrics) + _verdicts(metrics)
    if metrics.seed_note:
        lines += [f"**Seeds.** {metrics.seed_note}", ""]
    lines += _convergence(metrics)
    if metrics.overfitting.get("sentence"):
        lines += [f"**Overfitting.** {metrics.overfitting['sentence']}", ""] + _table(metrics.overfitting.get("table"))
        lines += [""]
    figures = _figure_links(metrics.figures, reports_dir)
    if figures:
        lines += ["Figures:", ""] + figures + [""]
    return lines


def _headline(models: dict) -> list:
    """Lines of a table of a notebook's headline numbers, one row per model."""
    keys = [key for key in HEADLINE_KEYS if any(key in numbers for numbers in models.values())]
    if not keys:
        return []
    rows = [[name] + [_number(numbers.get(key), key) for key in keys] for name, numbers in models.items()]
    return markdown_table(["model"] + keys, rows)


def _study(stem: str, metrics: StudyMetrics, reports_dir) -> list:
    """A notebook's section (02, 03): its headline numbers, its verdict and its figures."""
    number = stem.split("-", 1)[0]
    lines = [f"## {metrics.title} (notebook {number}, [`metrics/{stem}.json`](metrics/{stem}.json))", ""]
    headline = _headline(metrics.models)
    lines += headline + ([""] if headline else ["(no headline numbers in this file)", ""])
    if metrics.verdict:
        lines += [metrics.verdict, ""]
    links = _figure_links(metrics.figures, reports_dir)
    if links:
        lines += ["Figures:", ""] + links + [""]
    return lines


def _per_class(reports_dir) -> list:
    """Precision, recall and n per class of every published seed-0 run: where each model errs, class by class."""
    from heroes.evaluation.predictions import load_predictions
    from heroes.reporting.run_report import per_class_table

    files = sorted((Path(reports_dir) / published.FOLDER).glob("*-s0.csv"))
    lines = ["## Per class, seed 0's test split", ""] if files else []
    for file in files:
        table = per_class_table(load_predictions(file))
        rows = [(row["class"], f"{100 * row['precision']:.1f}%", f"{100 * row['recall']:.1f}%", row["n"])
                for row in table.to_dict("records")]
        lines += [f"[`{file.stem}`]({published.FOLDER}/{file.name})", ""]
        lines += markdown_table(("class", "precision", "recall", "n"), rows) + [""]
    return lines


def _versions(versions: dict) -> str:
    keys = ("python", "tensorflow", "keras", "numpy", "pandas")
    return ", ".join(f"{key} {versions[key]}" for key in keys if key in (versions or {})) or "—"


def _hardware(hardware: dict) -> str:
    if not hardware:
        return "—"
    gpus = ", ".join(hardware.get("gpus") or []) or "none"
    return (f"{hardware.get('cpu', '?')}, {hardware.get('usable_cpus', '?')} usable CPU cores; GPUs: {gpus}; "
            f"bf16 native: {hardware.get('bf16_native')}; load average at the start "
            f"{hardware.get('load_average', ['?'])[0]}")


def _wall_times(reproduce: dict, card: dict) -> str:
    notebooks = (reproduce or {}).get("notebooks") or []
    if notebooks:
        parts = [f"{item.get('name')} {item.get('seconds', 0) / 60:.1f} min" for item in notebooks]
        total = reproduce.get("total_s")
        finished = f", finished {reproduce['finished']}" if reproduce.get("finished") else ""
        return "; ".join(parts) + (f"; total {total / 60:.1f} min (`make reproduce`){finished}" if total else "")
    wall = (card or {}).get("wall_time_s")
    return f"notebook 04: {wall / 60:.1f} min" if wall else "—"


def _commit(card: dict) -> str:
    """'`abc123…` (heroes/ and notebooks/ clean)', or dirty with the changed paths, or why it is unknown."""
    commit = card.get("commit")
    if not commit:
        return "— (not recorded: these reports cannot be traced to code)"
    if card.get("dirty") is None:
        return f"`{commit}`"
    if not card["dirty"]:
        return f"`{commit}` (heroes/ and notebooks/ clean)"
    changed = card.get("dirty_paths") or []
    shown = ", ".join(f"`{path}`" for path in changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"`{commit}` plus uncommitted changes to {shown or 'heroes/ or notebooks/'}"


def _initialisation(comparison: Comparison) -> str:
    """What the seeds vary: the run card's own words when it has them (``run_card.seed_varies``), else derived."""
    seeds = comparison.config.get("seeds") or []
    if comparison.run_card.get("seed_varies"):
        drawn = ("random, drawn once and shared by every seed" if comparison.config.get("shared_backbone_init")
                 else "random, drawn by each seed") if comparison.weights_random else "the loaded weights"
        return f"{drawn}; a seed varies {comparison.run_card['seed_varies']}"
    if not comparison.weights_random:
        return f"the loaded weights, the same for every seed; seeds vary {_varied(comparison)}"
    if comparison.config.get("shared_backbone_init") and len(seeds) > 1:
        return (f"random, drawn once (seed {seeds[0]}) and shared by every seed as ImageNet weights would be; "
                f"seeds vary {_varied(comparison)}")
    return "random, drawn by each run's own seed"


def _varied(comparison: Comparison) -> str:
    """What a seed changes besides the backbone: the new layers and batch order, and the split where it varies."""
    if comparison.run_card.get("vary_split"):
        return "the new layers, the batch order and the split (later seeds draw their own group-aware split)"
    return "the new layers and the batch order (every seed on notebook 01's split)"


def _run_card(comparison: Comparison, reproduce: dict) -> list:
    card, data, config, weights = comparison.run_card, comparison.data, comparison.config, comparison.weights
    source = EMBEDDED if comparison.embedded else "your images in data/raw"
    settings = data.get("embedded_settings")
    rows = [
        ("git commit", _commit(card)),
        ("command", f"`{card['command']}`" if card.get("command") else "—"),
        ("library versions", _versions(card.get("versions"))),
        ("seeds", ", ".join(str(seed) for seed in config.get("seeds", [])) or "—"),
        ("weights", "; ".join(f"{name}: {value.get('source')}" for name, value in weights.items()) or "—"),
        ("weights note", "; ".join(sorted({value.get("note", "") for value in weights.values()} - {""})) or "—"),
        ("data", source + (f" ({settings})" if settings else "")),
        ("data manifest hash", f"`{data.get('manifest_hash')}`" if data.get("manifest_hash") else "—"),
        ("images (train / val / test)", " / ".join(str((data.get("splits") or {}).get(name, "?"))
                                                    for name in ("train", "val", "test"))),
        ("image size", f"{config['image_size']} px" if "image_size" in config else "—"),
        ("training", ", ".join(f"{key} {config[key]}" for key in ("policy", "epochs", "batch_size", "learning_rate",
                                                                   "momentum", "feature_dtype") if key in config)),
        ("backbone initialisation", _initialisation(comparison)),
        ("hardware", _hardware(card.get("hardware"))),
        ("wall time", _wall_times(reproduce, card)),
    ]
    return ["## Run card", ""] + markdown_table(("", ""), rows) + [""]


def study_summary_lines(reports_dir) -> list:
    """Every line of the study's ``summary.md`` for the metrics under ``reports_dir``."""
    reports_dir = Path(reports_dir)
    studies, reproduce, problems = read_studies(reports_dir / "metrics")
    comparison = next((study for study in studies.values() if isinstance(study, Comparison)), None)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = _warnings(studies)
    lines += (["" if lines else None, "# heroes: results summary", "",
               f"Generated by `heroes.reporting.summary` from `metrics/*.json` on {stamp}; do not edit by hand "
               "(`make reproduce` rewrites it). Every test prediction behind these numbers, with its file path: "
               f"[`{published.FOLDER}/`]({published.FOLDER}/). The executed notebooks are written to `notebooks/` "
               "beside this file (not committed: their embedded figures weigh about 20 MB; the figures are in "
               "[`figures/`](figures/)).", ""])
    lines = [line for line in lines if line is not None]
    if comparison is None:
        lines += [f"Notebook 04 has not written `metrics/{COMPARISON_FILE}` yet: run it (or `make reproduce`).", ""]
    else:
        lines += _comparison(comparison, reports_dir)
    skipped = reproduce.get("skipped") or {}
    for stem, study in studies.items():
        if study is not comparison and stem not in skipped:
            lines += _study(stem, study, reports_dir)
    for stem, reason in skipped.items():  # a metrics file left by an earlier run is not this run's: not shown
        lines += [f"## Notebook {stem}: skipped", "", f"`make reproduce` did not run it: {reason}.", ""]
    lines += _per_class(reports_dir)
    if comparison is not None:
        lines += _run_card(comparison, reproduce)
    elif reproduce:
        lines += ["## Run card", "", f"wall time: {_wall_times(reproduce, {})}", ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {problem}" for problem in problems] + [""]
    return lines


def write_study_summary(reports_dir=None, out=None) -> Path:
    """Write the study's ``<reports_dir>/summary.md`` (or ``out``) from the metrics files, beside a copy of every
    run's test predictions they name (``heroes.reporting.published``); return its path."""
    reports_dir = Path(reports_dir or paths.REPORTS)
    out = Path(out or reports_dir / "summary.md")
    published.publish_predictions(reports_dir)
    text = "\n".join(study_summary_lines(reports_dir)).rstrip() + "\n"
    with atomic_path(out) as temporary:
        temporary.write_text(text)
    return out
