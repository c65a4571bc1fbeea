"""A hostile tester's pass over the clinical intake (issue 15): DICOM files, group keys,
manifest CSVs, leakage checks and identifier-like names, as received from someone else.

Every case asks the same three questions: one clear sentence (what, which file, what to do), no
crash and no hang, and no patient data in anything printed.
"""

from __future__ import annotations

import csv
import zlib

import numpy as np
import pytest
from dicom_synth import dicom_dataset
from pydicom.dataset import Dataset

from engine.cli import main  # imported once here: the first import takes seconds
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


# -- the folder around the files: pipes, link loops, DICOMDIRs, patient data in the tags ---------


def _dicom_patients(root, patient_id: str, patients: int = 2) -> None:
    """disc/ and none/ of generated slices (two per patient and class), ``patients`` patients
    whose PatientID starts with ``patient_id`` (the rest: the patient's number)."""
    from dicom_synth import disc_slice, write_dicom

    for label, disc in (("disc", True), ("none", False)):
        for i in range(2 * patients):
            write_dicom(
                root / label / f"img{i}.dcm",
                disc_slice(i + (100 if disc else 0), disc=disc),
                bits_stored=12,
                slope=1.0,
                intercept=-1024.0,
                PatientID=f"{patient_id}{i % patients}",
            )


def test_cli_scan_of_hostile_dicom_folder_never_prints_patient_data(tmp_path, capsys):
    import os
    import warnings

    root = tmp_path / "received"
    evil = "EVIL\x1b]0;pwned\x07\nSECRET" + "Z" * 3000  # escapes, a newline, far too long
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that the value is too long for LO
        _dicom_patients(root, evil)
    os.mkfifo(root / "disc" / "fifo.dcm")
    os.symlink("loop.dcm", root / "disc" / "loop.dcm")
    meta_only = dicom_dataset(np.zeros((4, 4), np.uint8))
    del meta_only.PixelData
    meta_only.save_as(root / "disc" / "DICOMDIR", enforce_file_format=True)
    assert main(["scan", str(root), "--group-by", "dicom"]) == 0
    out = capsys.readouterr()
    said = out.out + out.err
    for secret in ("EVIL", "SECRET", "pwned", "\x1b", *PHI):
        assert secret not in said
    assert "2 patients (groups), 8 images" in said
    assert "fifo.dcm is a named pipe" in said and "loop.dcm is a link in a loop" in said
    assert "DICOMDIR is a DICOM file without pixel data" in said


def test_patient_ids_differing_only_after_256_characters_stay_two_patients(tmp_path):
    from engine.data.groups import attach_groups
    from engine.data.scan import scan_folder

    root = tmp_path / "long"
    _dicom_patients(root, "P" * 300)  # PatientID P...P0 and P...P1
    index = attach_groups(scan_folder(root, workers=1), "dicom")
    assert len({s.group for s in index.samples}) == 2


# -- group patterns that backtrack for hours ----------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(a|ab)+c", r"(a{1,3})*$", r"(.*)_(.*)_(.*)_x", r"(?:x(\w+))*$"],
)
def test_catastrophic_group_patterns_are_refused(pattern):
    from engine.data.groups import GroupSpecError, parse_group_by

    with pytest.raises(GroupSpecError, match="can take hours"):
        parse_group_by(f"pattern:{pattern}")


@pytest.mark.slow  # the CLI's error path imports torch: seconds on a cold process
def test_refit_scan_refuses_a_catastrophic_pattern_before_any_file(tmp_path, capsys, monkeypatch):
    from engine.data import scan as folder_scan

    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "a" / ("a" * 200 + "!.png")).write_bytes(b"")  # the name that would hang it

    def no_scan(*args, **kw):
        raise AssertionError("the folder was scanned before the pattern was checked")

    monkeypatch.setattr(folder_scan, "check_files", no_scan)
    assert main(["scan", str(root), "--group-by", "pattern:(a+)+$"]) == 2
    said = capsys.readouterr().err
    assert "can take hours" in said and "Traceback" not in said


@pytest.mark.parametrize(
    ("pattern", "name", "key"),
    [
        (r"(P\d+)_", "P17_slice3.png", "P17"),
        (r"^(\w+)_(\d+)_", "site4_0012_x.png", "site4"),
        (r"([A-Z]+)-(\d{1,8})-(\d+)", "scan/ABC-12-3.png", "ABC"),
    ],
)
def test_ordinary_group_patterns_still_work_and_return_on_long_names(pattern, name, key):
    from engine.data.groups import key_from_pattern, parse_group_by

    _, compiled = parse_group_by(f"pattern:{pattern}")
    assert compiled is not None
    assert key_from_pattern(compiled, name) == key
    assert key_from_pattern(compiled, "x-" * 5000) is None  # long and unmatched: returns


# -- manifest CSVs ------------------------------------------------------------------------------


def _pictures(folder, names) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)


def test_hostile_manifest_rows_are_one_sentence_each_and_nothing_outside_is_read(tmp_path):
    from engine.data.manifest import read_manifest

    folder, outside = tmp_path / "study", tmp_path / "elsewhere"
    _pictures(folder, [f"img/{c}{i}.png" for c in "ab" for i in range(3)])
    _pictures(outside, ["x.png"])
    (folder / "folder.png").mkdir()
    rows = [f"img/{c}{i}.png,{c},P{i}" for c in "ab" for i in range(3)]
    hostile = [
        "../elsewhere/x.png",
        str(outside / "x.png"),
        "img\\..\\..\\elsewhere\\x.png",  # Windows separators climbing out
        f"file://{outside / 'x.png'}",
        "manifest.csv",  # itself
        "folder.png",  # a folder with an image's name
        "img/a0.png\x00.png",
        "img/" + "é" * 3000 + ".png",  # longer than any file system allows
        "img\\a0.png",  # a listed image again, Windows style
    ]
    text = "\ufeff" + "\r\n".join(["file,label,group", *rows] + [f"{h},a,P9" for h in hostile])
    (folder / "manifest.csv").write_text(text + "\r\n", encoding="utf-8", newline="")
    manifest = read_manifest(folder / "manifest.csv")
    assert sorted(r.rel for r in manifest.rows) == sorted(r.split(",")[0] for r in rows)
    messages = [p.message for p in manifest.problems]
    assert len(messages) == len(hostile)
    for number, message in enumerate(messages, start=len(rows) + 2):
        assert message.startswith(f"Row {number} of manifest.csv ") and len(message) < 400
    assert [m.count("outside the CSV's folder") for m in messages[:3]] == [1, 1, 1]
    assert "URL" in messages[3] and "nothing is downloaded" in messages[3]
    assert "not an image file" in messages[4] and "is a folder" in messages[5]
    assert "NUL" in messages[6] and "…" in messages[7] and "again" in messages[8]


def test_a_semicolon_manifest_from_a_european_spreadsheet_is_a_manifest(tmp_path):
    from engine.data.manifest import is_image_manifest
    from engine.data.manifest_scan import scan_image_source

    _pictures(tmp_path, [f"{c}{i}.png" for c in "ab" for i in range(3)])
    lines = ["file;label;group"] + [f"{c}{i}.png;{c};P{i}" for c in "ab" for i in range(3)]
    (tmp_path / "list.csv").write_text("\r\n".join(lines), encoding="utf-8-sig")
    assert is_image_manifest(tmp_path / "list.csv")  # before: read as a table of texts
    index = scan_image_source(tmp_path / "list.csv", group_by="manifest")
    assert len(index.samples) == 6 and len({s.group for s in index.samples}) == 3


def test_a_manifest_of_many_bad_rows_keeps_a_hundred_sentences_and_can_be_cancelled(tmp_path):
    from engine.data.manifest import MAX_ROW_PROBLEMS, read_manifest
    from engine.task import Cancelled, Task

    path = tmp_path / "m.csv"
    path.write_text("file,label\n" + "".join(f"{i}.png,a\n" for i in range(25_000)))
    manifest = read_manifest(path)
    assert len(manifest.problems) == MAX_ROW_PROBLEMS + 1
    assert "24,900 more rows" in manifest.problems[-1].message
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        read_manifest(path, task)


def test_a_label_longer_than_a_class_name_is_refused_without_quoting_it(tmp_path):
    from engine.data.manifest import read_manifest

    _pictures(tmp_path, ["a.png", "b.png"])
    (tmp_path / "m.csv").write_text("file,label\na.png,x\nb.png," + "L" * 5000 + "\n")
    manifest = read_manifest(tmp_path / "m.csv")
    assert [r.rel for r in manifest.rows] == ["a.png"]
    (problem,) = manifest.problems
    assert "a label of 5,000 characters" in problem.message and "LLLL" not in problem.message


def test_a_cell_beyond_the_csv_field_limit_is_one_sentence(tmp_path):
    from engine.data import DatasetError
    from engine.data.manifest import read_manifest

    path = tmp_path / "m.csv"
    path.write_text("file,label\na.png,x\nb.png," + "L" * 200_000 + "\n")
    before = csv.field_size_limit()
    try:  # the same answer after a text table raised csv's process-wide limit (seen in CI)
        for limit in (before, 64 * 1024 * 1024):
            csv.field_size_limit(limit)
            with pytest.raises(DatasetError, match=r"not valid CSV at line 3") as info:
                read_manifest(path)
            assert "L" * 200 not in str(info.value)
    finally:
        csv.field_size_limit(before)


# -- thousands of look-alike images ----------------------------------------------------------------


def _look_alikes(monkeypatch, n: int):
    """``n`` samples whose fingerprints are all the same picture (one dHash, thumbnails that
    correlate above 0.99): the worst case of the near-duplicate check."""
    import engine.data.leakage as leakage
    from engine.data.index import Sample

    rng = np.random.default_rng(0)
    base = rng.normal(size=1024).astype(np.float32)
    thumbs = base + 0.01 * rng.normal(size=(n, 1024)).astype(np.float32)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    samples = [
        Sample(path=f"/d/img{i:05d}.png", label=0, split=None, digest=f"d{i}") for i in range(n)
    ]
    rows = {s.path: i for i, s in enumerate(samples)}

    def fingerprints(chosen, task, window="file"):
        idx = [rows[s.path] for s in chosen]
        return list(chosen), np.full(len(idx), 0xF0F0, dtype=np.uint64), thumbs[idx]

    monkeypatch.setattr(leakage, "_fingerprints", fingerprints)
    return samples


def test_hundreds_of_look_alikes_give_a_spanning_set_of_twins_not_n_squared(monkeypatch):
    from engine.data.leakage import near_duplicate_twins

    samples = _look_alikes(monkeypatch, 800)
    twins = near_duplicate_twins(samples)
    assert len(twins) == 799  # before: 319,600 pairs held in memory and handed to the split
    parent = {s.path: s.path for s in samples}

    def root(p):
        while parent[p] != p:
            p = parent[p]
        return p

    for a, b in twins:
        parent[root(b)] = root(a)
    assert len({root(s.path) for s in samples}) == 1  # still all kept together


def test_look_alikes_across_splits_are_counted_not_listed(monkeypatch, tmp_path):
    import engine.data.leakage as leakage
    from engine.data.leakage import near_duplicate_problems

    monkeypatch.setattr(leakage, "MAX_KEPT", 200)
    samples = _look_alikes(monkeypatch, 1000)
    problems = near_duplicate_problems({"train": samples[:500], "val": samples[500:]}, "/d")
    assert len(problems) == leakage.MAX_REPORTED + 1
    assert f"{500 * 500 - leakage.MAX_REPORTED:,} more pairs" in problems[-1].message


# -- identifier-like names: quiet on camera names, still loud on dates of birth -----------------


@pytest.mark.parametrize(
    "name",
    [
        "IMG_20230514_123456.jpg",
        "PXL_20230514_123456789.jpg",
        "Screenshot 2023-05-14 at 12.34.56.png",
        "WhatsApp Image 2023-05-14 at 12.34.56.jpeg",
        "photo_2023-05-14_12-34-56.jpg",
        "20230514T123456.png",
        "frame_000123.png",
        "00000042.png",
        "DSC01234.JPG",
    ],
)
def test_camera_and_counter_names_are_not_identifiers(name):
    from engine.data.groups import looks_like_identifier

    assert not looks_like_identifier(name)  # before: every one was warned about


@pytest.mark.parametrize(
    "name",
    [
        "P123456_1980-03-14.png",
        "scan_19800314.png",
        "john_14.03.1980.png",
        "DOB_x.png",
        "mrn_00123456.png",  # six significant digits: a record number
        "jane_19800314/IMG_20230514_123456.jpg",  # a timestamp does not hide a birth date
    ],
)
def test_dates_of_birth_and_record_numbers_are_still_identifiers(name):
    from engine.data.groups import looks_like_identifier

    assert looks_like_identifier(name)


# -- too few patients for a validation split -------------------------------------------------------


def _three_patient_manifest(folder):
    _pictures(folder, [f"img/{c}{i}.png" for c in "ab" for i in range(6)])
    rows = ["file,label,group"] + [f"img/{c}{i}.png,{c},P{i % 3}" for i in range(6) for c in "ab"]
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    return folder / "m.csv"


def test_refit_scan_warns_when_the_default_split_leaves_no_patient_for_validation(tmp_path, capsys):
    path = _three_patient_manifest(tmp_path)
    assert main(["scan", str(path), "--group-by", "manifest"]) == 0
    out = capsys.readouterr().out
    assert "val: 0 patients" in out  # the preview, as before; now also said plainly:
    assert "warning: with 3 patients (groups) the default split leaves none for validation" in out


@pytest.mark.slow  # imports the training stack (torch): seconds in a cold process
def test_training_names_patients_when_groups_leave_no_validation(tmp_path):
    from engine.config import DataConfig, RunConfig
    from engine.data import DatasetError
    from engine.training.inputs import prepare_data

    path = _three_patient_manifest(tmp_path)
    config = RunConfig(data=DataConfig(path=str(path), group_by="manifest"))
    with pytest.raises(DatasetError) as info:
        prepare_data(config)
    assert "patient" in str(info.value).replace(str(path), "")  # the test's folder says it


@pytest.mark.slow  # trains a tiny model end to end (several seconds)
def test_training_on_a_hostile_dicom_folder_keeps_patient_data_out_of_the_run(tmp_path, capsys):
    import os
    import warnings

    root, ws = tmp_path / "received", tmp_path / "ws"
    evil = "EVIL\x1b[31m\nSECRET" + "Z" * 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _dicom_patients(root, evil, patients=5)
    os.mkfifo(root / "disc" / "fifo.dcm")
    palette = _slice()
    palette.PhotometricInterpretation = "PALETTE COLOR"  # without a palette
    _save(palette, root / "none" / "palette.dcm")
    argv = ["--workspace", str(ws), "train", str(root), "--backbone", "timm:test_efficientnet"]
    argv += ["--no-pretrained", "--workers", "0", "--method", "linear-probe"]
    argv += ["--group-by", "dicom"]
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert "palette.dcm has pixel tags that contradict each other" in out.out + out.err
    said = out.out + out.err
    for path in ws.rglob("*"):
        if path.is_file():
            said += path.read_bytes().decode("utf-8", "replace")
    for secret in ("EVIL", "SECRET", "\x1b[31m", *PHI):
        assert secret not in said


def test_a_dicom_frame_past_40_million_pixels_is_refused_before_decoding(tmp_path):
    # Within Pillow's 89-million limit, yet one such frame took 2.5 GB through the LUTs.
    ds = _slice()
    ds.Rows, ds.Columns = 7000, 6000  # 42 million pixels declared, 2 KB of data
    message = _one_sentence(_save(ds, tmp_path / "wide.dcm"), ProblemKind.TOO_LARGE)
    assert "6000x7000" in message and "40,000,000" in message
    ds.Rows, ds.Columns = 5625, 4096  # a large mammogram's size passes the size check
    assert "cannot be decoded" in _one_sentence(_save(ds, tmp_path / "mammo.dcm"))


def test_a_manifest_without_a_header_row_is_told_without_quoting_its_first_row(tmp_path):
    from engine.data import DatasetError
    from engine.data.manifest import read_manifest

    path = tmp_path / "m.csv"
    path.write_text("img1.png,cancer,Doe^Jane,MRN-00417\nimg2.png,benign,Roe^Ann,MRN-00418\n")
    with pytest.raises(DatasetError, match="has no header row") as info:
        read_manifest(path)
    assert not any(word in str(info.value) for word in PHI)  # before: the row was quoted


def test_dicom_group_keys_read_64_kib_unless_the_header_is_longer(tmp_path, monkeypatch):
    import engine.data.groups as groups

    slice_ = _slice()
    slice_.PatientID = "P-one"
    plain = _save(slice_, tmp_path / "plain.dcm")
    padded = _slice()
    padded.PatientID = "P-two"
    padded.add_new(0x00091010, "OB", b"\x00" * 100_000)  # a private blob before PatientID
    padded.PixelData = b"\x00" * 300_000  # the file goes on well past 64 KiB
    padded.Rows, padded.Columns = 300, 500
    long_header = _save(padded, tmp_path / "long_header.dcm")
    reads: list[int] = []
    real = groups.read_head

    def counted(path, n):
        reads.append(n)
        return real(path, n)

    monkeypatch.setattr(groups, "read_head", counted)
    assert groups.group_key_from_dicom(plain) == "P-one" and reads == [64 * 1024]
    reads.clear()
    # The first 64 KiB end inside the private blob: the key is read from the longer head,
    # never from a cut one.
    assert groups.group_key_from_dicom(long_header) == "P-two"
    assert reads == [64 * 1024, 4 * 1024 * 1024]


def _float_dicom(path, values: np.ndarray):
    ds = dicom_dataset(np.zeros(values.shape, np.uint16))
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.astype("<f4").tobytes()
    return _save(ds, path)


def test_float_pixels_with_nan_background_decode_and_all_nan_is_one_sentence(tmp_path):
    values = np.full((32, 32), np.nan, np.float32)
    values[:, 16:] = np.linspace(0, 1, 16, dtype=np.float32)
    grey = np.asarray(load_image(_float_dicom(tmp_path / "map.dcm", values)))[..., 0]
    assert grey[:, :16].max() == 0 and grey[:, -1].min() == 255  # NaN: the lowest value
    message = _one_sentence(_float_dicom(tmp_path / "nan.dcm", values * np.nan))
    assert "no pixel value that is a finite number" in message


# -- group keys and their hashes -------------------------------------------------------------------


def test_group_hashes_do_not_collide_and_unicode_forms_are_one_patient():
    import unicodedata

    from engine.data.groups import hash_group

    hashes = {hash_group("refit-group:ds", f"P{i:07d}") for i in range(100_000)}
    assert len(hashes) == 100_000
    nfc = unicodedata.normalize("NFC", "José Müller")
    nfd = unicodedata.normalize("NFD", "José Müller")
    assert nfc != nfd and hash_group("s", nfc) == hash_group("s", nfd)
    assert hash_group("s", "P1") == hash_group("s", "P1") != hash_group("t", "P1")
    assert hash_group("s", "bad\udcff") != hash_group("s", "bad")  # lone surrogates: no crash
