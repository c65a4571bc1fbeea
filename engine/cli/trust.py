"""`refit trust`: the user's say over code shipped with models (the per-command
--allow-remote-code flag is in common.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `refit trust` to the `refit` parser."""
    t = sub.add_parser(
        "trust",
        help="Allow a Hugging Face model folder to run the code shipped with it, from now on "
        "(until its code changes); list or remove allowed folders.",
    )
    t.add_argument("folder", nargs="?", help="The model folder (the one with config.json).")
    t.add_argument("--list", action="store_true", help="List the allowed model folders.")
    t.add_argument(
        "--remove",
        metavar="FOLDER_OR_HASH",
        help="Stop allowing a folder (by path, or by the first 8+ characters of its hash).",
    )
    t.set_defaults(func=_cmd_trust)


def _cmd_trust(args: argparse.Namespace) -> int:
    from engine import trust

    if args.remove:
        removed = trust.untrust(args.remove)
        if not removed:
            print(f"{args.remove} is not on the allow-list ({trust.allow_list_path()}).")
            return 2
        print(f"Removed {removed} entr{'y' if removed == 1 else 'ies'} from the allow-list.")
        return 0
    if args.list or not args.folder:
        entries = trust.trusted_models()
        if not entries:
            print(f"No model folders are allowed to run code ({trust.allow_list_path()}).")
        for t in entries:
            print(f"{t.sha256[:16]}  {t.added}  {t.folder}")
        return 0
    entry = trust.trust_folder(args.folder)
    asking = trust.code_requests(Path(entry.folder))
    what = f"auto_map in {', '.join(asking)}" if asking else "it ships no code today"
    print(
        f"Allowed code shipped with {entry.folder} ({what}) to run, as long as its code stays "
        f"as it is now (SHA-256 {entry.sha256[:16]}…)."
    )
    return 0
