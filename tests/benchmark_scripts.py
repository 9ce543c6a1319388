"""Load a script of ``benchmarks/`` as a module for its tests (that folder holds scripts, not a package)."""

import importlib.util

from heroes import paths


def load_script(name: str):
    """``benchmarks/<name>.py`` executed as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, paths.PROJ_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
