"""Forward pass of the frozen text starter: eager torch vs onnxruntime, side by side.

Exports all-MiniLM-L6-v2 with mean pooling (``engine.frozen.text.export_text_encoder``), then runs
the same token batches (the longest ``--texts`` messages of a TSV, batches of 64, dynamic padding)
through ``HFTextBackbone`` in torch and through an onnxruntime session, in interleaved rounds in
this one process, and prints texts/s, the ratio and the largest difference of the features.

    python benchmarks/text_onnx.py --data /tmp/messages.tsv
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from engine.frozen.text import OrtTextEncoder, export_text_encoder, ort_session
from engine.models.text import HFTextBackbone, load_tokenizer
from engine.models.weights import text_starter_folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a .tsv with a text column")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    from transformers import AutoModel

    torch.set_num_threads(args.threads)
    folder = text_starter_folder()
    tokenizer = load_tokenizer(folder)
    backbone = HFTextBackbone(AutoModel.from_pretrained(str(folder))).eval()
    with args.data.open(encoding="utf-8", newline="") as f:
        texts = [r[args.text_column] for r in csv.DictReader(f, delimiter="\t")][: args.texts]
    texts.sort(key=len, reverse=True)
    batches = []
    for i in range(0, len(texts), 64):
        enc = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=128)
        batches.append({k: torch.tensor(enc[k]) for k in ("input_ids", "attention_mask")})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        started = time.perf_counter()
        export_text_encoder(backbone, path, batches[len(batches) // 2])
        print(f"export: {time.perf_counter() - started:.1f} s")
        encoder = OrtTextEncoder(ort_session(path, args.threads), path)
        with torch.inference_mode():
            diff = max(float((encoder(b) - backbone(b)).abs().max()) for b in batches)
            print(f"largest feature difference: {diff:.2g}")
            for r in range(args.rounds):
                rates = {}
                for name, fn in (("torch", backbone), ("onnxruntime", encoder)):
                    t0 = time.perf_counter()
                    for b in batches:
                        fn(b)
                    rates[name] = len(texts) / (time.perf_counter() - t0)
                print(
                    f"round {r + 1}: torch {rates['torch']:.1f} texts/s, onnxruntime "
                    f"{rates['onnxruntime']:.1f} texts/s, ratio "
                    f"{rates['onnxruntime'] / rates['torch']:.2f}x"
                )


if __name__ == "__main__":
    main()
