"""How a backbone wants its images: input size, normalisation and resize policy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Preprocess:
    """Input geometry and normalisation a backbone was pretrained with."""

    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"  # "bilinear" or "bicubic"
    crop_pct: float = 0.875  # evaluation: resize to input_size / crop_pct, then centre-crop
    # "percentile": each image's 0.5-99.5 % luma window is stretched to 0-255 first (a run's
    # resolved data.intensity, see engine.data.intensity); "off": pixels are used as decoded.
    intensity: str = "off"
    # DICOM images: the window of data.dicom_window (engine.data.dicom.WINDOWS), so training,
    # evaluation, prediction and an export decode them the same way.
    dicom_window: str = "file"
    # Multi-frame DICOM files (data.dicom_frames): "middle" predicts a file from its middle
    # frame; "all" from the mean of its frames' probabilities (engine.evaluation.predict).
    dicom_frames: str = "middle"

    @property
    def resize_size(self) -> int:
        return round(self.input_size / self.crop_pct)
