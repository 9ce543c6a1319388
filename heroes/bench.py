"""``python -m heroes bench``: run benchmarks/train_benchmark.py (naive vs cached training, span vs direct suffix)."""

import importlib.util
import sys

from heroes import paths
from heroes.errors import UserError

SCRIPT = paths.PROJ_ROOT / "benchmarks" / "train_benchmark.py"
MODULE_NAME = "heroes_train_benchmark"


def load_benchmark():
    """The benchmark script as a module (``benchmarks/`` is a folder of scripts, not a package)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    if not SCRIPT.is_file():
        raise UserError(f"benchmark script not found: {SCRIPT} (it ships with the repository checkout)")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(MODULE_NAME, None)
        raise
    return module


def run(out=None, quick=False, extra=()) -> int:
    """Run the benchmark as its command line would (``extra``: more of its options, e.g. ``--suffix-only``): print
    the tables, write the JSON; return the exit status."""
    argv = (["--quick"] if quick else []) + (["--out", str(out)] if out else []) + list(extra)
    return load_benchmark().main(argv)
