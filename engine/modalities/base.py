"""What a kind of data (images, texts, and later DICOM) must provide: one protocol.

The engine chooses a run's modality once, with :func:`engine.modalities.modality_of`, and then
asks the object instead of comparing strings. The name ("image", "text") stays the value stored
in run folders, configs and refit_model.json.

Modalities sit at the bottom of the engine: they import only ``engine.data``, ``engine.config``
and the like. Their parts that live in the layers above (pipelines, explanations, Hugging Face
wrappers) are named in ``engine.modalities.parts`` and imported on first use, so the import graph
points one way: the layers above import ``engine.modalities``, never the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from engine.config import RunConfig
from engine.task import Task


@runtime_checkable
class Modality(Protocol):
    """One kind of data a run classifies. Arguments typed ``Any`` are the engine's objects of
    the layers above (a Classifier, a Predictor, an ExportedModel, a catalog entry), used by
    their attributes."""

    #: the stored value: run folders (splits.json, state.json), configs, refit_model.json
    name: str
    #: what the user reads, plural: "images", "texts"
    noun: str
    #: one of them: "image", "text"
    singular: str
    #: the offline starter backbone of the catalog
    starter: str
    #: what to suggest when a backbone's weights are missing (a clause after "or")
    alternatives: str
    #: the exported model's inputs, in order
    input_names: tuple[str, ...]
    #: pixels are stretched by ``data.intensity``; state.json and summary.json record it
    has_intensity: bool
    #: ``adapt.cache_prefix`` can cache the frozen prefix's activations
    caches_prefix: bool
    #: the scan reports its progress (a bar in `refit scan`)
    scan_progress: bool
    #: the scan can run in the prefetching child of `refit train` (engine.data.prefetch)
    prefetches: bool
    #: a frozen backbone can run in onnxruntime for predictions
    runs_frozen_in_onnxruntime: bool
    #: every backbone comes from Hugging Face transformers (so the hf export always applies)
    hf_backbones_only: bool
    #: explanations: Grad-CAM heatmaps, or the influence of each word
    heatmaps: bool
    word_influence: bool
    #: typed text (``refit predict --text``) can be classified
    accepts_text: bool
    #: how LoRA's describe_targets names the backbone's pooling
    lora_pooling: str

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
        """The index (DatasetIndex, TextIndex) of a labeled source; problems inside it."""
        ...

    def scan_for_run(
        self,
        config: RunConfig,
        *,
        task: Task | None,
    ) -> Any:
        """The index a run trains on (the prefetching child's scan where there is one)."""
        ...

    def rows(self, samples: Sequence[Any]) -> list[list]:
        """Samples as the rows of splits.json."""
        ...

    def samples(self, rows: Sequence[Sequence[Any]], split: str) -> tuple[Any, ...]:
        """The rows of splits.json back as samples."""
        ...

    def check_resumable(self, data: Any, run_id: str) -> None:
        """Raise DatasetError when a stored split can no longer be trained on."""
        ...

    def refs(self, root: str, samples: Sequence[Any]) -> list[str]:
        """What names each sample in predictions (a file path, the text itself)."""
        ...

    # -- models and training --------------------------------------------------------------------

    def reads(self, entry: Any) -> str:
        """What a catalog entry reads, in a few characters (`refit backbones`)."""
        ...

    def build_backbone(self, entry: Any, config: Any, *, load_weights: bool) -> Any:
        """(backbone, feature width, tokenizer or None, layer-group spec) of a catalog entry."""
        ...

    def starter_weights(self) -> Any:
        """Where the offline starter's weights are (a Path)."""
        ...

    def transforms(self, preprocess: Any, augment: Any) -> tuple[Any, Any] | None:
        """(evaluation, training) transforms of a batch pipeline; None when there are none."""
        ...

    def token_limit(self, model: Any, max_length: int) -> int:
        """Tokens per example after the model's own limit; 0 when the model reads no tokens."""
        ...

    def random_batch(
        self, model: Any, batch: int, *, tokens: int, device: Any, channels_last: bool
    ) -> Any:
        """Random model inputs of ``batch`` examples (``tokens`` long), to measure memory."""
        ...

    def pipeline(self, frozen_backbone: bool) -> Any:
        """The pipeline class: features computed once (frozen) or batches through the network."""
        ...

    def advise(self, ctx: Any, model: Any) -> Any:
        """Method auto's Advice for ``model`` on ``ctx``'s training data."""
        ...

    def default_epochs(self, config: RunConfig) -> int | None:
        """Epochs for a new run given no --epochs; None keeps the config's."""
        ...

    def state_facts(self, *, max_length: int, intensity: str) -> dict[str, Any]:
        """The facts of the inputs state.json records."""
        ...

    # -- predictions and explanations -------------------------------------------------------------

    def prepare_predictor(self, predictor: Any) -> None:
        """Set what the Predictor needs to read inputs (transform, or tokenizer limit)."""
        ...

    def split_probs(
        self, predictor: Any, run: Any, refs: Sequence[str], batch_size: int, task: Task
    ) -> Any:
        """Class probabilities (N x C numpy) of a split's ``refs`` (from :meth:`refs`)."""
        ...

    def classify(
        self,
        predictor: Any,
        files: Sequence[str],
        *,
        texts: Sequence[str],
        text_column: str | None,
        top_k: int,
    ) -> list[Any]:
        """Predictions (a Predictor's or an ExportedModel's) of ``files`` and typed ``texts``."""
        ...

    def explain_problem(self, predictor: Any) -> str | None:
        """Why the run cannot be explained by this modality's own rule (``""``: it can), or
        None when the generic heatmap rule applies."""
        ...

    # -- export ---------------------------------------------------------------------------------

    def check_inputs(self, predictor: Any, val: Sequence[Any], limit: int) -> tuple[tuple, str]:
        """(inputs, where they come from) of the check an export runs."""
        ...

    def logits_module(self, model: Any) -> Any:
        """The classifier as a tensors-in, logits-out module (traced and exported)."""
        ...

    def input_facts(self, model: Any, max_length: int | None) -> dict[str, Any]:
        """refit_model.json's facts of what the model reads."""
        ...

    def manifest_problems(self, manifest: dict[str, Any]) -> list[str]:
        """The names of this modality's refit_model.json fields that have the wrong type."""
        ...

    def card_input(self, state: dict[str, Any]) -> str | None:
        """The model card's "Input" line; None for none."""
        ...

    def hf_source_folder(self, entry: Any) -> Any:
        """The Hugging Face folder a backbone was built from; raises ModelError."""
        ...

    def hf_pooling(self, model: Any) -> str | None:
        """How the hf export's backbone pools (None: by the backbone's kind)."""
        ...

    def hf_backbone_class(self) -> Any:
        """The wrapper of a reloaded transformers model (the hf export's check)."""
        ...

    def copies_preprocessor(self) -> bool:
        """The hf export copies the source's preprocessor_config.json."""
        ...

    def open_exported(self, exported: Any) -> None:
        """Set what an ExportedModel needs to read inputs, from its manifest."""
        ...


def parts() -> Any:
    """``engine.modalities.parts``: the objects of the layers above, imported by name."""
    from engine.modalities import parts as module

    return module
