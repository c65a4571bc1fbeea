"""Decoding one DICOM file into the RGB picture a backbone sees, or an ImageError naming the file.

Why a module of its own: a DICOM pixel is a measurement (Hounsfield units, detector counts), not
a brightness. Which band of values becomes grey is a choice (the *window*); the same CT slice is
a different picture under a lung window and under a bone window, and a model trained under one
must be shown the other the same way. The pipeline follows the standard order (PS3.4 N.2):

1. modality LUT: RescaleSlope / RescaleIntercept or the Modality LUT Sequence
   (``pydicom.pixels.apply_modality_lut``), so stored values become real units (HU for CT);
2. VOI LUT: the window, one of :data:`WINDOWS`: ``"file"`` is the file's own VOI LUT Sequence or
   WindowCenter / WindowWidth (``pydicom.pixels.apply_voi_lut``), falling back to
   ``"percentile"`` (a robust 0.5-99.5 % window of this image) when the file has none; the named
   presets are the usual radiology windows (:data:`PRESETS`, centre / width in HU);
3. MONOCHROME1 (white is low) inverted, so bright means high everywhere;
4. to 8 bits, then grey copied to RGB. Colour images (RGB, YBR_* converted with
   ``pydicom.pixels.convert_color_space``, PALETTE COLOR through its palette) skip 1-3.

Multi-frame files give their middle frame, or the frame a sample's path names
(``file.dcm#frame=N``, :func:`split_frame`; ``data.dicom_frames`` "all" makes one sample a frame,
see :mod:`engine.data.frames`); only that one frame is decoded, never the whole stack. Compressed
transfer syntaxes are decoded only by decoders with permissive licences (no GPL plugin): RLE
Lossless (pydicom itself), JPEG Baseline 8-bit, JPEG 2000 and JPEG 2000 Lossless (Pillow), JPEG-LS
Lossless and Near-Lossless (pyjpegls, MIT, with CharLS, BSD-3-Clause). JPEG Lossless (process 14)
and JPEG Extended 12-bit (their decoder, pylibjpeg-libjpeg, is GPL), HTJ2K (a permissive decoder
exists, pylibjpeg-openjpeg, but no encoder writes a file to test it with), deflate-compressed
files, and JPEG-LS where pyjpegls is missing, get a sentence naming their Transfer Syntax UID
instead; a deflated file is refused from its file meta alone (:func:`declared_syntax`), before
pydicom would inflate all of it. Tags that contradict each other (LUT descriptors longer than their
data, a palette file without a palette, a NaN rescale) are one sentence too, never pydicom's
exception.

Privacy: no sentence this module writes quotes a tag's value or a pydicom message (which could
quote one), and pydicom's own warnings and log records are kept out of every log
(:func:`_quiet_pydicom`), so patient names, IDs and birth dates never reach a log or a problem
list.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from typing import Any

import numpy as np
from PIL import Image

from engine.data.problems import ImageError, ProblemKind

#: The window choices of ``DataConfig.dicom_window``.
WINDOWS: tuple[str, ...] = (
    "file",
    "percentile",
    "brain",
    "subdural",
    "lung",
    "bone",
    "soft-tissue",
)
#: Window centre and width (HU) of the named presets: the usual CT windows (Radiopaedia).
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "soft-tissue": (40.0, 400.0),
}
PERCENTILES = (0.5, 99.5)
#: Transfer syntaxes decoded here (the rest get a sentence naming their UID).
SUPPORTED_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    # Through pyjpegls (MIT; CharLS inside, BSD-3-Clause), pydicom's own JPEG-LS plugin.
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless Image Compression",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless) Image Compression",
}
#: The module each plugin-decoded syntax needs (an installation without it names the syntax).
_DECODER_MODULES: dict[str, str] = {
    "1.2.840.10008.1.2.4.80": "jpeg_ls",
    "1.2.840.10008.1.2.4.81": "jpeg_ls",
}
#: Pixels of one DICOM frame at most: its measurements pass through float64 arrays (the modality
#: and VOI LUTs), about 30 bytes a pixel at the peak, so Pillow's 89-million limit would let one
#: file take 2.5 GB (and the scan decodes several at once). 40 million holds the largest
#: mammograms (4096 x 5625) and radiographs.
MAX_PIXELS = 40_000_000
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".nrrd", ".mha", ".mhd")

_PREAMBLE = 128
_MAGIC = b"DICM"
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: The window of a decode that names none: the file's own. A constant that nothing changes; a
#: run's window travels explicitly (its transform's ``dicom_window``, the scan's ``window``), so
#: two runs in one process (a training thread beside an evaluation) never see each other's.
DEFAULT_WINDOW = "file"


def is_dicom(data: bytes) -> bool:
    """Whether ``data`` starts like a DICOM Part 10 file ("DICM" after the 128-byte preamble)."""
    return data[_PREAMBLE : _PREAMBLE + 4] == _MAGIC


#: Deflated Explicit VR Little Endian: the whole dataset is zlib-compressed, and pydicom inflates
#: it in one call with no size limit (a 1 MiB file can hold gigabytes), so it is refused from its
#: file meta alone, before any parsing.
DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT")
_META_LIMIT = 64 * 1024  # a file meta group is a few hundred bytes


def declared_syntax(data: bytes) -> str | None:
    """The Transfer Syntax UID named in the file meta group of a Part 10 file, read by hand
    (explicit VR little endian, at most 64 KiB, no parser involved); None when it names none."""
    if not is_dicom(data):
        return None
    pos, end = _PREAMBLE + 4, min(len(data), _PREAMBLE + 4 + _META_LIMIT)
    while pos + 8 <= end:
        group, element = int.from_bytes(data[pos : pos + 2], "little"), data[pos + 2 : pos + 4]
        if group != 2:
            return None
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, start = int.from_bytes(data[pos + 8 : pos + 12], "little"), pos + 12
        else:
            length, start = int.from_bytes(data[pos + 6 : pos + 8], "little"), pos + 8
        if element == b"\x10\x00":  # (0002,0010) TransferSyntaxUID
            return data[start : start + min(length, 64)].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + length
    return None


def parse_header(data: bytes, **kw: Any) -> Any:
    """pydicom's parse of ``data`` (keyword arguments go to ``dcmread``), quiet, and refusing a
    deflated dataset before inflating it (ValueError); the group keys read headers through here."""
    if declared_syntax(data) == DEFLATED:
        raise ValueError("a deflated DICOM dataset is not inflated")
    return _parse(data, **kw)


#: What joins a multi-frame file's path and a frame number in a sample's path: ``a.dcm#frame=3``.
FRAME_MARK = "#frame="
#: Frames of one file that become samples at most (``data.dicom_frames`` "all"): evenly spaced.
MAX_FRAMES_PER_FILE = 512


def frame_path(path: str, frame: int) -> str:
    """The sample path of frame ``frame`` (from 0) of the DICOM file at ``path``."""
    return f"{path}{FRAME_MARK}{frame}"


def split_frame(path: str) -> tuple[str, int | None]:
    """(file path, frame number) of a sample path made by :func:`frame_path`; (path, None) for
    any other path (a file whose own name holds the mark keeps it: the caller checks that)."""
    head, mark, tail = str(path).rpartition(FRAME_MARK)
    if mark and head and tail.isascii() and tail.isdigit() and len(tail) <= 9:
        return head, int(tail)
    return str(path), None


def frame_count(data: bytes) -> int:
    """NumberOfFrames of the DICOM file ``data`` (its header only; 1 for a single-frame file and
    for anything unreadable, which the decode then names)."""
    try:
        ds = parse_header(data, stop_before_pixels=True)
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except Exception:  # a damaged header: the scan's decode says what is wrong with it
        return 1


def is_volume_name(name: str) -> bool:
    """Whether a file name is that of a 3-D volume format (NIfTI, MGH, NRRD, MetaImage)."""
    return name.lower().endswith(VOLUME_SUFFIXES)


def check_window(window: str) -> str:
    """``window`` when it is one of :data:`WINDOWS`, else ValueError naming the choices."""
    if window not in WINDOWS:
        raise ValueError(f"The DICOM window {window!r} is not one of {', '.join(WINDOWS)}.")
    return window


def decode_dicom(
    data: bytes, name: str, *, window: str | None = None, frame: int | None = None
) -> Image.Image:
    """The RGB picture of the DICOM file ``data``, windowed by ``window`` (None:
    :data:`DEFAULT_WINDOW`): its frame ``frame`` (from 0), or its middle frame when None. Only
    that frame is decoded. Raises ImageError with one sentence naming ``name``."""
    chosen = check_window(window or DEFAULT_WINDOW)
    ds = _read(data, name)
    array, photometric = _frame(ds, name, frame)
    try:
        with np.errstate(all="ignore"):
            if array.ndim == 3:
                rgb = _colour(array, ds, photometric)
            elif photometric == "PALETTE COLOR":
                rgb = palette_to_rgb(array, ds)
            else:
                rgb = np.repeat(_grey(array, ds, photometric, chosen, name)[..., None], 3, axis=2)
    except (ImageError, MemoryError):
        raise
    except Exception:  # pydicom's LUT code raises many types on contradictory tags
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            "has pixel tags that contradict each other (its photometric interpretation, "
            "rescale, LUT or window tags)",
            remedy="re-export it",
        ) from None
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def declares_deidentified(data: bytes) -> bool | None:
    """Whether a DICOM file declares PatientIdentityRemoved "YES" (None: not a readable DICOM
    file). Only this flag is read; no identifying tag is looked at."""
    try:
        ds = parse_header(data, stop_before_pixels=True)
    except Exception:
        return None
    return str(ds.get("PatientIdentityRemoved", "")).strip().upper() == "YES"


# -- reading --------------------------------------------------------------------------------------


def _fail(name: str, kind: ProblemKind, reason: str, *, remedy: str = "") -> ImageError:
    """The ImageError of ``name``; ``remedy``: what to do, when this file's problem has its own
    (a scan then adds only that the file is skipped, not the kind's generic advice)."""
    reason = f"{reason}; {remedy}" if remedy else reason
    return ImageError(f"{name} {reason}.", kind, reason, advised=bool(remedy))


@functools.cache
def _quiet_pydicom() -> None:
    """Keep pydicom's own words out of every log: its warnings and log records may quote a
    tag's value (an invalid PatientName or PatientBirthDate, say). Values are not validated
    either: a file is judged by whether its pixels decode."""
    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    log = logging.getLogger("pydicom")
    log.propagate = False
    log.handlers[:] = [logging.NullHandler()]


_WARNINGS = r"pydicom(\.|$)"


def _silence_warnings() -> None:
    """A filter, not ``catch_warnings`` (not thread-safe; the scan decodes in threads); re-added
    when a ``catch_warnings`` block elsewhere restored older filters."""
    if not any(
        f[0] == "ignore" and f[3] is not None and f[3].pattern == _WARNINGS
        for f in warnings.filters
    ):
        warnings.filterwarnings("ignore", module=_WARNINGS)


def _parse(data: bytes, **kw: Any) -> Any:
    import pydicom

    _quiet_pydicom()
    _silence_warnings()
    return pydicom.dcmread(io.BytesIO(data), **kw)


def _read(data: bytes, name: str) -> Any:
    """The parsed dataset; ImageError for a file that is not DICOM or has no image in it."""
    if not is_dicom(data):
        raise _fail(
            name,
            ProblemKind.NOT_IMAGE,
            'is not a DICOM file (it lacks the "DICM" marker at byte 128)',
        )
    if declared_syntax(data) == DEFLATED:
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            f"is compressed with Transfer Syntax {DEFLATED} (Deflated Explicit VR Little Endian), "
            "which Refit Studio cannot decode",
            remedy="convert it to uncompressed DICOM or PNG first",
        )
    try:
        ds = _parse(data)
    except MemoryError:
        raise
    except ImportError:  # a build without pydicom (seen: a bundle built before it was added)
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            "cannot be read: this installation lacks DICOM support (the pydicom package)",
            remedy="reinstall Refit Studio first",
        ) from None
    except Exception:  # pydicom raises many types on damaged input
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            "is a damaged DICOM file (its tags cannot be read)",
            remedy="re-export it",
        ) from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        # A Part 10 file (the "DICM" marker) always names its transfer syntax.
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            "is a damaged DICOM file (its header names no Transfer Syntax)",
            remedy="re-export it",
        )
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise _fail(
            name,
            ProblemKind.NOT_IMAGE,
            "is a DICOM file without pixel data (a report, a structured document or a "
            "DICOMDIR, not an image)",
        )
    return ds


def _syntax(ds: Any) -> tuple[str, str]:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return "1.2.840.10008.1.2", "Implicit VR Little Endian"
    return str(uid), str(getattr(uid, "name", "") or "an unknown transfer syntax")


@functools.cache
def _has_decoder(uid: str) -> bool:
    """Whether the decoder ``uid`` needs beyond pydicom, numpy and Pillow is installed."""
    import importlib.util

    module = _DECODER_MODULES.get(uid)
    return module is None or importlib.util.find_spec(module) is not None


def _frame(ds: Any, name: str, frame: int | None = None) -> tuple[np.ndarray, str]:
    """Frame ``frame``'s pixels (None: the middle frame's; rows x columns, or x samples) and
    the photometric interpretation they are in; ImageError for an undecodable or oversized file."""
    from pydicom.pixels import pixel_array

    uid, syntax = _syntax(ds)
    if uid not in SUPPORTED_SYNTAXES or not _has_decoder(uid):
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            f"is compressed with Transfer Syntax {uid} ({syntax}), which Refit Studio cannot "
            "decode",
            remedy="convert it to uncompressed DICOM or PNG first",
        )
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise _fail(
            name, ProblemKind.UNREADABLE, "is a DICOM image without a readable size (Rows/Columns)"
        ) from None
    limit = min(Image.MAX_IMAGE_PIXELS or MAX_PIXELS, MAX_PIXELS)
    if rows < 1 or columns < 1 or frames < 1 or samples not in (1, 3):
        raise _fail(name, ProblemKind.UNREADABLE, "is a DICOM image with an impossible size")
    if limit and rows * columns > limit:
        raise _fail(
            name,
            ProblemKind.TOO_LARGE,
            f"has {columns}x{rows} pixels, more than the safety limit of {int(limit):,}",
        )
    if frame is not None and not 0 <= frame < frames:
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            f"has {frames} frame{'s' if frames != 1 else ''}, so no frame {frame}",
            remedy="scan the folder again",
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        array = pixel_array(ds, index=frames // 2 if frame is None else frame, as_rgb=False)
    except MemoryError:
        raise
    except Exception:
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            f"cannot be decoded (its pixel data, Transfer Syntax {uid} ({syntax}), is damaged "
            "or shorter than its size says)",
            remedy="re-export it",
        ) from None
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise _fail(name, ProblemKind.UNREADABLE, "is a DICOM image with an impossible size")
    return array, photometric


# -- grey images: modality LUT -> VOI LUT -> MONOCHROME1 -> 8 bits --------------------------------


def _grey(array: np.ndarray, ds: Any, photometric: str, window: str, name: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    if array.dtype.kind == "f" and not np.isfinite(array).all():
        # Float pixel data (parametric maps) may mark background as NaN: it becomes the lowest
        # finite value; a frame with no finite value at all shows nothing.
        finite = np.isfinite(array)
        if not finite.any():
            raise _fail(name, ProblemKind.UNREADABLE, "has no pixel value that is a finite number")
        array = np.where(finite, array, array[finite].min())
    values = apply_modality_lut(array, ds)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        # A NaN or infinite RescaleSlope / Intercept: every pixel would be the same grey.
        raise _fail(
            name,
            ProblemKind.UNREADABLE,
            "has a rescale (RescaleSlope / RescaleIntercept) that is not a finite number",
            remedy="re-export it",
        )
    unit = window_unit(values, ds, window)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return np.rint(unit * 255.0).astype(np.uint8)


def window_unit(values: np.ndarray, ds: Any, window: str) -> np.ndarray:
    """``values`` (after the modality LUT) through the window, as floats in [0, 1]."""
    if window in PRESETS:
        center, width = PRESETS[window]
        return _windowed(values, _window_dataset(ds, center, width))
    if window == "file":
        if ds.get("VOILUTSequence"):
            return _lut(values, ds)
        if "WindowCenter" in ds and "WindowWidth" in ds and _first(ds.WindowWidth) >= 1:
            # Through the small dataset: pydicom refuses to window a file whose (one-sample)
            # photometric interpretation is not MONOCHROME, which the grey path already decided.
            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
            return _windowed(values, _window_dataset(ds, center, width))
    return percentile_unit(values)


def percentile_unit(values: np.ndarray) -> np.ndarray:
    """The 0.5-99.5 % range of ``values`` stretched to [0, 1] (clipped); a flat image is 0."""
    finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(v) for v in np.percentile(finite, PERCENTILES))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros(finite.shape)
    return np.clip((finite - lo) / (hi - lo), 0.0, 1.0)


def _first(value: Any) -> float:
    """The first of a multi-valued DS tag (files may list several windows)."""
    try:
        if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
            value = next(iter(value))
        return float(value)
    except (TypeError, ValueError, StopIteration, OverflowError):
        return 0.0


def _window_dataset(ds: Any, center: float, width: float) -> Any:
    """A small dataset holding what pydicom's windowing reads, with this centre and width."""
    from pydicom.dataset import Dataset

    out = Dataset()
    out.PhotometricInterpretation = "MONOCHROME2"
    out.BitsStored = int(ds.get("BitsStored", 16) or 16)
    out.PixelRepresentation = int(ds.get("PixelRepresentation", 0) or 0)
    for tag in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence", "VOILUTFunction"):
        if tag in ds:
            out[tag] = ds[tag]
    out.WindowCenter = center
    out.WindowWidth = width
    return out


def _windowed(values: np.ndarray, ds: Any) -> np.ndarray:
    """pydicom's windowing of ``values`` by ``ds``'s first window, as [0, 1]: its output range
    (which depends on the bit depth and rescale) is found by windowing two extreme values."""
    from pydicom.pixels import apply_voi_lut

    out = apply_voi_lut(values.astype(np.float64), ds, index=0, prefer_lut=False)
    ends = apply_voi_lut(np.array([-1e30, 1e30]), ds, index=0, prefer_lut=False)
    lo, hi = float(ends[0]), float(ends[1])
    if not hi > lo:
        return percentile_unit(values)
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0)


def _lut(values: np.ndarray, ds: Any) -> np.ndarray:
    """The file's first VOI LUT, scaled by the range of its own entries to [0, 1] (files often
    declare 16-bit entries and use 12)."""
    from pydicom.pixels import apply_voi_lut

    stored = np.rint(np.nan_to_num(values.astype(np.float64))).astype(np.int64)
    out = apply_voi_lut(stored, ds, index=0, prefer_lut=True).astype(np.float64)
    table = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64).ravel()
    lo, hi = (float(table.min()), float(table.max())) if table.size else (0.0, 0.0)
    if not hi > lo:
        return percentile_unit(values)
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0)


# -- colour images --------------------------------------------------------------------------------


def _colour(array: np.ndarray, ds: Any, photometric: str) -> np.ndarray:
    """RGB uint8 of a three-sample frame: YBR converted, deeper samples scaled by their bits."""
    from pydicom.pixels import convert_color_space

    if photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
        # YBR_FULL_422 is YBR_FULL once decoded; ICT/RCT were undone by the JPEG 2000 decoder.
        array = convert_color_space(array, "YBR_FULL", "RGB")
    if array.dtype == np.uint8:
        return array
    bits = int(ds.get("BitsStored", 8) or 8)
    top = float(2 ** max(1, min(bits, 32)) - 1)
    return np.rint(np.clip(array.astype(np.float64) / top, 0.0, 1.0) * 255.0).astype(np.uint8)


def palette_to_rgb(array: np.ndarray, ds: Any) -> np.ndarray:
    """A PALETTE COLOR frame through its palette, as RGB uint8."""
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(array, ds).astype(np.float64)
    top = 255.0 if rgb.max(initial=0) <= 255 else 65535.0
    return np.rint(np.clip(rgb / top, 0.0, 1.0) * 255.0).astype(np.uint8)
