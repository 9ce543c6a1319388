"""Test-wide settings: caches of `heroes train` go to a temporary folder, never the user's or the project's; what
`cli.main` exports for --verbose and --quiet is put back after every test."""

import os
import tempfile

import pytest

os.environ.setdefault("HEROES_CACHE_DIR", tempfile.mkdtemp(prefix="heroes-test-cache-"))


@pytest.fixture(autouse=True)
def restore_output_environment(monkeypatch):
    """cli.main writes --verbose and --quiet into os.environ (for the bars of later imports and notebook kernels):
    registered here, monkeypatch restores them, so a --quiet test cannot silence the bars of the tests after it."""
    from heroes import progress

    for name in (progress.VERBOSE_ENV, progress.QUIET_ENV):
        monkeypatch.setenv(name, "")  # every test starts with bars on, whatever the shell says
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", ""))  # --verbose lowers it
