"""One engine command as a user runs it, in its own process: ``refit ARGS...``; writes the
run folder the command made and its summary's best metrics to ``--out`` (JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    out = Path(args[args.index("--out") + 1])
    del args[args.index("--out") : args.index("--out") + 2]
    workspace = Path(args[args.index("--workspace") + 1])
    from engine.cli import main as refit

    code = refit(args)
    runs = sorted((workspace / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((runs[-1] / "summary.json").read_text())
    out.write_text(json.dumps({"code": code, "run": str(runs[-1]), "best": summary.get("best")}))
    from engine.fast_exit import exit_now

    exit_now(code)  # as the refit command ends


if __name__ == "__main__":
    main()
