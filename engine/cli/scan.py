"""`refit scan`: check a labeled folder or table file and list its problems."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.cli.progress import Progress
from engine.config import DicomFrames, DicomWindow
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
    s.add_argument(
        "--dicom-window",
        choices=[w.value for w in DicomWindow],
        default=DicomWindow.FILE.value,
        help="Images: the window DICOM files are decoded with, for the scan's intensity "
        "statistics and --review's features (default 'file': the file's own; see "
        "data.dicom_window).",
    )
    s.add_argument(
        "--dicom-frames",
        choices=[f.value for f in DicomFrames],
        default=DicomFrames.MIDDLE.value,
        help="Images: multi-frame DICOM files give their middle frame (default) or every frame "
        "as a sample, a file's frames kept together (see data.dicom_frames).",
    )
    s.add_argument("--json", action="store_true", help="Print the result as JSON.")
    r = s.add_argument_group("likely label errors (images)")
    r.add_argument(
        "--review",
        action="store_true",
        help="After the scan, list the images whose label the data contradicts (out-of-fold "
        "predictions on a frozen backbone's features, confident learning); nothing is "
        "relabelled. Features are cached in the workspace.",
    )
    r.add_argument(
        "--top", type=int, default=20, help="With --review: how many to list (default 20)."
    )
    r.add_argument(
        "--backbone",
        help="With --review: the image backbone whose features are used "
        "(default: the starter, which works offline).",
    )
    r.add_argument(
        "--no-pretrained", action="store_true", help="With --review: random backbone weights."
    )
    r.add_argument(
        "--workers",
        type=int,
        default=0,
        help="With --review: image loader processes (default 0: decode in this process; "
        "-1: one per spare core).",
    )
    s.set_defaults(func=_cmd_scan)


def _cmd_scan(args: argparse.Namespace) -> int:
    from engine.data import DatasetError, detect_modality
    from engine.modalities import modality_of
    from engine.task import Task

    modality = modality_of(detect_modality(args.folder))
    index: Any  # a TextIndex or a DatasetIndex: the report reads what each has
    window = getattr(args, "dicom_window", DicomWindow.FILE.value)
    frames = getattr(args, "dicom_frames", DicomFrames.MIDDLE.value)
    used_flags = (
        ("--group-by", args.group_by),
        ("--dicom-window", window != DicomWindow.FILE.value),
        ("--dicom-frames", frames != DicomFrames.MIDDLE.value),
    )
    for flag, used in used_flags:
        if used and modality.name != "image":
            raise DatasetError(
                f"{flag} applies to images; {args.folder} holds {modality.noun}. Leave it out."
            )
    with Progress("Scanning", quiet=args.json or not modality.scan_progress) as bar:
        task = Task(bar.report) if modality.scan_progress else None
        if modality.name == "image":  # the one image scan, with the groups and window asked for
            from engine.data.manifest_scan import scan_image_source

            index = scan_image_source(
                args.folder,
                min_per_class=args.min_per_class,
                group_by=args.group_by,
                task=task,
                window=window,
                frames=frames,
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
    review: dict[str, Any] | None = None
    if args.review and args.json:
        review = _review(index, args)
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
                    **({"label_review": review} if args.review else {}),
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
        if args.review:
            review = _review(index, args)
            _print_review(index, review)
    if index.fatal_problem():
        return 2
    return 1 if review is not None and "error" in review else 0


def _review(index: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The label review of a scanned dataset as a dict (``{"error": sentence}`` when it cannot
    run); Ctrl+C stops it (``{"error": ...}`` too)."""
    from engine.cli.progress import cancel_on_sigint
    from engine.evaluation.label_review import ReviewError, review_labels
    from engine.task import Cancelled

    try:
        with (
            Progress("Reviewing labels", quiet=args.json, unit="%") as bar,
            cancel_on_sigint(
                "Stopping the review (Ctrl+C again to abort)…",
                lambda p: bar.update(round(100 * (p.fraction or 0.0)), 100),
            ) as task,
        ):
            return review_labels(
                index,
                backbone=args.backbone,
                pretrained=not args.no_pretrained,
                workspace=getattr(args, "workspace", None),
                top=max(0, args.top),
                num_workers=args.workers,
                dicom_window=getattr(args, "dicom_window", DicomWindow.FILE.value),
                task=task,
            ).to_dict()
    except ReviewError as exc:
        return {"error": str(exc)}
    except Cancelled:
        return {"error": "The label review was stopped by the user."}
    except Exception as exc:  # an unknown backbone, a file that fails to decode: one sentence
        from engine.training.provenance import error_sentence

        return {"error": error_sentence(exc)}


def _print_review(index: Any, review: dict[str, Any]) -> None:
    """One line per likely label error, its file first (a terminal makes it clickable)."""
    from pathlib import Path

    if "error" in review:
        print(f"review: {terminal_safe(review['error'])}")
        return
    how = (
        f"{review['folds']} {'patient-grouped ' if review['grouped'] else ''}folds on "
        f"{review['backbone']} features; nothing was relabelled"
    )
    kept = (
        "Runs of this folder trained from now on record this review (the workspace keeps it)."
        if review.get("kept")
        else "The workspace could not keep this review: runs will not record it."
    )
    if not review["flagged"]:
        print(f"Likely label errors: none among {review['reviewed']} images ({how}).")
        print(kept)
        return
    shown = len(review["issues"])
    print(
        f"Likely label errors: {review['flagged']} of {review['reviewed']} images ({how})"
        + (f"; the top {shown}:" if shown < review["flagged"] else ":")
    )
    base = Path(index.root)
    base = base if base.is_dir() else base.parent
    for issue in review["issues"]:
        print(
            f"  {terminal_safe(str(base / issue['path']))}  labeled "
            f"'{terminal_safe(issue['given'])}', looks like '{terminal_safe(issue['suggested'])}' "
            f"({issue['confidence']:.0%}; its label {issue['self_confidence']:.0%})"
        )
    print(kept)


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
