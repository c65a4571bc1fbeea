"""Generated DICOM files for tests (pydicom writes them; nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def dicom_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: tuple[int, int, list[int]] | None = None,
    **tags: Any,
) -> Dataset:
    """A Secondary Capture dataset around ``pixels``: (rows, cols) grey, (frames, rows, cols)
    multi-frame grey, or (rows, cols, 3) colour. The dtype sets BitsAllocated and the sign;
    ``voi_lut`` is (first mapped value, bits per entry, entries)."""
    pixels = np.ascontiguousarray(pixels)
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric not in _GREY
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-00417"
    ds.PatientBirthDate = "19700101"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    frames = pixels.shape[0] if pixels.ndim == 3 and not colour else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None or intercept is not None:
        ds.RescaleSlope = slope if slope is not None else 1
        ds.RescaleIntercept = intercept if intercept is not None else 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        first, lut_bits, entries = voi_lut
        item = Dataset()
        # Both tags have an ambiguous VR (US or SS / OW): name it.
        item.add_new(0x00283002, "US", [len(entries), first, lut_bits])  # LUT Descriptor
        item.add_new(0x00283006, "US", list(entries))  # LUT Data
        ds.VOILUTSequence = [item]
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    return ds


_GREY = ("MONOCHROME1", "MONOCHROME2")


def write_dicom(path: str | Path, pixels: np.ndarray, *, rle: bool = False, **kw: Any) -> Path:
    """:func:`dicom_dataset` of ``pixels`` written to ``path`` (RLE Lossless when ``rle``)."""
    ds = dicom_dataset(pixels, **kw)
    if rle:
        ds.compress(RLELossless)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def disc_slice(seed: int, *, disc: bool, size: int = 48) -> np.ndarray:
    """A 12-bit CT-like slice (uint16, stored values; HU = value - 1024): a dark noisy
    background, plus a bright small disc when ``disc``."""
    rng = np.random.default_rng(seed)
    img = rng.normal(1024 - 300, 40, (size, size))
    if disc:
        yy, xx = np.mgrid[:size, :size]
        cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 6) ** 2] = 1024 + 900
    return np.clip(img, 0, 4095).astype(np.uint16)


def dicom_class_folder(root: str | Path, per_class: int = 6, *, suffix: str = ".dcm") -> Path:
    """``root``/disc and ``root``/none of generated 12-bit slices (``suffix`` "" for files
    without an extension)."""
    root = Path(root)
    for label, disc in (("disc", True), ("none", False)):
        for i in range(per_class):
            write_dicom(
                root / label / f"img{i:02d}{suffix}",
                disc_slice(i + (100 if disc else 0), disc=disc),
                bits_stored=12,
                slope=1.0,
                intercept=-1024.0,
                window=(40.0, 400.0),
            )
    return root
