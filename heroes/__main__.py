"""Entry point for ``python -m heroes <command>``."""

import sys

from heroes.cli import main

if __name__ == "__main__":
    sys.exit(main())
