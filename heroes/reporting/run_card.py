"""The run card (commit, dirty tree, command, seeds, hardware, wall times) and the check that it is still current."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from heroes import machine, paths

WATCHED = ("heroes", "notebooks")  # what produced the reports: a change here after the card's commit makes them stale
COMMAND_VARIABLE = "HEROES_COMMAND"  # set by whoever starts the run (make reproduce) when argv is a notebook kernel's


def _git(arguments, root) -> subprocess.CompletedProcess | None:
    """``git <arguments>`` in ``root``; None where git or the repository is missing."""
    try:
        return subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def git_state(root=None) -> dict:
    """{commit, dirty, dirty_paths}: HEAD, and whether ``WATCHED`` differs from it (``git status --porcelain``)."""
    root = Path(root or paths.PROJ_ROOT)
    head = _git(["rev-parse", "HEAD"], root)
    if head is None or head.returncode != 0:
        return {"commit": None, "dirty": None, "dirty_paths": [], "note": "not a git checkout: commit unknown"}
    status = _git(["status", "--porcelain", "--", *WATCHED], root)
    changed = [line[3:] for line in (status.stdout if status else "").splitlines() if line.strip()]
    return {"commit": head.stdout.strip(), "dirty": bool(changed), "dirty_paths": changed, "note": ""}


def command_line() -> str:
    """The command that started this run: ``$HEROES_COMMAND`` when set, else this process's argv."""
    return os.environ.get(COMMAND_VARIABLE) or shlex.join([Path(sys.executable).name, *sys.argv])


def notebook_wall_times(reports_dir=None) -> dict:
    """{notebook: seconds} and when ``make reproduce`` finished, from ``metrics/reproduce.json`` ({} when absent)."""
    path = Path(reports_dir or paths.REPORTS) / "metrics" / "reproduce.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {"notebooks": {item.get("name"): item.get("seconds") for item in record.get("notebooks") or []},
            "total_s": record.get("total_s"), "finished": record.get("finished")}


def run_card(seeds, wall_time_s=None, command=None, root=None, **extra) -> dict:
    """What a reader needs to trust and repeat a run: git commit and dirty state of ``heroes/`` and ``notebooks/``,
    the command line, every seed, hardware (``heroes.machine.describe()``, native bf16 included), library
    versions, this notebook's wall time and anything in ``extra``; JSON-ready.

    Per-notebook wall times are written after every notebook ran (``heroes.reporting.reproduce.write_timings``), so the
    summary reads them from ``reproduce.json`` (``notebook_wall_times``), not from this card.
    """
    from heroes.training.runs import library_versions

    return {**git_state(root), "command": command or command_line(), "seeds": [int(seed) for seed in seeds],
            "hardware": machine.describe(), "versions": library_versions(), "wall_time_s": wall_time_s,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def seed_varies(random_backbones, vary_split=False, shared_backbone_init=False) -> str:
    """What one training seed changes in a study, in words, for the run card: the backbone draw of every model with
    random weights (unless shared), the new layers' initialisation, the batch order, and the split with
    ``vary_split``."""
    parts = []
    if random_backbones and not shared_backbone_init:
        parts.append(f"the random backbone draw of {', '.join(random_backbones)} (each seed its own frozen weights)")
    parts += ["the new layers' initialisation", "the batch order"]
    parts.append("the train/validation/test split (each later seed draws its own group-aware split of the same sizes)"
                 if vary_split else "not the split (every seed on notebook 01's)")
    text = ", ".join(parts[:-1]) + " and " + parts[-1]
    if random_backbones and shared_backbone_init:
        text += f"; the random backbones of {', '.join(random_backbones)} are drawn once and shared by every seed"
    return text


def changed_since(commit, root=None) -> str | None:
    """None when ``heroes/`` and ``notebooks/`` are as at ``commit`` (``git diff --quiet COMMIT -- ...``),
    else a sentence naming what changed, or why it cannot be checked."""
    root = Path(root or paths.PROJ_ROOT)
    if not commit:
        return "the run card names no commit: the reports cannot be traced to code"
    quiet = _git(["diff", "--quiet", commit, "--", *WATCHED], root)
    if quiet is None or quiet.returncode not in (0, 1):
        detail = quiet.stderr.strip() if quiet is not None else "git unavailable"
        return f"cannot compare with commit {commit[:12]}: {detail}"
    if quiet.returncode == 0:
        return None
    names = _git(["diff", "--name-only", commit, "--", *WATCHED], root).stdout.split()
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"{' and '.join(WATCHED)} changed after commit {commit[:12]}, which produced the reports "
            f"({shown}): re-run `make reproduce`")


def check_reports(reports_dir=None, root=None) -> list:
    """One line per metrics file whose run card's commit no longer matches ``heroes/``/``notebooks/`` ([] = current)."""
    problems = []
    for path in sorted((Path(reports_dir or paths.REPORTS) / "metrics").glob("*.json")):
        try:
            card = json.loads(path.read_text()).get("run_card")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(card, dict):
            problem = changed_since(card.get("commit"), root)
            if problem:
                problems.append(f"{path.name}: {problem}")
    return problems
