"""Entry point for ``python -m heroes <command>``; Ctrl-C while the command line itself imports is one line too."""

import signal
import sys

if __name__ == "__main__":
    try:
        from heroes.cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is done: a late Ctrl-C must not kill the exit
    sys.exit(status)
