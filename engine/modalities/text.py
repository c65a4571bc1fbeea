"""Texts: labeled text folders and tables, tokenizers, word influence, input_ids exports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.config import RunConfig
from engine.data import TextSample, scan_text_source
from engine.modalities.base import parts
from engine.task import Task

STARTER = "all-MiniLM-L6-v2"


class TextModality:
    """Labeled texts: a folder per class of .txt files, or a .csv / .tsv / .jsonl table."""

    name = "text"
    noun = "texts"
    singular = "text"
    starter = STARTER
    alternatives = f"use the offline starter text backbone {STARTER}"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    has_intensity = False
    caches_prefix = False
    scan_progress = False
    prefetches = False
    runs_frozen_in_onnxruntime = False
    hf_backbones_only = True
    heatmaps = False
    word_influence = True
    accepts_text = True
    lora_pooling = "mean"

    def __repr__(self) -> str:
        return "<modality text>"

    # -- data -----------------------------------------------------------------------------------

    def scan(
        self,
        source: str,
        *,
        min_per_class: int,
        text_column: str | None = None,
        label_column: str | None = None,
        task: Task | None = None,
    ) -> Any:
        return scan_text_source(
            source,
            text_column=text_column,
            label_column=label_column,
            min_per_class=min_per_class,
            task=task,
        )

    def scan_for_run(
        self,
        config: RunConfig,
        *,
        task: Task | None,
    ) -> Any:
        return scan_text_source(
            config.data.path,
            text_column=config.data.text_column or None,
            label_column=config.data.label_column or None,
            min_per_class=config.data.min_per_class,
        )

    def rows(self, samples: Sequence[Any]) -> list[list]:
        return [[s.text, s.label, s.digest, s.origin] for s in samples]

    def samples(self, rows: Sequence[Sequence[Any]], split: str) -> tuple[Any, ...]:
        return tuple(
            TextSample(text=t, label=int(label), split=split, digest=d, origin=o)
            for t, label, d, o in rows
        )

    def check_resumable(self, data: Any, run_id: str) -> None:
        return None  # splits.json holds the texts themselves

    def refs(self, root: str, samples: Sequence[Any]) -> list[str]:
        return [s.text for s in samples]

    # -- models and training --------------------------------------------------------------------

    def reads(self, entry: Any) -> str:
        return "text"

    def build_backbone(self, entry: Any, config: Any, *, load_weights: bool) -> Any:
        backbone, num_features, tokenizer = parts().build_text_backbone(
            entry, config, load_weights=load_weights
        )
        return backbone, num_features, tokenizer, parts().repeated_block_groups(backbone)

    def starter_weights(self) -> Any:
        return parts().text_starter_folder()

    def transforms(self, preprocess: Any, augment: Any) -> tuple[Any, Any] | None:
        return None  # the tokenizer runs in the pipeline's collate

    def token_limit(self, model: Any, max_length: int) -> int:
        return int(parts().token_limit(model.tokenizer, model.backbone, max_length))

    def random_batch(
        self, model: Any, batch: int, *, tokens: int, device: Any, channels_last: bool
    ) -> Any:
        import torch

        vocab = int(getattr(model.tokenizer, "vocab_size", 1000) or 1000)
        ids = torch.randint(min(vocab - 1, 1000), vocab, (batch, tokens), device=device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def pipeline(self, frozen_backbone: bool) -> Any:
        return parts().TextFeaturePipeline if frozen_backbone else parts().TextPipeline

    def advise(self, ctx: Any, model: Any) -> Any:
        return parts().recommend_text(ctx, model)

    def default_epochs(self, config: RunConfig) -> int | None:
        d = config.data
        index = self.scan(
            d.path,
            text_column=d.text_column or None,
            label_column=d.label_column or None,
            min_per_class=d.min_per_class,
        )
        n_train = round(len(index.samples) * (1 - d.val_fraction - d.test_fraction))
        return int(parts().text_epochs(n_train))

    def state_facts(self, *, max_length: int, intensity: str) -> dict[str, Any]:
        return {"max_length": max_length}

    # -- predictions and explanations -------------------------------------------------------------

    def prepare_predictor(self, predictor: Any) -> None:
        predictor.max_length = self.token_limit(predictor.model, predictor.config.data.max_length)

    def split_probs(
        self, predictor: Any, run: Any, refs: Sequence[str], batch_size: int, task: Task
    ) -> Any:
        import numpy as np
        import torch

        from engine.data.tokens import sorted_batches

        texts = refs
        tok = predictor.model.tokenizer
        encoded = tok(list(texts), truncation=True, max_length=predictor.max_length)["input_ids"]
        out = np.zeros((len(texts), len(predictor.classes)), np.float32)
        done, total = 0, len(texts)
        task.report(0, total)
        with torch.inference_mode():
            for idx in sorted_batches([len(ids) for ids in encoded], batch_size):
                task.check_cancelled()
                batch = tok.pad({"input_ids": [encoded[j] for j in idx]}, return_tensors="pt")
                out[idx] = predictor.text_probs(batch)
                done += len(idx)
                task.report(done, total)
        return out

    def classify(
        self,
        predictor: Any,
        files: Sequence[str],
        *,
        texts: Sequence[str],
        text_column: str | None,
        top_k: int,
    ) -> list[Any]:
        named = [(t, t) for t in texts] + parts().texts_of_files(files, text_column)
        return list(predictor.predict_texts(named, top_k=top_k))

    def explain_problem(self, predictor: Any) -> str | None:
        return str(parts().text_problem(predictor))

    # -- export ---------------------------------------------------------------------------------

    def check_inputs(self, predictor: Any, val: Sequence[Any], limit: int) -> tuple[tuple, str]:
        texts = [s.text for s in val if s.text.strip()][:limit] or ["an example text", "another"]
        source = f"{len(texts)} validation texts" if val else "2 example texts"
        enc = predictor.model.tokenizer(
            texts,
            truncation=True,
            max_length=predictor.max_length,
            padding=True,
            return_tensors="pt",
        )
        return (enc["input_ids"], enc["attention_mask"]), source

    def logits_module(self, model: Any) -> Any:
        return parts().TextLogits(model)

    def input_facts(self, model: Any, max_length: int | None) -> dict[str, Any]:
        return {
            "text": {"max_length": int(max_length or 0), "tokenizer": parts().BACKBONE_DIR},
            "inputs": {
                name: {"shape": ["batch", "sequence"], "dtype": "int64"}
                for name in self.input_names
            },
        }

    def manifest_problems(self, manifest: dict[str, Any]) -> list[str]:
        text = manifest.get("text") or {}
        wrong = []
        max_length = text.get("max_length")
        if not (
            isinstance(max_length, int) and not isinstance(max_length, bool) and max_length > 0
        ):
            wrong.append("text.max_length")
        if not isinstance(text.get("tokenizer", ""), str):
            wrong.append("text.tokenizer")
        return wrong

    def card_input(self, state: dict[str, Any]) -> str | None:
        if not state.get("max_length"):
            return None
        return f"- Input: texts, up to {state['max_length']} tokens (longer ones are cut)"

    def hf_source_folder(self, entry: Any) -> Any:
        return parts().text_folder(entry, need_weights=False)

    def hf_pooling(self, model: Any) -> str | None:
        return "mean of last_hidden_state over the tokens where attention_mask is 1"

    def hf_backbone_class(self) -> Any:
        return parts().HFTextBackbone

    def copies_preprocessor(self) -> bool:
        return False

    def open_exported(self, exported: Any) -> None:
        manifest, folder = exported.manifest, exported.folder
        exported.tokenizer = parts().load_tokenizer(
            folder / (manifest.get("text") or {}).get("tokenizer", parts().BACKBONE_DIR),
            model=str(manifest.get("backbone_name") or folder),
        )
        exported.max_length = int(manifest["text"]["max_length"])


TEXT = TextModality()
