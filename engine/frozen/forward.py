"""The forward pass of a frozen network: onnxruntime on the CPU when chosen and checked, else torch.

``device.runtime``: ``auto`` uses onnxruntime for a CPU placement and torch on CUDA and MPS
(where torch's own kernels are the fast ones); ``onnxruntime`` asks for it (on a GPU run it is
declined with a log line: it would move the work to the slower CPU); ``torch`` never uses it.
The session is prepared on the first batch, so that the check runs on the user's own images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import Runtime
from engine.frozen.cache import fingerprint, prepare, sentence
from engine.frozen.early import EarlyExport
from engine.frozen.keys import cache_key
from engine.frozen.onnx import OnnxSession, OnnxUnavailable, check, export, ort_version
from engine.frozen.records import recorded_difference, signed_record
from engine.training.devices import Placement

#: Images of the first batch that torch and onnxruntime both run before onnxruntime is used.
CHECK_ROWS = 4


def use_onnxruntime(runtime: Runtime | str, device: torch.device) -> bool:
    """Whether frozen layers should run in onnxruntime for this runtime choice and device."""
    runtime = Runtime(runtime)
    if runtime is Runtime.TORCH or device.type != "cpu":
        return False
    return bool(ort_version())


def onnx_parts(parts: dict[str, Any]) -> dict[str, Any]:
    """``parts`` with the versions of the libraries that make and run the export."""
    return {**parts, "torch": str(torch.__version__), "onnxruntime": ort_version(), "v": 1}


def onnx_key(parts: dict[str, Any]) -> str:
    """A stable file name for an export of the network that ``parts`` describe."""
    return cache_key(onnx_parts(parts))


class OnnxChoice:
    """What the frozen runners share: whether onnxruntime is wanted and possible here, its
    session once prepared, and the log lines that say which runtime runs."""

    def __init__(
        self,
        *,
        placement: Placement,
        runtime: Runtime | str,
        cache_dir: Path | None,
        log: Callable[[str, str], None] | None,
        what: str,
    ) -> None:
        self.placement, self.cache_dir, self.what = placement, cache_dir, what
        self.log = log or (lambda text, level: None)
        self.session: OnnxSession | None = None
        self.quiet = False  # the runtime in use was said already (see FrozenForward.accept_early)
        wanted = Runtime(runtime)
        self.decided = cache_dir is None or not use_onnxruntime(wanted, placement.device)
        if wanted is Runtime.ONNXRUNTIME and placement.device.type != "cpu":
            self.log(
                f"onnxruntime runs on the CPU only here; {what} runs in torch on "
                f"{placement.device.type}.",
                "info",
            )
        elif wanted is Runtime.ONNXRUNTIME and not ort_version():
            self.log(f"onnxruntime is not installed; {what} runs in torch.", "warning")

    @property
    def name(self) -> str:
        """The runtime in use: "onnxruntime" or "torch"."""
        return "onnxruntime" if self.session is not None else "torch"

    def _open(
        self,
        key_parts: dict[str, Any],
        *,
        make: Callable[[Path], str],
        check: Callable[[OnnxSession], float],
        weights: nn.Module,
        rows: int,
        outputs: str = "",
    ) -> None:
        """Prepare the session (engine/frozen/cache.py) and say which runtime runs; on any
        failure torch runs, after one warning."""
        self.decided = True
        assert self.cache_dir is not None
        full = onnx_parts(key_parts)
        path = self.cache_dir / f"{cache_key(full)}.onnx"
        started = time.monotonic()
        try:
            prepared = prepare(
                path,
                make=make,
                check=check,
                threads=torch.get_num_threads(),
                weights=fingerprint(weights),
                parts=full,
            )
        except (OnnxUnavailable, OSError) as exc:
            self.log(f"{self.what.capitalize()} runs in torch: {exc}.", "warning")
            return
        self.session = prepared.session
        seconds = time.monotonic() - started
        if not self.quiet:
            self.log(sentence(self.what, prepared, rows, seconds, outputs), "info")


class FrozenForward(OnnxChoice):
    """Calls ``module`` (frozen, eval mode) on batches, in onnxruntime or torch.

    ``key_parts`` must name everything the network's output depends on (architecture, weight
    file and its stamp, input size, cut point); the export is cached under their hash in
    ``cache_dir``. ``log(text, level)`` receives one line saying which runtime runs and why.
    ``argmax``: the outputs are class scores, so the check also compares top classes.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        placement: Placement,
        runtime: Runtime | str,
        cache_dir: Path | None,
        key_parts: dict[str, Any],
        log: Callable[[str, str], None] | None = None,
        what: str = "the frozen network",
        argmax: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(
            placement=placement, runtime=runtime, cache_dir=cache_dir, log=log, what=what
        )
        self.module = module
        self.channels_last = channels_last
        self.key_parts = key_parts
        self.argmax = argmax
        self._weights: str | None = None  # the module's fingerprint, once needed

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The float32 CPU outputs of ``x`` (on the placement's device)."""
        if not self.decided:
            self._prepare(x)
        if self.session is not None:
            return self.session(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self.placement.autocast():
            return self.module(x).float().cpu()

    def accepts(self, export: EarlyExport) -> bool:
        """Whether features made with ``export`` would be taken (see :meth:`accept_early`),
        without saying anything: the run may wait for the child's features first."""
        return self._difference(export) is not None

    def accept_early(self, export: EarlyExport, rows: int) -> bool:
        """Whether features the prefetching child computed with ``export`` (engine/frozen/
        early.py) are this network's: onnxruntime is wanted here, the child ran the very file
        this network's key names, and its signed record was checked against these weights.
        Says so in the log (once: a session opened later for the rest does not repeat it)."""
        difference = self._difference(export)
        if difference is None:
            return False
        if self.session is not None:  # opened (and said) by this run: the child ran its export
            self.log(
                f"{rows} images went through it in a second process, which began while the run "
                "loaded its libraries.",
                "info",
            )
            return True
        self.quiet = True
        self.log(
            f"{self.what.capitalize()} runs in onnxruntime on the CPU: the export checked against "
            f"torch when first used (largest difference {difference:.1e}), unchanged since; "
            f"{rows} images went through it while the run started.",
            "info",
        )
        return True

    def _difference(self, export: EarlyExport) -> float | None:
        """The checked difference the signed record of ``export`` holds for these weights, or
        None when the export is not this network's (or torch runs here)."""
        if self.cache_dir is None or (self.decided and self.session is None):  # torch runs
            return None
        full = onnx_parts(self.key_parts)
        path = self.cache_dir / f"{cache_key(full)}.onnx"
        if export.name != path.name:
            return None
        if self._weights is None:  # frozen: hashed once however often the child is asked about
            self._weights = fingerprint(self.module)
        return recorded_difference(signed_record(path), export.digest, self._weights)

    def open_session(self, x: torch.Tensor) -> None:
        """Decide the runtime now, on the batch ``x`` (its first rows check a new export),
        instead of on the first batch of a pass."""
        if not self.decided:
            self._prepare(x)

    def _prepare(self, x: torch.Tensor) -> None:
        rows = x[:CHECK_ROWS].cpu()
        self._open(
            self.key_parts,
            make=lambda path: export(self.module, x[:1].cpu(), path),
            check=lambda session: check(
                session, self.module, rows, argmax=self.argmax, channels_last=self.channels_last
            ),
            weights=self.module,
            rows=len(rows),
        )
