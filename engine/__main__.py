"""`python -m engine` runs the `refit` command line (also the PyInstaller entry of `refit`)."""

from __future__ import annotations

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from engine.cli import main
    from engine.fast_exit import exit_now

    exit_now(main())
