"""Decoding images for display off the GUI thread: a QThreadPool of QRunnables."""

from __future__ import annotations

import itertools

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter


class _LoaderSignals(QObject):
    """Carries results from pool threads; queued to the loader in the GUI thread."""

    loaded = Signal(str, int, int, object, str)  # path, size, token, QImage | None, sentence


class _DecodeRunnable(QRunnable):
    def __init__(
        self,
        path: str,
        size: int,
        token: int,
        square: bool,
        signals: _LoaderSignals,
        window: str | None = None,
    ) -> None:
        super().__init__()
        self.path, self.size, self.token, self.square = path, size, token, square
        self.signals, self.window = signals, window

    def run(self) -> None:
        image, sentence = None, ""
        try:
            image = decode_for_display(self.path, self.size, square=self.square, window=self.window)
        except Exception as exc:  # ImageError reads as a sentence; anything else is named
            from engine import ImageError

            sentence = str(exc) if isinstance(exc, ImageError) else f"{type(exc).__name__}: {exc}"
        self.signals.loaded.emit(self.path, self.size, self.token, image, sentence)


def decode_for_display(
    path: str, size: int, *, square: bool = False, window: str | None = None
) -> QImage:
    """The image at ``path`` fitted into ``size`` x ``size`` pixels (call off the GUI thread);
    ``square`` centres it on a transparent square, so a grid of them lines up. ``window``: the
    DICOM window to show it with (a run's ``data.dicom_window``; None: the file's own), passed
    explicitly so a run training in another thread never changes what a page shows.

    An image that uses a narrow part of its intensity range (a thresholded export with a few grey
    levels looks black) is shown stretched, as data.intensity 'auto' trains on it."""
    from PIL import ImageOps

    from engine import IntensityStretch, image_stats, load_image

    picture = ImageOps.contain(load_image(path, min_size=size, window=window), (size, size))
    if image_stats(picture).narrow:
        picture = IntensityStretch()(picture)
    data = picture.tobytes("raw", "RGB")
    width, height = picture.size
    # copy(): the QImage must own its pixels once ``data`` goes away.
    image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    if not square or (width, height) == (size, size):
        return image
    canvas = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(0)
    painter = QPainter(canvas)  # painting on a QImage is allowed outside the GUI thread
    painter.drawImage((size - width) // 2, (size - height) // 2, image)
    painter.end()
    return canvas


class ImageLoader(QObject):
    """Decodes images in background threads; ``loaded`` arrives in the GUI thread.

    Newer requests run first (a user scrolling wants what is on screen now). ``clear()`` drops
    requests that have not started; ``token`` lets a caller ignore results of an older batch.
    """

    loaded = Signal(str, int, int, object, str)  # path, size, token, QImage | None, sentence

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._signals = _LoaderSignals()  # no parent: runnables keep it alive while they run
        self._signals.loaded.connect(self._on_signals_loaded)
        self._priority = itertools.count()

    def request(
        self,
        path: str,
        size: int,
        token: int = 0,
        *,
        square: bool = False,
        window: str | None = None,
    ) -> None:
        """Decode ``path`` for ``size`` in the pool (DICOM files with ``window``; None: the
        file's own); the result arrives as ``loaded``."""
        runnable = _DecodeRunnable(path, size, token, square, self._signals, window)
        self._pool.start(runnable, min(next(self._priority), 2**31 - 1))

    def clear(self) -> None:
        """Forget queued requests that have not started."""
        self._pool.clear()

    def wait_for_done(self, msecs: int = -1) -> bool:
        """Block until every started request has finished (for shutdown and tests)."""
        return self._pool.waitForDone(msecs)

    @property
    def active(self) -> bool:
        return self._pool.activeThreadCount() > 0

    def _on_signals_loaded(
        self, path: str, size: int, token: int, image: QImage | None, sentence: str
    ) -> None:
        self.loaded.emit(path, size, token, image, sentence)
