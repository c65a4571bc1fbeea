"""Leaving the `refit` process as soon as its work is done.

Once torch, timm, scikit-learn and onnxruntime are imported, the interpreter's own finalization
(tearing down thousands of modules and their C state) takes about 1.5 s on a 2-core machine:
10-15 % of a whole linear-probe run. Everything the engine writes is written and closed by then
(atomically), so the process runs the atexit handlers (logging, temporary folders), flushes its
output and ends without that teardown. When another non-daemon thread still runs, it exits the
ordinary way and waits for it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``: atexit handlers and flushed output, no interpreter
    teardown (unless another non-daemon thread is still running)."""
    _flush()
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe or stream: nothing more can be said.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
