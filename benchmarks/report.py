"""Printing benchmark results: the machine they ran on and aligned plain-text tables."""

from __future__ import annotations

import os
import platform
import resource
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


def warn_if_busy() -> None:
    """Say so when other processes already keep the CPU busy: timings would be noisy."""
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    print(f"load average at the start: {load_text()} ({cores} cores)", flush=True)
    if load > 0.5 * cores:
        print(
            "WARNING: other processes are using the CPU; the timings below will be noisy "
            "and favour neither side.",
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
