"""`python -m engine.cli`: the `refit` command line, as `python -m engine`."""

import sys

from engine.cli.app import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
