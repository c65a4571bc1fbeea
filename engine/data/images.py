"""Decoding one image file into an RGB picture, or an ImageError that names the file.

Every file goes through :func:`decode_image`, both when a folder is scanned and when a sample is
loaded for training, so an image that passes the scan also loads later.

Choices worth knowing:

- Transparent pixels are composited on white, not dropped: cut-out product photos and icons
  often keep arbitrary (usually black) colour under alpha 0, and white is how a viewer shows them.
- 16-bit and 32-bit grayscale is rescaled to 8 bits by its real bit depth (TIFF BitsPerSample,
  PNG sBIT, else 16 bits), so a 12-bit sensor image is not stretched and nothing is clamped.
  Float images in [0, 1] are scaled by 255; other float images are stretched from min to max.
- Only formats in ``_FORMATS`` are opened: a renamed PostScript file must never start Ghostscript.
- A file whose content is not any known image format is NOT_IMAGE; one that starts like an image
  but cannot be decoded is TRUNCATED or UNREADABLE.
- Files are read through :func:`engine.data.safe_read.read_capped`: regular files only, at most
  ``IMAGE_LIMIT`` bytes, never blocking on a named pipe or a device.
- DICOM files (``.dcm``, ``.dicom``, or any file with the "DICM" marker at byte 128) go
  through :mod:`engine.data.dicom`: modality LUT, the run's window, MONOCHROME1 inverted.
  ``window`` names the window; None is the file's own (``DEFAULT_WINDOW``). A run passes its
  window to every decode (:func:`window_of` its transform): no process-wide setting exists.
- Pillow's DecompressionBombWarning is silenced: every image past ``Image.MAX_IMAGE_PIXELS`` is
  refused with a sentence (``_refuse_bombs``), so the warning would only be noise on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.dicom import DEFAULT_WINDOW, decode_dicom, is_dicom, is_volume_name, split_frame
from engine.data.problems import ImageError, ProblemKind
from engine.data.safe_read import IMAGE_LIMIT, FileReadError, read_capped

_BOMB_FILTER = ("ignore", None, Image.DecompressionBombWarning, None, 0)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".avif",
        ".dcm",
        ".dicom",
    }
)

_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "DIB", "TIFF", "WEBP", "GIF", "PPM", "AVIF")

# Leading bytes of the formats above: a file that starts like one of them is a damaged image,
# not "something else with an image name".
_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG",
    b"GIF8",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"MM\x00+",
    b"P1",
    b"P2",
    b"P3",
    b"P4",
    b"P5",
    b"P6",
)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(
    path: str | Path, *, min_size: int | None = None, window: str | None = None
) -> Image.Image:
    """Read ``path`` as an RGB image with EXIF orientation applied.

    ``min_size``: the caller resizes so the short side is at least this; JPEGs are then decoded
    at a reduced scale that still leaves the short side >= ``min_size`` (much faster on photos).
    ``window``: the DICOM window (engine.data.dicom.WINDOWS; None: the file's own).
    A path ``file.dcm#frame=N`` (a sample of ``data.dicom_frames`` "all") is frame N of that
    DICOM file. Raises ImageError with a sentence naming the file.
    """
    name = str(path)
    file, frame = split_frame(name)
    if frame is not None and Path(name).exists():
        file, frame = name, None  # a file whose own name ends like a frame mark
    if is_volume_name(file):
        raise volume_error(file)
    try:
        data = read_capped(file, IMAGE_LIMIT, what="image")
    except FileReadError as exc:
        raise ImageError(f"{name} {exc.reason}.", exc.kind, exc.reason) from None
    if frame is not None:
        if not is_dicom(data):
            reason = "names a frame of a file that is not a DICOM file"
            raise ImageError(f"{name} {reason}.", ProblemKind.NOT_IMAGE, reason)
        return decode_dicom(data, name, window=window, frame=frame)
    return decode_image(data, name, min_size=min_size, window=window)


def decode_image(
    data: bytes, name: str, *, min_size: int | None = None, window: str | None = None
) -> Image.Image:
    """Decode the bytes of one image file (see :func:`load_image`); ``name`` is used in errors."""
    if not data:
        reason = "is empty (0 bytes)"
        raise ImageError(f"{name} {reason}.", ProblemKind.EMPTY_FILE, reason)
    if is_dicom(data) or name.lower().endswith((".dcm", ".dicom")):
        return decode_dicom(data, name, window=window)
    try:
        return _decode(data, min_size)
    except ImageError as exc:
        raise ImageError(f"{name} {exc.reason}.", exc.kind, exc.reason) from None
    except MemoryError:
        raise
    except Exception as exc:  # image decoders raise many types on bad input
        kind, reason = classify_error(exc, data)
        raise ImageError(f"{name} {reason}.", kind, reason) from exc


def window_of(transform: object) -> str:
    """The DICOM window a transform carries (its run's ``data.dicom_window``), or
    :data:`~engine.data.dicom.DEFAULT_WINDOW` for one that carries none: every decode for a run
    names the run's window, so no run depends on (or changes) what another run decodes with."""
    return getattr(transform, "dicom_window", None) or DEFAULT_WINDOW


def volume_error(name: str) -> ImageError:
    """The sentence for a 3-D volume file (NIfTI and the like), which is not read yet."""
    reason = (
        "is a 3-D volume (NIfTI, MGH, NRRD or MetaImage), which Refit Studio does not read yet; "
        "export its slices as DICOM or PNG files"
    )
    return ImageError(f"{name} {reason}.", ProblemKind.NOT_IMAGE, reason)


def _silence_bomb_warning() -> None:
    """Re-added when gone: ``warnings.catch_warnings`` blocks elsewhere restore older filters."""
    if _BOMB_FILTER not in warnings.filters:
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _decode(data: bytes, min_size: int | None) -> Image.Image:
    _silence_bomb_warning()
    with Image.open(io.BytesIO(data), formats=_formats()) as im:
        _refuse_bombs(im)
        if im.format in ("JPEG", "MPO"):
            # Decode at 1/2, 1/4 or 1/8 scale when the short side stays >= min_size. The whole
            # entropy-coded stream is still read, so truncation is still detected.
            side = max(1, int(min_size)) if min_size else None
            if side is not None:
                im.draft("RGB", (side, side))
        im.load()
        # A damaged EXIF block leaves the pixels good: keep the image, unrotated.
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(im, in_place=True)
        return _to_rgb(im, data)


@functools.cache
def _formats() -> tuple[str, ...]:
    """The allowed formats this Pillow build can open (AVIF is optional)."""
    Image.init()
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _refuse_bombs(im: Image.Image) -> None:
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse from the limit."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = im.width * im.height
    if limit and pixels > limit:
        reason = f"has {im.width}x{im.height} pixels, more than the safety limit of {int(limit):,}"
        raise ImageError(reason, ProblemKind.TOO_LARGE, reason)


def _to_rgb(im: Image.Image, data: bytes) -> Image.Image:
    if im.mode in _SIXTEEN_BIT_MODES:
        im = _rescale_to_8bit(im, _bit_depth(im, data))
    elif im.mode == "F":
        im = _float_to_8bit(im)
    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _bit_depth(im: Image.Image, data: bytes) -> int:
    """Significant bits per sample: TIFF BitsPerSample, PNG sBIT, else 16."""
    bits: int | None = None
    tags = getattr(im, "tag_v2", None)
    if tags is not None and 258 in tags:
        value = tags[258]
        bits = int(value[0] if isinstance(value, tuple) else value)
    elif im.format == "PNG":
        bits = _png_sbit(data)
    if bits is None or not 1 <= bits <= 32:
        bits = 16
    if im.mode == "I" and bits == 16 and int(np.asarray(im).max(initial=0)) > 0xFFFF:
        bits = 32
    return bits


def _png_sbit(data: bytes) -> int | None:
    """The gray significant-bits value of a PNG's sBIT chunk, if it has one."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"sBIT" and length >= 1:
            return data[pos + 8]
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _rescale_to_8bit(im: Image.Image, bits: int) -> Image.Image:
    arr = np.asarray(im).astype(np.float64)
    top = float(2**bits - 1)
    out = np.rint(arr * (255.0 / top)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _float_to_8bit(im: Image.Image) -> Image.Image:
    arr = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if lo >= 0.0 and hi <= 1.0:
        arr = arr * 255.0
    elif hi > lo:
        arr = (arr - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.rint(arr).clip(0, 255).astype(np.uint8), mode="L")


def classify_error(exc: BaseException, data: bytes) -> tuple[ProblemKind, str]:
    """Which problem an exception from reading or decoding a file means, and the reason."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS or 0
        return ProblemKind.TOO_LARGE, f"has more pixels than the safety limit of {int(limit):,}"
    if isinstance(exc, PermissionError):
        return ProblemKind.UNREADABLE, "cannot be read (permission denied)"
    if isinstance(exc, FileNotFoundError):
        return ProblemKind.UNREADABLE, "cannot be read (the file is gone or a broken link)"
    if isinstance(exc, IsADirectoryError):
        return ProblemKind.UNREADABLE, "cannot be read (it is a folder)"
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text or "premature end" in text:
        return ProblemKind.TRUNCATED, "is truncated (the image data ends early)"
    if isinstance(exc, UnidentifiedImageError):
        if data.startswith(_SIGNATURES) or data[8:12] == b"WEBP":
            return ProblemKind.UNREADABLE, "cannot be decoded (the image is damaged)"
        return ProblemKind.NOT_IMAGE, "is not an image (its content is not a readable format)"
    if isinstance(exc, OSError) and not data:
        return ProblemKind.UNREADABLE, f"cannot be read ({exc.strerror or exc})"
    return ProblemKind.UNREADABLE, "cannot be decoded (the image is damaged)"
