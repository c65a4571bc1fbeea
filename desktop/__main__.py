"""`python -m desktop` starts the app (also the PyInstaller entry of `refit-studio`)."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from desktop.app import main

    sys.exit(main())
