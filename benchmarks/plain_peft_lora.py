"""A plain peft LoRA loop on a TSV of texts: the baseline the engine's LoRA runs are compared to.

What a practitioner writes by hand: ``AutoModel`` + ``peft.LoraConfig`` on the same targets and
rank as the engine's default (query and value of every block, r 8, alpha 16, dropout 0.1), mean
pooling, a linear head, AdamW (head at ``--lr``, adapters at ``--lr`` x ``--backbone-scale`` as
the engine's default), batches tokenized with dynamic padding (``padding=True``, random order),
the same batch size, ``max_length`` and threads. Prints and writes (``--out``) the training
throughput (texts per second of the optimisation steps, the first ``--skip`` steps left out),
the wall time and the validation accuracy.

    python benchmarks/plain_peft_lora.py --data /tmp/messages.tsv --epochs 1
    python benchmarks/plain_peft_lora.py --data /tmp/messages.tsv --compare   # engine beside it
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def read_tsv(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r[text_column] for r in rows], [r[label_column] for r in rows]


def split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified train / validation indices."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(labels)))
    train, val = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return train, val


def plain_run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    from engine.models.weights import text_starter_folder

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    texts, names = read_tsv(args.data, args.text_column, args.label_column)
    classes = sorted(set(names))
    labels = [classes.index(n) for n in names]
    train_idx, val_idx = split(labels, args.val_fraction, args.seed)
    folder = text_starter_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    encoder = AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
    encoder = get_peft_model(
        encoder,
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]),
    )
    head = torch.nn.Linear(encoder.config.hidden_size, len(classes))

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    def tokens(idx: list[int]) -> dict[str, torch.Tensor]:
        return tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=args.max_length,
            return_tensors="pt",
        )

    adapters = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": adapters, "lr": args.lr * args.backbone_scale},
            {"params": head.parameters(), "lr": args.lr},
        ],
        weight_decay=0.01,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    step_texts, step_seconds, step = 0, 0.0, 0
    rng = random.Random(args.seed)
    for _ in range(args.epochs):
        encoder.train()
        order = list(train_idx)
        rng.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            t0 = time.perf_counter()
            batch = tokens(idx)
            y = torch.tensor([labels[i] for i in idx])
            loss = loss_fn(logits(batch), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= args.skip:
                step_seconds += time.perf_counter() - t0
                step_texts += len(idx)
            step += 1
        correct = evaluate(encoder, logits, tokens, val_idx, labels, args.batch_size)
    return {
        "side": "plain peft loop",
        "texts_per_s": step_texts / step_seconds if step_seconds else float("nan"),
        "seconds": time.perf_counter() - started,
        "val_accuracy": correct / len(val_idx),
        "train_size": len(train_idx),
        "val_size": len(val_idx),
        "threads": torch.get_num_threads(),
    }


def evaluate(encoder: Any, logits: Any, tokens: Any, idx: list[int], labels: list[int], bs: int):
    import torch

    encoder.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(idx), bs):
            part = idx[start : start + bs]
            pred = logits(tokens(part)).argmax(1)
            correct += sum(int(p) == labels[i] for p, i in zip(pred.tolist(), part, strict=True))
    return correct


def engine_texts_per_s(result: dict[str, Any], skip: int) -> float:
    """Texts per second of the engine's optimisation steps, from its StepEnded events."""
    steps = [row for row in result["timeline"] if row["event"] == "StepEnded"]
    sizes = [n for epoch in result["text_batches"] for n in epoch["sizes"]]
    pairs = list(zip(steps, sizes, strict=True))[skip:]
    seconds = sum(n / row["samples_per_sec"] for row, n in pairs)
    return sum(n for _, n in pairs) / seconds if seconds else float("nan")


def compare(args: argparse.Namespace) -> None:
    """The engine's LoRA run and this loop, each in a process of its own, one after the other."""
    import tempfile

    from measure import run_side

    with tempfile.TemporaryDirectory(prefix="plain-peft-") as tmp:
        t = Path(tmp)
        common = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
        common += ["--max-length", str(args.max_length), "--seed", str(args.seed)]
        common += ["--val-fraction", str(args.val_fraction)]
        cols = ["--text-column", args.text_column, "--label-column", args.label_column]
        engine_cmd = [str(HERE / "engine_side.py"), "text", "--data", str(args.data)]
        engine_cmd += ["--workspace", str(t / "ws"), "--method", "lora", *common, *cols]
        plain_cmd = [str(Path(__file__)), "--data", str(args.data), *common, *cols]
        plain_cmd += ["--threads", str(args.threads), "--skip", str(args.skip)]
        # Plain first, then the engine: neither gets the warmer file cache by being second only.
        plain = run_side(plain_cmd, out=t / "plain.json", label="plain")
        eng = run_side(engine_cmd, out=t / "engine.json", label="engine")
    e_rate = engine_texts_per_s(eng.result, args.skip)
    p_rate = plain.result["texts_per_s"]
    for name, m, rate, acc in (
        ("engine LoRA", eng, e_rate, eng.result["val_accuracy_best"]),
        ("plain peft", plain, p_rate, plain.result["val_accuracy"]),
    ):
        print(
            f"{name:12} {rate:.1f} texts/s in training steps, run {m.process_seconds:.1f} s, "
            f"val accuracy {acc:.3f}, others kept {m.other_cores:.2f} cores busy"
        )
    print(f"RATIO engine / plain texts/s = {e_rate / p_rate:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a .tsv of texts and labels")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-2, help="the head's learning rate")
    parser.add_argument("--backbone-scale", type=float, default=0.03, help="adapters' lr / lr")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of texts/s")
    parser.add_argument("--compare", action="store_true", help="also run the engine, one by one")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.compare:
        sys.path.insert(0, str(HERE))
        compare(args)
        return
    result = plain_run(args)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
