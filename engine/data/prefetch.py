"""Reading the dataset in a second process while this one starts (Linux).

``refit train DIR`` spends its first seconds importing torch, torchvision, timm and scikit-learn
on one core; the other core is idle. A thread cannot use it (the scan's Python holds the GIL and
slowed the imports down more than it saved, measured), a second process can: :func:`start`
forks before those imports, and the child scans the folder (the same ``scan_folder``) and then
decodes the images the way the feature pass will (the same ``load_image`` with the same
``min_size``), writing the decoded pixels to an unlinked file in memory (``/dev/shm``) and their
places to a pipe. The run then takes the scan (:func:`take_index`) instead of scanning again, and
each decoded image (:func:`take_image`) instead of decoding it again: the pixels are the ones
``load_image`` returns, so features, training and predictions do not change (tested).

Limits: at most ``CAP_BYTES`` of decoded pixels; images the child has not reached when the run
first asks for one are decoded by the run as usual (the child is stopped then, so the two never
decode the same images at once). Anything that goes wrong in the child (a crash, a pickling
error, a full ``/dev/shm``) only means the run scans and decodes itself. Only where ``os.fork``
is safe before any library has started threads: Linux.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from engine.data.images import load_image
from engine.data.index import DatasetIndex
from engine.data.problems import ImageError, ScanCancelled
from engine.data.scan import scan_folder

CAP_BYTES = 768 * 2**20
_CHUNK = 16  # images per message: the run can use the first ones before the child is done
_Key = tuple[str, int]


def _key(root: str | Path, min_per_class: int) -> _Key:
    return os.path.abspath(Path(root).expanduser()), int(min_per_class)


class _Child:
    """The parent's view of one prefetching child: its pipe, its pixel file and what arrived."""

    def __init__(self, key: _Key, min_size: int, pid: int, conn, fd: int) -> None:
        self.key, self.min_size, self.pid = key, min_size, pid
        self.conn, self.fd = conn, fd
        self.lock = threading.Lock()
        self.images: dict[str, tuple[str, tuple[int, int], int, int]] = {}
        self.index: DatasetIndex | None = None
        self.index_arrived = False
        self.finished = False
        self.stopped = False
        self.closed = False
        self.progress: tuple[int, int] = (0, 0)  # the scan's (done, total), as the child sent it

    def pump(self, wait: float = 0.0) -> None:
        """Read the messages that have arrived (waiting up to ``wait`` seconds for one)."""
        while not self.finished:
            try:
                if not self.conn.poll(wait):
                    return
                kind, payload = self.conn.recv()
            except Exception:  # the child is gone, or sent something that does not unpickle
                self.finished = True
                self.index_arrived = True
                return
            wait = 0.0
            if kind == "progress":
                self.progress = payload
            elif kind == "index":
                self.index = payload if isinstance(payload, DatasetIndex) else None
                self.index_arrived = True
            elif kind == "images":
                self.images.update(payload)
            else:  # "done" or "error"
                self.finished = True
                self.index_arrived = True

    def stop(self) -> None:
        """Stop the child (it may still be decoding), reap it, and keep what it had sent."""
        if self.stopped:
            return
        self.stopped = True
        self.pump()
        if not self.finished:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pump()  # the messages still in the pipe, up to its end
        with contextlib.suppress(OSError):
            self.conn.close()

    def close(self) -> None:
        if self.closed:
            return
        self.stop()
        self.closed = True
        self.images.clear()
        with contextlib.suppress(OSError):
            os.close(self.fd)


_lock = threading.Lock()
_children: dict[_Key, _Child] = {}


def possible() -> bool:
    return sys.platform == "linux" and hasattr(os, "fork")


def start(root: str | Path, *, min_per_class: int, min_size: int) -> bool:
    """Fork a child that scans ``root`` and decodes its images for ``min_size``; False when
    prefetching is not possible here. Call before importing torch (no threads may run yet)."""
    if not possible() or threading.active_count() > 1:
        return False
    key = _key(root, min_per_class)
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
    pid = os.fork()
    if pid == 0:  # the child: never returns
        recv_end.close()
        _child_main(key, min_size, send_end, fd)
    send_end.close()
    with _lock:
        _children[key] = _Child(key, min_size, pid, recv_end, fd)
    return True


def _memory_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _child_main(key: _Key, min_size: int, conn, fd: int) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C ends the child at once
        root, min_per_class = key
        # Every core but the one the parent's imports keep busy (a large folder on a many-core
        # machine must not scan slower than the run itself would have).
        workers = max(1, (os.cpu_count() or 1) - 1)

        def progress(done: int, total: int) -> None:  # about a hundred calls at most
            conn.send(("progress", (done, total)))

        index = scan_folder(root, min_per_class=min_per_class, workers=workers, progress=progress)
        conn.send(("index", index))
        offset = 0
        chunk: dict[str, tuple[str, tuple[int, int], int, int]] = {}
        with os.fdopen(fd, "wb", closefd=False) as out:
            for sample in index.samples:
                try:
                    image = load_image(sample.path, min_size=min_size)
                except ImageError:
                    continue  # the run meets the same file and says what is wrong with it
                data = image.tobytes()
                if offset + len(data) > CAP_BYTES:
                    break
                out.write(data)
                chunk[sample.path] = (image.mode, image.size, offset, len(data))
                offset += len(data)
                if len(chunk) >= _CHUNK:
                    out.flush()
                    conn.send(("images", chunk))
                    chunk = {}
            out.flush()
        if chunk:
            conn.send(("images", chunk))
        conn.send(("done", None))
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            conn.send(("error", None))
    finally:
        os._exit(code)


def take_index(
    root: str | Path,
    *,
    min_per_class: int,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> DatasetIndex | None:
    """The child's scan of ``root`` (waiting for it), or None when there is no usable one.
    Raises ScanCancelled when ``cancel`` is set while waiting."""
    with _lock:
        child = _children.get(_key(root, min_per_class))
    if child is None:
        return None
    shown = (0, 0)
    with child.lock:
        while not child.index_arrived:
            if cancel is not None and cancel.is_set():
                _forget(child)
                raise ScanCancelled()
            child.pump(wait=0.1)
            if progress is not None and child.progress != shown and child.progress[1]:
                shown = child.progress
                progress(*shown)
        index = child.index
    if index is None:
        _forget(child)
        return None
    if progress is not None:
        total = child.progress[1] or len(index.samples)  # files looked at, as a scan counts
        progress(total, total)
    return index


def take_image(path: str, min_size: int | None) -> Image.Image | None:
    """The child's decoding of ``path`` for ``min_size`` (each image is handed out once), or
    None. The first call stops a child that is still decoding."""
    if not _children:
        return None
    with _lock:
        children = list(_children.values())
    for child in children:
        if child.min_size != min_size:
            continue
        with child.lock:
            if child.closed:
                continue
            child.stop()  # once: the run decodes what the child has not reached
            entry = child.images.pop(path, None)
            if entry is None:
                continue
            mode, size, offset, length = entry
            try:
                data = os.pread(child.fd, length, offset)
            except OSError:
                data = b""
            if not child.images:
                _forget(child)
        if len(data) == length:
            return Image.frombytes(mode, size, data)
    return None


def _forget(child: _Child) -> None:
    child.close()
    with _lock:
        if _children.get(child.key) is child:
            del _children[child.key]


def discard() -> None:
    """Stop every child and free its pixels (a run that ends, a test)."""
    with _lock:
        children = list(_children.values())
        _children.clear()
    for child in children:
        with child.lock:
            child.close()
