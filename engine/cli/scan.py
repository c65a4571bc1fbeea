"""`refit scan`: check a labeled folder or table file and list its problems."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.cli.progress import Progress
from engine.terminal_text import terminal_safe


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `scan` to the `refit` parser."""
    s = sub.add_parser(
        "scan", help="Check a labeled folder (images or texts) or table file; list its problems."
    )
    s.add_argument("folder", help="A labeled folder, or a .csv / .tsv / .jsonl file.")
    s.add_argument("--min-per-class", type=int, default=2)
    s.add_argument("--text-column", help="Table files: the column holding the text.")
    s.add_argument("--label-column", help="Table files: the column holding the label.")
    s.add_argument(
        "--group-by",
        default="",
        help="Images: keep each patient's images together and count patients: 'dicom', "
        "'manifest' or 'pattern:<regex>' (see data.group_by).",
    )
    s.add_argument("--json", action="store_true", help="Print the result as JSON.")
    s.set_defaults(func=_cmd_scan)


def _cmd_scan(args: argparse.Namespace) -> int:
    from engine.data import DatasetError, detect_modality
    from engine.modalities import modality_of
    from engine.task import Task

    modality = modality_of(detect_modality(args.folder))
    index: Any  # a TextIndex or a DatasetIndex: the report reads what each has
    if args.group_by and modality.name != "image":
        raise DatasetError(
            f"--group-by applies to images; {args.folder} holds {modality.noun}. Leave it out."
        )
    with Progress("Scanning", quiet=args.json or not modality.scan_progress) as bar:
        task = Task(bar.report) if modality.scan_progress else None
        if args.group_by:  # images only: the one image scan, with the groups asked for
            from engine.data.manifest_scan import scan_image_source

            index = scan_image_source(
                args.folder, min_per_class=args.min_per_class, group_by=args.group_by, task=task
            )
        else:
            index = modality.scan(
                args.folder,
                min_per_class=args.min_per_class,
                text_column=args.text_column,
                label_column=args.label_column,
                task=task,
            )
    grouped = any(getattr(s, "group", None) is not None for s in index.samples)
    if args.json:
        print(
            json.dumps(
                {
                    "root": index.root,
                    "classes": list(index.classes),
                    "counts": index.class_counts(),
                    "groups": index.group_counts() if grouped else None,
                    "has_splits": index.has_splits,
                    "modality": modality.name,
                    "text_column": getattr(index, "text_column", None),
                    "label_column": getattr(index, "label_column", None),
                    "read": getattr(index, "read", 0) or None,
                    "intensity": (
                        index.intensity.to_dict() if getattr(index, "intensity", None) else None
                    ),
                    "problems": [
                        {
                            "kind": str(p.kind),
                            "severity": p.severity,
                            "path": p.path,
                            "message": p.message,
                        }
                        for p in index.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        counts = index.class_counts()
        columns = ""
        if getattr(index, "text_column", None):
            columns = (
                f" (text column '{terminal_safe(index.text_column)}', "
                f"label column '{terminal_safe(index.label_column)}')"
            )
        read = getattr(index, "read", 0)
        if read:
            unit = "line" if str(index.root).lower().endswith(".jsonl") else "row"
            columns += f"; {read} {unit}{'s' if read != 1 else ''} read"
            if read > len(index.samples):
                columns += f", {read - len(index.samples)} not used (why: below)"
        print(
            f"{terminal_safe(index.root)}: {len(index.samples)} usable "
            f"{modality.noun} in "
            f"{len(index.classes)} classes"
            + (" (train/val folders)" if index.has_splits else "")
            + columns
        )
        for cls in index.classes:
            per = ", ".join(f"{split} {n[cls]}" for split, n in counts.items() if cls in n)
            print(f"  {terminal_safe(cls)}: {per}")
        if grouped:
            _print_groups(index)
        for problem in index.problems:
            print(f"{problem.severity}: {terminal_safe(problem.message)}")
    return 2 if index.fatal_problem() else 0


def _print_groups(index: Any) -> None:
    """Patients (groups) and images per split: the numbers a clinical reviewer asks for first.
    Without split folders, also those of the split a run would make with the default fractions."""
    from engine.config import DataConfig
    from engine.data import split_samples
    from engine.data.index import split_group_counts

    _print_group_lines(index.group_counts(), index.samples)
    if index.has_splits or index.fatal_problem():
        return
    data = DataConfig()
    splits = split_samples(index, val_fraction=data.val_fraction, seed=data.split_seed)
    print(
        f"  split a run makes by default (val {data.val_fraction:.0%}, seed {data.split_seed}; "
        "each patient on one side):"
    )
    named = {"train": splits.train, "val": splits.val}
    _print_group_lines(split_group_counts(named, index.classes), index.samples, named)
    if not splits.val:
        patients = len({s.group or s.path for s in index.samples})
        print(
            f"warning: with {patients} patients (groups) the default split leaves none for "
            "validation (each patient stays on one side); add patients, or give a split column "
            "or split folders."
        )


def _print_group_lines(counts: dict, samples: Any, named: dict | None = None) -> None:
    for split, per_class in counts.items():
        members = named[split] if named else [s for s in samples if (s.split or "all") == split]
        units = {s.group or s.path for s in members}
        images = sum(c["images"] for c in per_class.values())
        detail = ", ".join(
            f"{terminal_safe(cls)} {c['groups']}" for cls, c in per_class.items() if c["images"]
        )
        print(
            f"  {split}: {len(units)} patients (groups), {images} images; patients per class: "
            f"{detail}"
        )
