"""Reading the dataset in a second process while this one starts (Linux).

``refit train DIR`` spends its first seconds importing torch, torchvision, timm and scikit-learn
on one core; the other core is idle. A thread cannot use it (the scan's Python holds the GIL and
slowed the imports down more than it saved, measured), a second process can: :func:`start`
forks before those imports, and the child scans the folder (the same ``scan_folder``), then
decodes the images the way the feature pass will (the same ``load_image`` with the same
``min_size``) and, given the run's evaluation view (engine/data/view.py), makes that view of each
too (resize and centre crop in Pillow: the code of the run's own transform), writing the pixels
to an unlinked file in memory (``/dev/shm``) and their places to a pipe. The run then takes the
scan (:func:`take_index`) instead of scanning again, and each image (:func:`take_view`,
:func:`take_image`) instead of making it again: the pixels are the ones the run would have made,
so features, training and predictions do not change (tested).

Limits: at most ``CAP_BYTES`` of pixels; images the child has not reached when the run first
asks for one are made by the run as usual (the child is stopped then, so the two never work on
the same images at once). Anything that goes wrong in the child (a crash, a pickling error, a
full ``/dev/shm``) only means the run does that work itself. The child dies with the run (the
parent-death signal). Only where ``os.fork`` is safe before any library has started threads:
Linux.

Then, given an :class:`engine.frozen.early.EarlySpec`, the child runs the backbone: when the
workspace holds a checked export of it (every run after a backbone's first), at once, over the
views it made, on the core the imports leave idle; on a backbone's first run it waits for the
export the run makes and checks on its first images (the run makes it before importing
scikit-learn, so the child has that second to work). The run takes the features with
:func:`take_features` (only for the export its own key names, checked against its own weights:
engine/frozen/forward.py ``accept_early``) and computes the rest itself.

While a first run's child waits for that export, it normalises its views ahead (float32 NCHW
rows, what the run's transform makes of them: engine/data/view.py ``normalised_batch``, equal
bits) into the same memory file, after the pixels. Its own pass and the run's
(:func:`take_normalised`) then only run the network on them: the run's pass had its decoding
threads turn views into tensors on the cores onnxruntime needs (148-154 images/s against 174-190
on rows made ahead, docs/benchmarks.md).

When the run reaches its feature pass and the child is still running the backbone (on one
thread, the core the run's imports left), the run does not open its own pass for the rest: it
hands its threads to the child (:func:`finish_features`: one byte on a pipe; the child opens a
session of the same checked bytes on that many threads from its next batch) and waits, showing
the child's progress. One process on both cores ran the network as fast as the run's own pass,
and nothing is handed over twice (measured: the run's pass over the rest had fed 138 images/s
on two threads with batches of 64; the child on two threads with batches of 16, 168).

Measured (docs/benchmarks.md): a second process that also exported the frozen backbone to ONNX
while the run imported did not pay on two cores (importing torch a second time took the time the
export saved); running the export the run already has does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from engine.data.dicom import DEFAULT_WINDOW
from engine.data.images import load_image
from engine.data.index import DatasetIndex
from engine.data.intensity import PERCENTILE, resolve_intensity
from engine.data.leakage import near_duplicate_twins
from engine.data.problems import ImageError
from engine.data.scan import scan_folder
from engine.data.view import EvalView, normalised_batch
from engine.frozen.early import BATCH, EarlyExport, EarlySpec, wait_for_export
from engine.task import Cancelled, Progress, Task

CAP_BYTES = 768 * 2**20
#: At most this many bytes of normalised rows (four times their pixels: float32) made ahead.
NORMALISED_CAP = 512 * 2**20
#: How long a child waits for the export a backbone's first run makes (then it ends).
WAIT_EXPORT_S = 120.0
#: A child running the backbone is waited for when it will be done within this many seconds.
FINISH_S = 0.5
#: A run waiting for the child's features stops waiting when none came for this many seconds.
STALL_S = 60.0
#: A child waiting for the export the run has just made is given this long to take it up (find
#: it, open it) before the run hands it its threads, instead of computing everything itself.
FOUND_S = 5.0
_CHUNK = 16  # images per message: the run can use the first ones before the child is done
_Key = tuple[str, int, str]  # root, min_per_class, DICOM window


@dataclasses.dataclass(frozen=True)
class _Entry:
    mode: str
    size: tuple[int, int]
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class _Rows:
    """A normalised float32 row (C, H, W) in the memory file."""

    shape: tuple[int, ...]
    offset: int
    length: int


def _key(root: str | Path, min_per_class: int, window: str) -> _Key:
    """A child is found by what it was asked for: another run's window never takes its scan."""
    return os.path.abspath(Path(root).expanduser()), int(min_per_class), str(window)


class _Child:
    """The parent's view of one prefetching child: its pipe, its pixel file and what arrived.

    A reader thread takes the child's messages as they come (the child would otherwise block on
    a full pipe while this process imports); it sleeps in ``recv`` and holds the GIL only to
    unpickle a few dozen small messages. Everything below is read and changed under ``cond``."""

    def __init__(self, key: _Key, min_size: int, pid: int, conn, fd: int, ask: int) -> None:
        self.key, self.min_size, self.pid = key, min_size, pid
        self.conn, self.fd, self.ask = conn, fd, ask
        self.cond = threading.Condition()
        self.images: dict[str, _Entry] = {}
        self.view: EvalView | None = None  # the view the images were made with; None: decoded
        self.index: DatasetIndex | None = None
        self.index_arrived = False
        self.finished = False  # the child said it is done, or died (its pipe ended)
        self.pixels_open = True
        self.progress: tuple[int, int] = (0, 0)  # the scan's (done, total), as the child sent it
        # The backbone's features of the views, when the child found a checked export to run
        # (engine/frozen/early.py): the export it ran, and a row per path.
        self.export: EarlyExport | None = None
        self.features: dict[str, np.ndarray] = {}
        self.export_arrived = 0.0  # time.monotonic() of the export message
        self.waiting = False  # it found no export and looks for the one the run will make
        self.threads = 0  # the threads it runs the backbone on since the run asked (see widen)
        self.normalised: dict[str, _Rows] = {}  # rows it made ahead while it waited
        threading.Thread(target=self._read, name="refit-prefetch", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                kind, payload = self.conn.recv()
            except Exception:  # the child is gone, or sent something that does not unpickle
                break
            with self.cond:
                self._took(kind, payload)
                self.cond.notify_all()
            if kind in ("done", "error"):
                break
        with contextlib.suppress(OSError, ChildProcessError):
            os.waitpid(self.pid, 0)  # it exits right after its last message
        with contextlib.suppress(OSError):
            self.conn.close()
        with self.cond:
            self.finished = self.index_arrived = True
            self.cond.notify_all()

    def _took(self, kind: str, payload: object) -> None:
        if kind == "progress":
            self.progress = payload  # type: ignore[assignment]
        elif kind == "index":
            self.index = payload if isinstance(payload, DatasetIndex) else None
            self.index_arrived = True
        elif kind == "view":
            self.view = payload if isinstance(payload, EvalView) else None
        elif kind == "images" and isinstance(payload, dict):
            self.images.update(payload)
        elif kind == "waiting":
            self.waiting = True
        elif kind == "normalised" and isinstance(payload, dict):
            self.normalised.update(payload)
        elif kind == "widened" and isinstance(payload, int):
            self.threads = payload
        elif kind == "export":
            self.export = payload if isinstance(payload, EarlyExport) else None
            self.export_arrived = time.monotonic()
        elif kind == "features" and self.export is not None and isinstance(payload, tuple):
            paths, rows = cast(tuple[tuple[str, ...], Any], payload)
            if isinstance(rows, np.ndarray) and rows.ndim == 2 and len(rows) == len(paths):
                self.features.update(zip(paths, rows, strict=True))

    def stop(self) -> None:
        """(Under ``cond``.) Stop a child that is still at work (it only decodes: nothing of its
        own to clean up) and wait for the rest of its messages; what it sent is kept, and the
        run decodes what it had not reached."""
        self.close_ask()
        if not self.finished:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self.cond.wait_for(lambda: self.finished, timeout=5.0)  # the pipe to its end

    def close_pixels(self) -> None:
        if self.pixels_open:
            self.pixels_open = False
            self.images.clear()
            self.normalised.clear()
            with contextlib.suppress(OSError):
                os.close(self.fd)

    def widen(self, threads: int) -> None:
        """(Under ``cond``.) Ask the child to run the backbone on ``threads`` threads from its
        next batch on (once; the run waits instead of running its own pass)."""
        if self.ask >= 0:
            with contextlib.suppress(OSError):
                os.write(self.ask, bytes([max(1, min(threads, 255))]))
            self.close_ask()

    def close_ask(self) -> None:
        if self.ask >= 0:
            with contextlib.suppress(OSError):
                os.close(self.ask)
            self.ask = -1

    def end(self) -> None:
        """(Under ``cond``.) Stop the child whatever it does and free its pixels."""
        self.close_pixels()
        self.stop()


_lock = threading.Lock()
_children: dict[_Key, _Child] = {}


def possible() -> bool:
    return sys.platform == "linux" and hasattr(os, "fork")


def start(
    root: str | Path,
    *,
    min_per_class: int,
    min_size: int,
    view: EvalView | None = None,
    intensity: str = "off",
    dicom_window: str = DEFAULT_WINDOW,
    early: EarlySpec | None = None,
) -> bool:
    """Fork a child that scans ``root``, decodes its images for ``min_size`` and, given
    ``view``, makes that view of each (its stretch decided by ``intensity`` and the scan, as a
    run decides it), DICOM files windowed by ``dicom_window``; then, given ``early`` and a
    checked export of its backbone in the workspace, runs the backbone over the views
    (:func:`take_features`). False when prefetching is not possible here. Call before importing
    torch (no threads may run yet)."""
    if not possible() or threading.active_count() > 1:
        return False
    key = _key(root, min_per_class, dicom_window)
    with _lock:
        if key in _children:
            return True
    import multiprocessing.connection as mpc

    try:
        fd, path = tempfile.mkstemp(prefix="refit-prefetch-", dir=_memory_dir())
    except OSError:
        return False
    os.unlink(path)  # lives as long as an open descriptor: never left behind
    recv_end, send_end = mpc.Pipe(duplex=False)
    asked, ask = os.pipe()  # the run asks the child to run on more threads (see widen)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        recv_end.close()
        os.close(ask)
        _child_main(parent, key, min_size, view, intensity, early, send_end, fd, asked)
    send_end.close()
    os.close(asked)
    with _lock:
        _children[key] = _Child(key, min_size, pid, recv_end, fd, ask)
    return True


def _memory_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` ends (Linux's parent-death signal): a run that
    ends while the child still decodes leaves nothing running."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the signal was asked for
        os._exit(0)


def _child_main(
    parent: int,
    key: _Key,
    min_size: int,
    view: EvalView | None,
    intensity: str,
    early: EarlySpec | None,
    conn,
    fd: int,
    asked: int,
) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C ends the child at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with(parent)
        root, min_per_class, window = key
        # Every core but the one the parent's imports keep busy (a large folder on a many-core
        # machine must not scan slower than the run itself would have).
        workers = max(1, (os.cpu_count() or 1) - 1)

        def progress(p: Progress) -> None:  # about a hundred calls at most
            conn.send(("progress", (p.done, p.total)))

        task = Task(progress, rate_hz=0)
        index = scan_folder(
            root, min_per_class=min_per_class, workers=workers, task=task, window=window
        )
        if not index.has_splits:  # the split is still to be made: its near-duplicates, once
            twins = near_duplicate_twins(index.samples, window=window)
            index = dataclasses.replace(index, twins=tuple(twins), twins_found=True)
        conn.send(("index", index))
        if view is not None:
            stretch = resolve_intensity(intensity, index.intensity) == PERCENTILE
            view = dataclasses.replace(view, stretch=stretch)
            conn.send(("view", view))
        made = _decode(index, min_size, view, window, conn, fd)
        if early is not None and view is not None:
            # A test folder's images are never in a run's feature pass: not run through it.
            held_out = {s.path for s in index.samples if s.split == "test"}
            _run_backbone(early, made, conn, fd, asked, skip=held_out)
        conn.send(("done", None))
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            conn.send(("error", None))
    finally:
        os._exit(code)


def _decode(
    index: DatasetIndex, min_size: int, view: EvalView | None, window: str, conn, fd: int
) -> dict[str, _Entry]:
    """Decode (and view) the images into ``fd``; returns where each went, in the scan's order."""
    offset = 0
    made: dict[str, _Entry] = {}
    chunk: dict[str, _Entry] = {}
    with os.fdopen(fd, "wb", closefd=False) as out:
        for sample in index.samples:
            try:
                image = load_image(sample.path, min_size=min_size, window=window)
            except ImageError:
                continue  # the run meets the same file and says what is wrong with it
            if view is not None:
                image = view(image)
            data = image.tobytes()
            if offset + len(data) > CAP_BYTES:
                break
            out.write(data)
            chunk[sample.path] = made[sample.path] = _Entry(
                image.mode, image.size, offset, len(data)
            )
            offset += len(data)
            if len(chunk) >= _CHUNK:
                out.flush()
                conn.send(("images", chunk))
                chunk = {}
        out.flush()
    if chunk:
        conn.send(("images", chunk))
    return made


def _run_backbone(
    spec: EarlySpec,
    made: dict[str, _Entry],
    conn,
    fd: int,
    asked: int,
    skip: frozenset[str] | set[str] = frozenset(),
) -> None:
    """The backbone's features of the views in ``fd``, ``BATCH`` at a time, sent as they come;
    nothing when there is no checked export to run (the run computes them itself). While it
    waits for a first run's export, the views are normalised ahead. When the run has nothing
    else to do it asks, on ``asked``, for the rest on its threads (:func:`finish_features`).
    ``skip``: images never in a run's feature pass (a test folder's), left out."""
    items = [(p, e) for p, e in made.items() if e.mode == "RGB" and p not in skip]
    end = max((e.offset + e.length for e in made.values()), default=0)
    ahead = _Ahead(spec, items, fd, conn, end)
    network = wait_for_export(
        spec,
        seconds=WAIT_EXPORT_S,
        waiting=lambda: conn.send(("waiting", None)),
        idle=ahead.next_batch,
    )
    if network is None:  # onnxruntime missing, or no export came: the run's usual pass
        return
    conn.send(("export", network.export))
    listening = True
    for start in range(0, len(items), BATCH):
        if listening and _readable(asked):
            listening = False  # asked once (or the run is gone: its end of the pipe closed)
            threads = os.read(asked, 1)
            if threads and threads[0] > spec.threads and network.widen(threads[0]):
                conn.send(("widened", threads[0]))
        chunk = items[start : start + BATCH]
        rows = network.run(ahead.batch(chunk))
        conn.send(("features", (tuple(path for path, _ in chunk), rows)))


def _readable(fd: int) -> bool:
    """Whether a read of ``fd`` would not block (poll, not select: any descriptor number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Ahead:
    """(In the child.) The views' normalised rows, made ``BATCH`` at a time while the child has
    nothing else to do, written to ``fd`` from ``offset`` on and announced to the run; at most
    ``NORMALISED_CAP`` bytes, and none once a write fails (a full ``/dev/shm``)."""

    def __init__(self, spec: EarlySpec, items: list, fd: int, conn, offset: int) -> None:
        self.spec, self.items, self.fd, self.conn = spec, items, fd, conn
        self.start = self.offset = offset
        self.made = 0  # items[:made] are normalised in the file
        self.rows: dict[str, _Rows] = {}
        self.full = False

    def next_batch(self) -> bool:
        """Normalise the next ``BATCH`` views; False when there is nothing (more) to do."""
        if self.full or self.made >= len(self.items):
            return False
        chunk = self.items[self.made : self.made + BATCH]
        batch = self._normalise(chunk)
        if self.offset + batch.nbytes - self.start > NORMALISED_CAP:
            self.full = True
            return False
        try:
            written = os.pwrite(self.fd, batch.data.cast("B"), self.offset)
        except OSError:
            written = -1
        if written != batch.nbytes:
            self.full = True
            return False
        size = batch[0].nbytes
        made = {
            path: _Rows(tuple(batch.shape[1:]), self.offset + i * size, size)
            for i, (path, _) in enumerate(chunk)
        }
        self.rows.update(made)
        self.conn.send(("normalised", made))
        self.offset += batch.nbytes
        self.made += len(chunk)
        return True

    def batch(self, chunk: list) -> np.ndarray:
        """``chunk``'s normalised batch: read back when it was made ahead, else made now."""
        places = [self.rows.get(path) for path, _ in chunk]
        if all(p is not None for p in places):
            return np.stack([_read_rows(self.fd, cast(_Rows, p)) for p in places])
        return self._normalise(chunk)

    def _normalise(self, chunk: list) -> np.ndarray:
        images = [
            Image.frombytes(e.mode, e.size, os.pread(self.fd, e.length, e.offset)) for _, e in chunk
        ]
        return normalised_batch(images, self.spec.mean, self.spec.std)


def _mapped(fd: int) -> Any:
    """The memory file mapped copy-on-write (the rows handed out are then views of its pages,
    not copies, and stay valid after the file is closed), or None when it cannot be mapped."""
    import mmap

    try:
        return mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError, AttributeError):
        return None


def _mapped_rows(mapped: Any, rows: _Rows) -> np.ndarray:
    """A normalised row as a (writable, copy-on-write) view of the mapped memory file."""
    if rows.offset < 0 or rows.offset + rows.length > len(mapped):
        raise ValueError("the row lies outside the memory file")
    count = rows.length // 4
    return np.frombuffer(mapped, np.float32, count=count, offset=rows.offset).reshape(rows.shape)


def _read_rows(fd: int, rows: _Rows) -> np.ndarray:
    """A normalised row from the memory file (a writable array); OSError when it cannot."""
    buffer = bytearray(rows.length)
    if os.preadv(fd, [buffer], rows.offset) != rows.length:
        raise OSError("the memory file ended early")
    return np.frombuffer(buffer, np.float32).reshape(rows.shape)


def take_index(
    root: str | Path,
    *,
    min_per_class: int,
    window: str = DEFAULT_WINDOW,
    task: Task | None = None,
) -> DatasetIndex | None:
    """The child's scan of ``root`` with DICOM ``window`` (waiting for it), or None when there is
    no usable one; its progress goes to ``task.report``. Raises Cancelled when ``task`` is
    cancelled while waiting."""
    with _lock:
        child = _children.get(_key(root, min_per_class, window))
    if child is None:
        return None
    shown = (0, 0)
    with child.cond:
        while not child.index_arrived:
            if task is not None and task.cancelled:
                _forget(child)
                raise Cancelled()
            child.cond.wait(timeout=0.1)
            if task is not None and child.progress != shown and child.progress[1]:
                shown = child.progress
                task.report(*shown)
    index = child.index
    if index is None:
        _forget(child)
        return None
    if task is not None:
        total = child.progress[1] or len(index.samples)  # files looked at, as a scan counts
        task.report(total, total)
    return index


def take_image(path: str, min_size: int | None, window: str = DEFAULT_WINDOW) -> Image.Image | None:
    """The child's decoding of ``path`` for ``min_size`` and DICOM ``window`` (each image is
    handed out once), or None. The first call stops a child that is still decoding."""
    return _take(
        path,
        lambda child: child.min_size == min_size and child.view is None and child.key[2] == window,
    )


def take_view(path: str, view: EvalView, window: str = DEFAULT_WINDOW) -> Image.Image | None:
    """``view`` of ``path`` as the child made it with DICOM ``window`` (each image is handed out
    once), or None when it made no view or another one. The first call stops a child that is
    still decoding."""
    return _take(path, lambda child: child.view == view and child.key[2] == window)


def peek_view(path: str, view: EvalView, window: str = DEFAULT_WINDOW) -> Image.Image | None:
    """Like :func:`take_view`, but the child goes on and the view stays to be taken (the run's
    first images check a new export while the child waits for it)."""
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            if not child.pixels_open or child.view != view or child.key[2] != window:
                continue
            entry = child.images.get(path)
            if entry is None:
                continue
            try:
                data = os.pread(child.fd, entry.length, entry.offset)
            except OSError:
                continue
        if len(data) == entry.length:
            return Image.frombytes(entry.mode, entry.size, data)
    return None


def _take(path: str, wanted: Callable[[_Child], bool]) -> Image.Image | None:
    if not _children:
        return None
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            child.stop()  # once: the run decodes what the child has not reached
            if not child.pixels_open or not wanted(child):
                continue
            entry = child.images.pop(path, None)
            if entry is None:
                continue
            try:
                data = os.pread(child.fd, entry.length, entry.offset)
            except OSError:
                data = b""
            if not child.images:
                _forget(child)
        if len(data) == entry.length:
            return Image.frombytes(entry.mode, entry.size, data)
    return None


def computing_features(view: EvalView, window: str = DEFAULT_WINDOW) -> bool:
    """Whether a child is running the backbone over ``view``s (DICOM ``window``) right now: the
    run may do other work first (see :func:`take_features`)."""
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            if child.view == view and child.key[2] == window and child.export is not None:
                return not child.finished
    return False


def waiting_for_export(view: EvalView, window: str = DEFAULT_WINDOW) -> bool:
    """Whether a child with ``view``s (DICOM ``window``) waits for the backbone's export: the
    run's first pass with this backbone makes it, and the child runs it as soon as it is there."""
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            if child.view == view and child.key[2] == window:
                return child.waiting and child.export is None and not child.finished
    return False


def finish_features(
    view: EvalView,
    window: str = DEFAULT_WINDOW,
    *,
    threads: int,
    accept: Callable[[EarlyExport], bool],
    progress: Callable[[int], None],
    check: Callable[[], None],
    found_s: float = 0.0,
    paths: Collection[str] | None = None,
) -> None:
    """Let a child that runs the backbone over ``view``s (DICOM ``window``) with an export the
    run takes (``accept``) finish the rest on ``threads`` threads, the run waiting: the run has
    nothing else to do then, and one process on every core is as fast as the run's own pass
    (no second session opened, no rows handed over). ``progress(done)`` gets the child's count
    of images as it grows; ``check()`` may raise (a cancelled run: the child is ended). Returns
    when the child is done, died, or made no progress for ``STALL_S`` (the run computes what is
    missing, :func:`take_features`). ``found_s``: the run has just made the export the child
    waits for; it is given that long to take it up. ``paths``: the images the run needs (the
    waiting ends when they are all there, and ``progress`` counts them); None: every image."""
    with _lock:
        children = list(_children.values())
    for child in children:
        if found_s > 0:
            _watching(child, functools.partial(_await_export, child, view, window, found_s, check))
        with child.cond:
            running = child.view == view and child.key[2] == window and not child.finished
            export = child.export if running else None
        if export is None:
            continue
        if not accept(export):
            return
        with child.cond:
            child.widen(threads)
        _wait_for_features(child, progress, check, None if paths is None else set(paths))
        return


def _await_export(
    child: _Child, view: EvalView, window: str, seconds: float, check: Callable[[], None]
) -> None:
    """Wait up to ``seconds`` while ``child`` (of ``view``s, DICOM ``window``) still waits for
    the export the run has made."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with child.cond:
            if child.view != view or child.key[2] != window:
                return
            if child.export is not None or child.finished or not child.waiting:
                return
            child.cond.wait(timeout=0.05)
        check()


def _wait_for_features(
    child: _Child,
    progress: Callable[[int], None],
    check: Callable[[], None],
    wanted: set[str] | None,
) -> None:
    shown, moved, had = -1, time.monotonic(), -1
    while True:
        with child.cond:
            child.cond.wait_for(lambda: child.finished, timeout=0.1)
            finished = child.finished
            if len(child.features) != had:  # counted again only when more came
                had = len(child.features)
                done = had if wanted is None else sum(p in child.features for p in wanted)
        if done != shown:
            shown, moved = done, time.monotonic()
            progress(done)
        if finished or time.monotonic() - moved > STALL_S:
            return
        if wanted is not None and done >= len(wanted):  # the rest are images the run never uses
            return
        _watching(child, check)


def _watching(child: _Child, call: Callable[[], None]) -> None:
    """``call()``; when it raises (``check()``: a cancelled run), the child is ended first."""
    try:
        call()
    except BaseException:
        with child.cond:
            _forget(child)
        raise


def take_features(
    view: EvalView, window: str = DEFAULT_WINDOW
) -> tuple[EarlyExport, dict[str, np.ndarray]] | None:
    """The backbone's features the child computed for ``view``s of the images (DICOM
    ``window``), with the export it ran; None when it computed none. Stops the child (the run
    computes the rest) and hands the features out once; the views behind them are dropped."""
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            if child.view != view or child.key[2] != window:
                continue
            _let_finish(child)
            child.stop()
            export, rows = child.export, child.features
            child.features = {}
            for path in rows:
                child.images.pop(path, None)
            if not child.images:
                _forget(child)
            if export is not None and rows:
                return export, rows
    return None


def take_normalised(
    paths: list[str], view: EvalView, window: str = DEFAULT_WINDOW
) -> dict[str, np.ndarray]:
    """The normalised rows (float32, C x H x W) a first run's child made ahead of ``view``s of
    ``paths`` (DICOM ``window``), by path, each handed out once with its view; {} when it made
    none. Stops the child. Call :func:`take_features` first: the child's features stand for
    their images."""
    with _lock:
        children = list(_children.values())
    for child in children:
        with child.cond:
            if not child.pixels_open or child.view != view or child.key[2] != window:
                continue
            child.stop()
            out: dict[str, np.ndarray] = {}
            mapped = _mapped(child.fd) if child.normalised else None
            for path in paths:
                place = child.normalised.pop(path, None)
                if place is None or not isinstance(place, _Rows):
                    continue
                try:
                    out[path] = (
                        _read_rows(child.fd, place)
                        if mapped is None
                        else _mapped_rows(mapped, place)
                    )
                except (OSError, ValueError):
                    continue
                child.images.pop(path, None)
            if not child.images:
                _forget(child)
            if out:
                return out
    return {}


def _let_finish(child: _Child) -> None:
    """(Under ``child.cond``.) Wait for a child that runs the backbone when, at the rate it has
    kept, it will be done within ``FINISH_S``: the run would spend that long opening its own
    session for the last images."""
    if child.finished or child.export is None or not child.features:
        return
    left = sum(
        1 for path, e in child.images.items() if e.mode == "RGB" and path not in child.features
    )
    elapsed = time.monotonic() - child.export_arrived
    if elapsed <= 0 or left * elapsed / len(child.features) > FINISH_S:
        return
    child.cond.wait_for(lambda: child.finished, timeout=2 * FINISH_S)


def _forget(child: _Child) -> None:
    """(Under ``child.cond``.) End the child and drop it."""
    child.end()
    with _lock:
        if _children.get(child.key) is child:
            del _children[child.key]


def discard() -> None:
    """Stop every child and free its pixels (a run that ends, a test)."""
    with _lock:
        children = list(_children.values())
        _children.clear()
    for child in children:
        with child.cond:
            child.end()
