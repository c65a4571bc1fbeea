"""Text classification: length bucketing on vs off, and LoRA vs full fine-tuning, side by side.

Three configurations of one engine run on the offline starter text backbone (all-MiniLM-L6-v2),
each in a process of its own so that its time and peak memory are its own, with the same data,
split, seed, epochs and batch size:

1. LoRA, ``data.length_bucketing`` on (the default),
2. LoRA, ``data.length_bucketing`` off: the bucketing comparison (1 vs 2),
3. full fine-tuning, bucketing on: the LoRA comparison (1 vs 3).

Rounds are interleaved (1 2 3, then 2 3 1, ...) so that a busy spell on the machine does not land
on one configuration only; the tables give the median of the rounds and every round's ratio.
Throughput counts the texts of the optimisation steps (from the engine's ``StepEnded`` events,
leaving out the first ``--skip`` steps of the run); the padding share comes from the batches the
engine trains on (``TokenizedTexts.padded_tokens`` against the texts' real token counts).

    python benchmarks/text_lora.py                       # 1000 generated short messages
    python benchmarks/text_lora.py --data sms.tsv --text-column text --label-column label
    python benchmarks/text_lora.py --messages 2000 --repeat 3   # the run in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import shutil
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune_throughput import throughput
from make_messages import describe, messages, write_messages
from measure import Measured, run_side
from report import machine_lines, table, warn_if_busy

HERE = Path(__file__).resolve().parent
# Where this project's development machine keeps real public sets (columns text, label).
REAL_DATA = "/work/realdata/*.tsv"
# A run during which other processes kept more cores than this busy is repeated (--retries): on
# two cores, a test suite running beside a training run can make it 2-3x slower.
BUSY_CORES = 0.25


@dataclass(frozen=True)
class Side:
    key: str
    label: str
    method: str
    bucketing: bool


LORA = Side("lora", "LoRA, bucketing on", "lora", True)
LORA_FLAT = Side("lora-flat", "LoRA, bucketing off", "lora", False)
FULL = Side("full", "full fine-tune, bucketing on", "full", True)
SIDES = (LORA, LORA_FLAT, FULL)


@dataclass(frozen=True)
class TextSet:
    path: Path
    text_column: str
    label_column: str
    origin: str


def run_config(
    side: Side, data: TextSet, tmp: Path, name: str, args: argparse.Namespace
) -> Measured:
    """One run of ``side``; run again (up to ``--retries`` times) while other processes kept
    more than BUSY_CORES busy, and keep the quietest attempt."""
    quietest: Measured | None = None
    for attempt in range(args.retries + 1):
        label = name if attempt == 0 else f"{name}, again (the machine was busy)"
        measured = run_side(
            side_command(side, data, tmp / f"ws-{name}-{attempt}", args),
            out=tmp / f"{name}-{attempt}.json",
            label=label,
            interval=0.5,  # sampling PSS costs CPU; the training peak lasts for seconds
        )
        r = measured.result
        if r["status"] != "completed":
            raise SystemExit(f"{name}: the run ended {r['status']}: {r['error']}")
        if quietest is None or measured.other_cores < quietest.other_cores:
            quietest = measured
        if measured.other_cores <= BUSY_CORES:
            break
    assert quietest is not None
    return quietest


def side_command(side: Side, data: TextSet, workspace: Path, args: argparse.Namespace) -> list[str]:
    return [
        str(HERE / "engine_side.py"),
        "text",
        "--data",
        str(data.path),
        "--workspace",
        str(workspace),
        "--method",
        side.method,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--val-fraction",
        str(args.val_fraction),
        "--max-length",
        str(args.max_length),
        "--seed",
        str(args.seed),
        "--text-column",
        data.text_column,
        "--label-column",
        data.label_column,
        *([] if side.bucketing else ["--no-bucketing"]),
    ]


def summarize(m: Measured, skip: int) -> dict[str, Any]:
    """Speed, padding, memory, parameters and last-epoch metrics of one run."""
    r = m.result
    rows = r["timeline"]
    steps = [row for row in rows if row["event"] == "StepEnded"]
    sizes = [n for epoch in r["text_batches"] for n in epoch["sizes"]]
    # Each StepEnded carries the texts per second of its own step: its duration is n / rate.
    intervals = [
        (row["epoch"], n, n / row["samples_per_sec"]) for row, n in zip(steps, sizes, strict=True)
    ]
    rate = throughput(intervals[skip:])
    started = next(row for row in rows if row["event"] == "RunStarted")
    ends = [row for row in rows if row["event"] == "EpochEnded"]
    # Arrival times at the last callback: an epoch's wall time holds its training steps, the
    # validation pass and the checkpoints written when it ended.
    marks = [started["t"], *(row["t"] for row in ends)]
    metrics = ends[-1]["metrics"]
    real = sum(e["real_tokens"] for e in r["text_batches"])
    padded = sum(e["padded_tokens"] for e in r["text_batches"])
    epochs = len(r["text_batches"])
    return {
        "texts_per_s": rate["images_per_s"],
        "train_s_per_epoch": sum(dt for _, _, dt in intervals) / epochs,
        "epoch_s": statistics.mean(b - a for a, b in itertools.pairwise(marks)),
        "real_tokens": real / epochs,
        "padded_tokens": padded / epochs,
        "padding_share": 1 - real / padded,
        "trainable": started["trainable_params"],
        "total": started["total_params"],
        "peak_rss": r["peak_rss_mib"],
        "rss_growth": r["peak_rss_mib"] - r["rss_before_mib"],
        "peak_pss": m.peak_tree_pss_mib,
        "cuda_peak": r["cuda_peak_mib"],
        "val_accuracy": metrics["val_accuracy"],
        "val_macro_f1": metrics["val_macro_f1"],
        "worst_recall": min(v for k, v in metrics.items() if k.startswith("val_recall/")),
        "others": m.other_cores,
    }


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in values)


def ratio_line(
    name: str, tops: list[dict[str, Any]], bottoms: list[dict[str, Any]], key: str
) -> str:
    """``name`` = median of the per-round ratios, with every round's ratio."""
    ratios = [t[key] / b[key] for t, b in zip(tops, bottoms, strict=True)]
    return (
        f"RATIO {name} = {statistics.median(ratios):.2f}x   "
        f"(rounds: {spread(ratios)}; range {min(ratios):.2f}-{max(ratios):.2f}x)"
    )


def data_line(data: TextSet, run: Measured) -> str:
    r = run.result
    splits = json.loads(Path(r["splits"]).read_text())
    val = Counter(label for _, label, *_ in splits["val"])
    classes = splits["classes"]
    shares = ", ".join(f"{classes[c]} {n / sum(val.values()):.0%}" for c, n in sorted(val.items()))
    lengths = r["token_lengths"]
    return (
        f"{data.origin}: {r['train_size']} train + {r['val_size']} val texts (val: {shares}); "
        f"tokens per training text: median {lengths['median']}, 90th percentile "
        f"{lengths['p90']}, max {lengths['max']} (cut at {lengths['limit']})"
    )


def bucketing_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for side in (LORA, LORA_FLAT):
        s = runs[side.key]
        rows.append(
            [
                side.label,
                median(s, "texts_per_s"),
                spread([x["texts_per_s"] for x in s], "{:.1f}"),
                median(s, "train_s_per_epoch"),
                round(s[0]["padded_tokens"]),
                round(s[0]["real_tokens"]),
                f"{s[0]['padding_share']:.1%}",
                max(x["others"] for x in s),
            ]
        )
    headers = [
        "LoRA on the starter",
        "train texts/s",
        "rounds",
        "train s/epoch",
        "token positions/epoch",
        "real tokens/epoch",
        "padding share",
        "others' cores (max)",
    ]
    return table(headers, rows)


def methods_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    gpu = any(x["cuda_peak"] is not None for s in runs.values() for x in s)
    for side in (LORA, FULL):
        s = runs[side.key]
        accuracies = sorted({round(x["val_accuracy"], 4) for x in s})
        rows.append(
            [
                side.label.split(",")[0],
                f"{s[0]['trainable']:,} of {s[0]['total']:,}",
                f"{s[0]['trainable'] / s[0]['total']:.2%}",
                median(s, "epoch_s"),
                spread([x["epoch_s"] for x in s], "{:.1f}"),
                median(s, "texts_per_s"),
                max(x["peak_rss"] for x in s),
                median(s, "rss_growth"),
                max(x["peak_pss"] for x in s),
                *([max(x["cuda_peak"] or 0.0 for x in s)] if gpu else []),
                " / ".join(f"{a:.3f}" for a in accuracies),
                s[0]["val_macro_f1"],
                s[0]["worst_recall"],
                max(x["others"] for x in s),
            ]
        )
    headers = [
        "method",
        "trainable params",
        "share",
        "s/epoch",
        "rounds",
        "train texts/s",
        "peak RSS MiB",
        "RSS growth MiB",
        "peak PSS MiB",
        *(["CUDA peak MiB"] if gpu else []),
        "val acc (last ep)",
        "val macro F1",
        "worst-class recall",
        "others' cores (max)",
    ]
    return table(headers, rows)


def print_report(
    data: TextSet, first: Measured, runs: dict[str, list[dict[str, Any]]], seed: int
) -> None:
    lora, flat, full = (runs[s.key] for s in SIDES)
    r = first.result
    print()
    print(
        f"== {data_line(data, first)}\n   all-MiniLM-L6-v2, {r['epochs']} epochs, batch "
        f"{r['batch_size']}, seed {seed}, {r['threads']} torch threads, "
        f"{len(lora)} interleaved round(s); medians over the rounds"
    )
    print()
    print("1. Length bucketing (both LoRA)")
    print(bucketing_table(runs))
    print(ratio_line("bucketing on / off, train texts/s", lora, flat, "texts_per_s"))
    off, on = flat[0]["padded_tokens"], lora[0]["padded_tokens"]
    print(f"token positions fed to the model, off / on: {off:.0f} / {on:.0f} = {off / on:.2f}x")
    print()
    print("2. LoRA vs full fine-tuning (both bucketing on)")
    print(methods_table(runs))
    print(ratio_line("full / LoRA, s per epoch", full, lora, "epoch_s"))
    print(ratio_line("full / LoRA, peak RSS", full, lora, "peak_rss"))
    print(ratio_line("full / LoRA, RSS growth while training", full, lora, "rss_growth"))
    print(
        f"trainable parameters full / LoRA: {full[0]['trainable']:,} / {lora[0]['trainable']:,} "
        f"= {full[0]['trainable'] / lora[0]['trainable']:.0f}x; val accuracy after "
        f"{r['epochs']} epochs, LoRA - full: "
        f"{lora[0]['val_accuracy'] - full[0]['val_accuracy']:+.3f}"
    )


def bench(data: TextSet, tmp: Path, args: argparse.Namespace) -> None:
    """Every configuration ``args.repeat`` times, interleaved; then the tables."""
    data.path.read_bytes()  # no side pays for a cold disk
    measured: dict[str, list[Measured]] = {s.key: [] for s in SIDES}
    tag = data.path.stem
    for round_ in range(args.repeat):
        order = SIDES[round_ % len(SIDES) :] + SIDES[: round_ % len(SIDES)]
        for side in order:
            name = f"{tag}-{side.key}-{round_ + 1}"
            measured[side.key].append(run_config(side, data, tmp, name, args))
    runs = {key: [summarize(m, args.skip) for m in ms] for key, ms in measured.items()}
    print_report(data, measured[LORA.key][0], runs, args.seed)


def text_sets(args: argparse.Namespace, tmp: Path) -> list[TextSet]:
    if args.data:
        given = TextSet(args.data, args.text_column, args.label_column, f"given set {args.data}")
        sets = [given]
    else:
        path = write_messages(tmp / "messages.tsv", count=args.messages, seed=args.data_seed)
        rows = messages(args.messages, args.data_seed)
        origin = f"generated messages (make_messages.py, seed {args.data_seed}; {describe(rows)})"
        sets = [TextSet(path, "text", "label", origin)]
    for found in sorted(glob.glob(args.real_data)) if args.real_data else []:
        sets.append(TextSet(Path(found), "text", "label", f"real set {found}"))
    return sets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="a .tsv/.csv/.jsonl of texts (default: generated)"
    )
    parser.add_argument("--text-column", default="", help="with --data (empty: guessed)")
    parser.add_argument("--label-column", default="", help="with --data (empty: guessed)")
    parser.add_argument("--messages", type=int, default=1000, help="generated messages")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated messages")
    parser.add_argument(
        "--real-data",
        default=REAL_DATA,
        help=f"also run on every file this glob matches, columns text and label (default "
        f"{REAL_DATA}; '' for none)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="DataConfig.max_length")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="RunConfig.seed (same on every side)")
    parser.add_argument("--skip", type=int, default=2, help="warm-up steps not timed")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--retries", type=int, default=1, help="runs again of a run that shared a busy machine"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="refit-bench-text-"))
    os.environ["REFIT_HOME"] = str(tmp / "refit-home")  # nothing lands in the user's workspace
    try:
        sets = text_sets(args, tmp)
        warn_if_busy()
        for data in sets:
            bench(data, tmp, args)
        print()
        for line in machine_lines():
            print(f"  {line}")
    finally:
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
