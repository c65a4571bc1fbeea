"""How much of its intensity range each image uses, and the per-image stretch that fixes it.

Clinical and lab exports often use a sliver of 0-255: a thresholded mask saved with values 0-2
(black in any viewer), 12-bit sensor data in a 16-bit file, a very dark or washed-out export.
A backbone pretrained on photos sees nearly constant images there. The scan measures every image
once, on the picture it already decoded (:func:`image_stats`), and :class:`IntensityReport` tells
the share of narrow images in one sentence. :class:`IntensityStretch` maps each image's
0.5-99.5 % luma window to 0-255 before the backbone's normalisation.

The window is taken on luma and the same linear map is applied to all three channels: that keeps
colour relationships of RGB images (a per-channel stretch would tint them) and is exactly the
per-channel stretch for grayscale images, which are the ones that need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.data.problems import Problem, ProblemKind

# Per-image window stretched to 0-255 (percent of pixels below / at or below).
WINDOW = (0.5, 99.5)
# An image is narrow when 98 % of its pixels (1st-99th percentile) span fewer levels than this.
NARROW_SPREAD = 64
# A narrow image with at most this many grey levels "has only a few" (12-bit data read as 16-bit
# spans 17 levels of 256).
FEW_LEVELS = 32
# A narrow image is very dark below this 99th percentile, washed out above this 1st percentile.
DARK, BRIGHT = 64, 191
# ``auto`` turns the stretch on when at least this share of the images is narrow.
AUTO_SHARE = 0.2

OFF, PERCENTILE, AUTO = "off", "percentile", "auto"


@dataclass(frozen=True)
class IntensityStats:
    """Luma statistics of one decoded image (0-255 scale)."""

    levels: int  # distinct grey levels
    p1: int
    p99: int
    mean: float

    @property
    def narrow(self) -> bool:
        """98 % of the pixels span fewer than NARROW_SPREAD levels and the image has only a few
        grey levels, is very dark or is washed out. A low-contrast mid-grey photo (many levels)
        is not counted: the backbone copes with it. Nor is a flat image (98 % at one level: a
        blank page, a solid-colour icon): there is no range to use."""
        if not 0 < self.p99 - self.p1 < NARROW_SPREAD:
            return False
        return self.levels <= FEW_LEVELS or self.p99 < DARK or self.p1 > BRIGHT


def _luma_histogram(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").histogram(), dtype=np.int64)


def _percentile(cum: np.ndarray, q: float) -> int:
    """The smallest level with at least q % of the pixels at or below it."""
    total = int(cum[-1])
    return int(np.searchsorted(cum, max(1.0, total * q / 100.0)))


def image_stats(image: Image.Image) -> IntensityStats:
    """Cheap statistics of one image's luma: a 256-bin histogram, no copy of the pixels."""
    hist = _luma_histogram(image)
    cum = np.cumsum(hist)
    total = max(1, int(cum[-1]))
    mean = float((hist * np.arange(256)).sum()) / total
    return IntensityStats(
        levels=int((hist > 0).sum()),
        p1=_percentile(cum, 1.0),
        p99=_percentile(cum, 99.0),
        mean=round(mean, 2),
    )


@dataclass(frozen=True)
class IntensityReport:
    """Intensity facts of a dataset: how many images were measured and how many are narrow."""

    measured: int = 0
    narrow: int = 0
    few_levels: int = 0  # narrow images with at most 32 grey levels (thresholded, 12-in-16 bit)
    dark: int = 0  # narrow images whose 99th percentile is below DARK
    bright: int = 0  # narrow images whose 1st percentile is above BRIGHT

    @classmethod
    def of(cls, stats: list[IntensityStats]) -> IntensityReport:
        narrow = [s for s in stats if s.narrow]
        return cls(
            measured=len(stats),
            narrow=len(narrow),
            few_levels=sum(s.levels <= FEW_LEVELS for s in narrow),
            dark=sum(s.p99 < DARK for s in narrow),
            bright=sum(s.p1 > BRIGHT for s in narrow),
        )

    @property
    def share(self) -> float:
        return self.narrow / self.measured if self.measured else 0.0

    @property
    def suggests_stretch(self) -> bool:
        """The rule of ``data.intensity: auto``."""
        return self.narrow > 0 and self.share >= AUTO_SHARE

    def sentence(self) -> str:
        """One sentence for the scan's notices ('' when no image is narrow)."""
        if not self.narrow:
            return ""
        kinds = [
            (self.few_levels, "have only a few grey levels, like a thresholded or 12-bit export"),
            (self.dark, "are very dark"),
            (self.bright, "are washed out"),
        ]
        what = ", ".join(f"{n} {text}" for n, text in kinds if n)
        action = (
            "each image's intensity is therefore stretched to the full range before training and "
            "prediction (data.intensity 'auto'; 'off' turns this off)"
            if self.suggests_stretch
            else "too few to change the recipe; set data.intensity to 'percentile' to stretch "
            "each image's intensity to the full range"
        )
        pct = round(100 * self.share)
        return (
            f"{self.narrow} of {self.measured} images ({pct}%) use a narrow part of the "
            f"intensity range{f' ({what})' if what else ''}; {action}."
        )

    def problem(self, path: str) -> Problem | None:
        """The scan's notice (None when no image is narrow); ``path``: an example image."""
        text = self.sentence()
        if not text:
            return None
        return Problem(kind=ProblemKind.NARROW_INTENSITY, message=text, path=path)

    def to_dict(self) -> dict[str, int]:
        return {
            "measured": self.measured,
            "narrow": self.narrow,
            "few_levels": self.few_levels,
            "dark": self.dark,
            "bright": self.bright,
        }


def resolve_intensity(mode: str, report: IntensityReport | None) -> str:
    """The stretch a run uses: ``off`` or ``percentile`` (``auto`` follows the scan)."""
    mode = str(mode)
    if mode == AUTO:
        return PERCENTILE if report is not None and report.suggests_stretch else OFF
    return PERCENTILE if mode == PERCENTILE else OFF


def stretch_lut(image: Image.Image, window: tuple[float, float] = WINDOW) -> list[int] | None:
    """The 256-entry lookup table that maps the image's luma window to 0-255, or None when
    the image is flat (nothing to stretch)."""
    cum = np.cumsum(_luma_histogram(image))
    lo, hi = _percentile(cum, window[0]), _percentile(cum, window[1])
    if hi <= lo:  # most pixels share one level: fall back to the full min..max
        nonzero = np.flatnonzero(np.diff(np.concatenate([[0], cum])))
        lo, hi = int(nonzero[0]), int(nonzero[-1])
    if hi <= lo:
        return None
    levels = (np.arange(256, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(levels).clip(0, 255).astype(np.uint8).tolist()


class IntensityStretch:
    """Transform step: PIL RGB image -> the same image with its luma window stretched to
    0-255 (applied to every channel). Picklable for DataLoader workers."""

    def __init__(self, window: tuple[float, float] = WINDOW) -> None:
        self.window = (float(window[0]), float(window[1]))

    def __call__(self, image: Image.Image) -> Image.Image:
        lut = stretch_lut(image, self.window)
        if lut is None:
            return image
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return rgb.point(lut * 3)

    def __repr__(self) -> str:
        return f"IntensityStretch(window={self.window})"


def stored_intensity(state: dict) -> str:
    """The stretch a run was trained with, from its state.json; runs from before the choice
    existed (no entry) used the pixels as they were."""
    value = state.get("intensity") if isinstance(state, dict) else None
    return PERCENTILE if value == PERCENTILE else OFF


def intensity_reason(mode: str, resolved: str, report: IntensityReport | None) -> str:
    """One log sentence: which stretch the run uses and why."""
    if resolved == PERCENTILE:
        why = (
            f"the scan found {report.narrow} of {report.measured} images with a narrow intensity "
            "range"
            if mode == AUTO and report is not None
            else "data.intensity is 'percentile'"
        )
        return (
            f"Intensity: each image's {WINDOW[0]:g}-{WINDOW[1]:g}% brightness window is "
            f"stretched to 0-255 ({why})."
        )
    if mode == AUTO:
        return "Intensity: pixels are used as decoded (the scan found no narrow-range images)."
    return "Intensity: pixels are used as decoded (data.intensity is 'off')."
