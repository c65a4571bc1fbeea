"""A hostile tester's pass over the clinical intake (issue 15): DICOM files, group keys,
manifest CSVs, leakage checks and identifier-like names, as received from someone else.

Every case asks the same three questions: one clear sentence (what, which file, what to do), no
crash and no hang, and no patient data in anything printed.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from dicom_synth import dicom_dataset
from pydicom.dataset import Dataset

from engine.data import ImageError, load_image
from engine.data.dicom import declared_syntax, declares_deidentified
from engine.data.groups import group_key_from_dicom
from engine.data.problems import ProblemKind

PHI = ("Doe", "Jane", "MRN-00417", "19700101")


def _save(ds: Dataset, path, patch: tuple[bytes, bytes] | None = None):
    ds.save_as(path, enforce_file_format=True)
    if patch is not None:
        data = path.read_bytes()
        assert patch[0] in data
        path.write_bytes(data.replace(*patch))
    return path


def _slice(**kw) -> Dataset:
    pixels = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 3) % 4096
    return dicom_dataset(pixels, bits_stored=12, **kw)


def _one_sentence(path, kind: ProblemKind | None = None) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert path.name in message and message.endswith(".")
    assert "Traceback" not in message and not any(word in message for word in PHI)
    if kind is not None:
        assert info.value.kind is kind, message
    return message


# -- DICOM tags that contradict each other ---------------------------------------------------------


def _voi(descriptor: list[int], data: list[int]):
    def apply(ds: Dataset) -> None:
        item = Dataset()
        item.add_new(0x00283002, "US", descriptor)
        item.add_new(0x00283006, "US", data)
        ds.VOILUTSequence = [item]

    return apply


@pytest.mark.parametrize(
    "change",
    [
        _voi([0, 0, 16], [1, 2, 3]),  # 0 entries means 65536: the data is far shorter
        _voi([60000, 0, 16], [1, 2, 3]),
        _voi([3, 0, 64], [1, 2, 3]),  # 64 bits per entry
        _voi([3], [1, 2, 3]),  # a descriptor of one value
        lambda ds: setattr(ds, "VOILUTSequence", [Dataset()]),  # an empty item
        lambda ds: setattr(ds, "ModalityLUTSequence", [Dataset()]),
        lambda ds: setattr(ds, "PhotometricInterpretation", "PALETTE COLOR"),  # no palette
    ],
    ids=[
        "voi-zero-entries",
        "voi-longer-than-data",
        "voi-64-bit",
        "voi-short-descriptor",
        "voi-empty-item",
        "modality-lut-empty-item",
        "palette-without-lut",
    ],
)
def test_contradictory_pixel_tags_are_one_sentence(tmp_path, change):
    ds = _slice()
    change(ds)
    message = _one_sentence(_save(ds, tmp_path / "odd.dcm"), ProblemKind.UNREADABLE)
    assert "contradict" in message


@pytest.mark.parametrize("window", ["file", "lung", "percentile"])
def test_a_colour_interpretation_on_one_sample_is_read_as_grey_under_every_window(tmp_path, window):
    # Before: pydicom refused to window it (a crash) under the file's own window tags.
    ds = _slice(window=(1000.0, 2000.0))
    ds.PhotometricInterpretation = "YBR_FULL"
    picture = np.asarray(load_image(_save(ds, tmp_path / "ybr.dcm"), window=window))
    assert picture.shape == (32, 32, 3) and picture.max() > picture.min()


@pytest.mark.parametrize("slope", ["nan", "inf", "-inf"])
def test_non_finite_rescale_is_refused_not_a_black_image(tmp_path, slope):
    # Before: every pixel became NaN, then 0: a black picture that trained silently.
    ds = _slice(slope=12345678.0, intercept=0.0)
    path = _save(ds, tmp_path / "nan.dcm", (b"12345678.0", slope.ljust(10).encode()))
    assert "not a finite number" in _one_sentence(path, ProblemKind.UNREADABLE)


def test_a_rescale_slope_that_is_not_a_number_is_one_sentence(tmp_path):
    ds = _slice(slope=12345678.0, intercept=0.0)
    path = _save(ds, tmp_path / "text.dcm", (b"12345678.0", b"x\\y\\z     "))
    _one_sentence(path, ProblemKind.UNREADABLE)


@pytest.mark.parametrize(
    "tags",
    [
        {"NumberOfFrames": 2**31 - 1},
        {"BitsAllocated": 64},
        {"BitsAllocated": 7},
        {"BitsStored": 20},  # more than BitsAllocated (16)
        {"PixelRepresentation": 2},
        {"SamplesPerPixel": 3},
        {"SamplesPerPixel": 2},
    ],
    ids=lambda t: "-".join(f"{k}={v}" for k, v in t.items()),
)
def test_absurd_sizes_are_one_sentence(tmp_path, tags):
    _one_sentence(_save(_slice(**tags), tmp_path / "absurd.dcm"))


@pytest.mark.parametrize("width", [0.0, -100.0])
def test_window_width_zero_or_negative_falls_back_to_a_usable_window(tmp_path, width):
    path = _save(_slice(window=(40.0, width)), tmp_path / "w.dcm")
    grey = np.asarray(load_image(path))[..., 0]
    assert grey.min() < 50 and grey.max() > 200  # the percentile window, not a flat picture


# -- compressed and odd transfer syntaxes ----------------------------------------------------------


def _deflated(path, inflated_size: int) -> None:
    """A deflated DICOM whose dataset inflates to ``inflated_size`` bytes of zeros."""
    ds = _slice()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    _save(ds, path)
    data = path.read_bytes()
    meta_end = data.index(b"1.2.840.10008.1.2.1.99") + 22
    meta_end += meta_end % 2
    body = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = body.compress(b"\x00" * inflated_size) + body.flush()
    path.write_bytes(data[:meta_end] + bomb)


def test_a_deflate_bomb_is_refused_from_its_header_before_inflating(tmp_path, monkeypatch):
    # 8 MiB of deflate can hold 8 GiB, which pydicom inflates in one zlib.decompress call with no
    # limit. A small one here, and any inflating fails the test: the header alone decides.
    path = tmp_path / "bomb.dcm"
    _deflated(path, 4 * 1024**2)

    def inflate(*args, **kw):
        raise AssertionError("a deflated dataset was inflated")

    monkeypatch.setattr(zlib, "decompress", inflate)
    assert declared_syntax(path.read_bytes()) == "1.2.840.10008.1.2.1.99"
    message = _one_sentence(path, ProblemKind.UNREADABLE)
    assert "1.2.840.10008.1.2.1.99" in message
    assert group_key_from_dicom(path) is None
    assert declares_deidentified(path.read_bytes()) is None


def test_a_private_transfer_syntax_is_named(tmp_path):
    ds = _slice()
    path = _save(
        ds, tmp_path / "private.dcm", (b"1.2.840.10008.1.2.1\x00", b"1.2.3.999.777.1.2.1\x00")
    )
    assert declared_syntax(path.read_bytes()) == "1.2.3.999.777.1.2.1"
    message = _one_sentence(path, ProblemKind.UNREADABLE)
    assert "1.2.3.999.777.1.2.1" in message


def test_big_endian_decodes(tmp_path):
    ds = dicom_dataset(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)))
    path = tmp_path / "be.dcm"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.2"
    ds.save_as(path, enforce_file_format=True)
    assert declared_syntax(path.read_bytes()) == "1.2.840.10008.1.2.2"
    grey = np.asarray(load_image(path, window="percentile"))[..., 0]
    assert grey[:, 0].max() < 10 and grey[:, -1].min() > 245
