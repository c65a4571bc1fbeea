"""Printing benchmark results: the machine they ran on and aligned plain-text tables."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Sequence
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_lines() -> list[str]:
    """One line each: CPU, cores, memory, OS, Python, torch and its thread count, GPU."""
    import psutil
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"CPU: {cpu_model()} ({platform.machine()}), {os.cpu_count()} logical cores "
        f"({psutil.cpu_count(logical=False)} physical)",
        f"memory: {psutil.virtual_memory().total / 2**30:.0f} GiB",
        f"OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads); GPU: {gpu}",
        f"load average (1/5/15 min) at the end: {load_text()}",
    ]


def load_text() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def warn_if_busy(seconds: float = 3.0) -> None:
    """Say so when other processes already keep the CPU busy: timings would be noisy."""
    import psutil

    idle_before = psutil.cpu_times()
    time.sleep(seconds)
    after = psutil.cpu_times()
    busy = sum(after) - sum(idle_before) - (after.idle - idle_before.idle)
    busy -= getattr(after, "iowait", 0.0) - getattr(idle_before, "iowait", 0.0)
    cores = busy / seconds
    print(
        f"before starting: other processes keep {cores:.2f} of {os.cpu_count()} cores busy "
        f"(load average {load_text()})",
        flush=True,
    )
    if cores > 0.25:
        print(
            "WARNING: the machine is not idle; the timings below will be noisy. The "
            '"others\' cores" column shows how busy it was during each side.',
            flush=True,
        )


def own_peak_rss_mib() -> float:
    """Peak resident set size of the calling process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned first column, right-aligned numbers, a rule under the header."""
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)
