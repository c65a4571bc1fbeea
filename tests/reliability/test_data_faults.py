"""Dataset faults beside the hostile folder: Ctrl+C, unclosed CSV quotes, unusable sources,
special files in text sources, a reader racing a file swap, a validation split short of a class."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from synthetic import make_shapes_folder

from engine.cli import main
from engine.data import DatasetError, ProblemKind, scan_text_source
from engine.data.safe_read import FileReadError, read_capped, read_head
from engine.data.text import TextProblemKind
from reliability.hostile_folder import make_hostile_folder

posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs and signals are POSIX")
REPO = Path(__file__).resolve().parents[2]

# `refit scan` where every file takes half a second: a scan long enough to interrupt. The first
# file checked writes the marker, so the test knows the worker threads are busy.
_SLOW_SCAN = """
import sys, time
from pathlib import Path
import engine.data.scan as scan
from engine.cli import main
original = scan._check_file
def slow(*args):
    Path(sys.argv[2]).touch()
    time.sleep(0.5)
    return original(*args)
scan._check_file = slow
sys.exit(main(["scan", sys.argv[1], "--json"]))
"""


def _default_sigint() -> None:
    """Ctrl+C's default meaning in the child: a test runner started in the background (`cmd &`
    in a script) ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the scan never started"
        time.sleep(0.05)


@posix_only
def test_ctrl_c_stops_refit_scan_promptly_with_a_sentence(tmp_path):
    hostile = make_hostile_folder(tmp_path / "h")  # the FIFO that used to hang is in it
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SCAN, str(hostile.root), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
        preexec_fn=_default_sigint,  # as a terminal starts it, whoever runs the tests
    )
    try:
        _wait_for(marker, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # all files would take about 10 s more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert out == ""  # no report: it stopped, it did not finish
    assert err.strip().splitlines()[-1] == "refit: stopped by Ctrl+C."
    assert "Traceback" not in err


@posix_only
@pytest.mark.slow
def test_ctrl_c_stops_refit_train_with_loader_workers_cleanly(tmp_path):
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=30, size=32)
    cmd = [sys.executable, "-m", "engine", "--workspace", str(tmp_path / "ws"), "train"]
    cmd += [str(shapes), "--backbone", "timm:test_efficientnet", "--no-pretrained"]
    cmd += ["--method", "full", "--workers", "2", "--epochs", "200", "--batch-size", "4"]
    cmd += ["--quiet"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
        preexec_fn=_default_sigint,  # as a terminal starts it, whoever runs the tests
        start_new_session=True,  # its own process group, as in a terminal
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("epoch 1/") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C reaches the DataLoader workers too
        proc.wait(timeout=60)
        reader.join(timeout=10)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    assert any(line.startswith("Run cancelled") for line in lines), lines
    assert err.count("Stopping after this step") == 1, err  # the workers ignored it
    assert "Traceback" not in err and "exited unexpectedly" not in err


def _quoted_csv(path: Path) -> Path:
    """41 rows; row 31 opens a quote it never closes (the case in the issue)."""
    rows = ["text,label"]
    for row in range(2, 43):
        text = f"message {row} about {'cats' if row % 2 else 'dogs'}"
        rows.append(('"' if row == 31 else "") + f"{text},{'a' if row % 2 else 'b'}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_an_unclosed_quote_is_reported_with_row_column_and_the_rows_it_swallows(tmp_path):
    index = scan_text_source(_quoted_csv(tmp_path / "d.csv"))
    quote = next(p for p in index.problems if p.kind == TextProblemKind.OPEN_QUOTE)
    assert quote.message.startswith(
        "Row 31 of d.csv opens a quote in column 1 ('text') that is never closed, so it "
        "swallows every row after it: rows 31 to 42 (12 rows) are skipped."
    )
    assert not any(p.kind == TextProblemKind.MISSING_LABEL for p in index.problems)
    assert index.read == 41 and len(index.samples) == 29  # 41 = 29 used + 12 told


def test_every_row_of_a_table_is_used_or_counted(tmp_path, capsys):
    rows = ["text,label"] + [f"text {i},{'ab'[i % 2]}" for i in range(10)]
    rows[4] = ","  # a blank row in the middle
    rows.append('"last row opens a quote,a')
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n\n\n", encoding="utf-8")  # trailing empty lines
    index = scan_text_source(path)
    messages = [p.message for p in index.problems]
    assert "Row 5 of t.csv is empty; it is skipped." in messages
    assert any(m.startswith("Row 12 of t.csv opens a quote in column 1") for m in messages)
    assert index.read == 11 and len(index.samples) == 9
    assert main(["scan", str(path)]) == 0
    assert "11 rows read, 2 not used" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("sheet.xlsx", b"PK\x03\x04", "sheet.xlsx is a spreadsheet, which is not read directly"),
        ("data.zip", b"PK\x03\x04", "data.zip is an archive; unpack it"),
        ("cat.jpg", b"\xff\xd8\xff", "cat.jpg is a single file, not a dataset"),
        ("notes.docx", b"x", "notes.docx is not a folder or a .csv, .tsv or .jsonl file"),
        ("missing", None, "does not exist"),
    ],
)
def test_refit_scan_of_an_unusable_source_names_what_works(
    tmp_path, capsys, name, content, expected
):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["scan", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err
    assert "csv" in err.lower() and "folder" in err


@posix_only
def test_text_sources_get_the_same_treatment(tmp_path):
    root = tmp_path / "texts"
    for cls in ("pos", "neg"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.txt").write_text(f"a {cls} review number {i}", encoding="utf-8")
    os.mkfifo(root / "pos" / "pipe.txt")
    os.symlink("/dev/zero", root / "pos" / "zero.txt")
    os.symlink(root, root / "neg" / "up")
    with open(root / "neg" / "huge.txt", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse
    index = scan_text_source(root)
    kinds = {Path(p.path).name: p.kind for p in index.problems if p.path}
    assert kinds["pipe.txt"] is ProblemKind.NOT_REGULAR
    assert kinds["zero.txt"] is ProblemKind.LINK_OUTSIDE
    assert kinds["up"] is ProblemKind.LINK_LOOP
    assert kinds["huge.txt"] is ProblemKind.FILE_TOO_BIG
    assert index.class_counts() == {"all": {"neg": 3, "pos": 3}}
    os.mkfifo(tmp_path / "table.csv")
    with pytest.raises(DatasetError, match=r"table\.csv is a named pipe .*not opened"):
        scan_text_source(tmp_path / "table.csv")


@posix_only
def test_a_file_swapped_for_a_pipe_after_its_check_is_not_waited_on(tmp_path, monkeypatch):
    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat
    # The check sees a regular file; what is then opened is a pipe (the race O_NONBLOCK closes).
    monkeypatch.setattr(
        "engine.safe_read.os.stat", lambda p, *a, **k: regular if p == fifo else real_stat(p)
    )
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_capped(fifo, 1024)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # release the blocked open before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_capped blocked on a named pipe")
    assert isinstance(outcome[0], FileReadError)
    assert outcome[0].kind is ProblemKind.NOT_REGULAR


def test_reads_stop_at_the_cap(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 5000)
    with pytest.raises(FileReadError) as err:
        read_capped(path, 4096, what="text file")
    assert err.value.reason == "is larger than 4 KiB, the most read for one text file"
    assert read_head(path, 100) == b"x" * 100
    if os.path.exists("/dev/zero"):
        with pytest.raises(FileReadError, match="a device, not a regular file"):
            read_capped("/dev/zero", 4096)


def test_a_validation_split_without_a_class_is_warned_at_split_time(tmp_path):
    from engine.config import DataConfig, RunConfig
    from engine.training.inputs import prepare_data

    shapes = make_shapes_folder(
        tmp_path / "d", classes=("circle", "square", "triangle"), splits={"train": 4, "val": 2}
    )
    for image in (shapes / "val" / "triangle").iterdir():
        image.unlink()
    (shapes / "val" / "triangle").rmdir()
    data = prepare_data(RunConfig(data=DataConfig(path=str(shapes))))
    warning = next(p for p in data.problems if p.kind is ProblemKind.MISSING_IN_SPLIT)
    assert warning.message.startswith(
        "The validation split has no examples of 'triangle'; its accuracy says nothing about it."
    )
    full = prepare_data(RunConfig(data=DataConfig(path=str(tmp_path / "d" / "train"))))
    assert not any(p.kind is ProblemKind.MISSING_IN_SPLIT for p in full.problems)


@posix_only
def test_previews_in_the_app_use_the_same_safe_reader(tmp_path):
    pytest.importorskip("PySide6")
    from desktop.data.text_preview import read_start
    from desktop.widgets.image_loader import decode_for_display
    from engine.data import ImageError

    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(ImageError, match="is a named pipe"):
        decode_for_display(str(tmp_path / "pipe.jpg"), 64)
    assert read_start(str(tmp_path / "pipe.txt")).startswith("[The file is a named pipe")
