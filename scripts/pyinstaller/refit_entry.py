"""The one executable of the bundle: `refit-studio` starts the app, `refit` the command line.

Both names are the same program (``refit`` is a link to ``refit-studio`` on Linux and macOS, a
second small executable on Windows; see build.spec), so the modules are stored once. The name it
was started by decides. ``freeze_support`` comes first: a loader worker started by spawn (macOS,
Windows) re-runs this program and must become the worker, not a second app.
"""

import multiprocessing
import os
import sys


def _started_as_cli() -> bool:
    name = os.path.basename(sys.argv[0]).lower()
    stem = name[:-4] if name.endswith(".exe") else name
    return stem == "refit"


if __name__ == "__main__":
    multiprocessing.freeze_support()
    if _started_as_cli():
        from engine.cli import main
        from engine.fast_exit import exit_now

        exit_now(main())
    else:
        from desktop.app import main as app_main

        sys.exit(app_main())
