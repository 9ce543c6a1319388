"""Test-wide setting: caches of `heroes train` go to a temporary folder, never the user's or the project's."""

import os
import tempfile

os.environ.setdefault("HEROES_CACHE_DIR", tempfile.mkdtemp(prefix="heroes-test-cache-"))
