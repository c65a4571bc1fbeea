"""`refit backbones`: the backbone catalog and what works offline."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `backbones` to the `refit` parser."""
    b = sub.add_parser("backbones", help="List the backbone catalog and what works offline.")
    b.set_defaults(func=_cmd_backbones)


def _cmd_backbones(args: argparse.Namespace) -> int:
    from engine.modalities import modality_of
    from engine.models import list_catalog, weights_status

    for entry in list_catalog():
        status = weights_status(entry.name)
        params = f"{entry.params / 1e6:.1f}M" if entry.params else "?"
        mark = "offline" if status.available else "needs weights"
        reads = modality_of(entry).reads(entry)
        print(f"{entry.name:38} {params:>7}  {reads:>5}  {mark:13} {entry.description}")
    return 0
