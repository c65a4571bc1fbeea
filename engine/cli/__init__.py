"""The `refit` command line (app.py assembles it; one module per command group).

``engine.cli:main`` and ``engine.cli:entry`` are its entry points (`python -m engine`, the `refit`
console script, the bundle's scripts/pyinstaller/refit_entry.py).
"""

from engine.cli.app import entry, main

__all__ = ["entry", "main"]
