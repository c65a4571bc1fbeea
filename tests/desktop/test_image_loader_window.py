"""Thumbnails of DICOM files show the window they are asked for, and nothing else changes it."""

from __future__ import annotations

import numpy as np
from dicom_synth import write_dicom


def _ct(tmp_path):
    """Four HU bands (air, lung, soft tissue, bone) of a 12-bit CT-like slice."""
    hu = np.repeat(np.array([-1000, -700, 40, 1000], dtype=np.int32), 16)[None, :].repeat(64, 0)
    return write_dicom(
        tmp_path / "ct.dcm", (hu + 1024).astype(np.uint16), bits_stored=12, intercept=-1024.0
    )


def _row(image) -> list[int]:
    return [image.pixelColor(x, 32).red() for x in (8, 24, 40, 56)]


def test_decode_for_display_uses_the_window_it_is_given(tmp_path, qtbot):
    from desktop.widgets.image_loader import ImageLoader, decode_for_display

    path = str(_ct(tmp_path))
    lung, bone = (_row(decode_for_display(path, 64, window=w)) for w in ("lung", "bone"))
    assert lung[1] > 0 and bone[1] == 0  # lung tissue shows under the lung window only
    assert bone[3] < 255 and lung[3] == 255  # bone has detail under the bone window only

    loader = ImageLoader()
    got: dict[int, list[int]] = {}

    def take(_path, _size, token, image, _why) -> None:
        got[token] = _row(image)

    loader.loaded.connect(take)
    loader.request(path, 64, 1, window="bone")
    loader.request(path, 64, 2, window="lung")
    qtbot.waitUntil(lambda: len(got) == 2, timeout=10_000)
    assert got == {1: bone, 2: lung}
    loader.wait_for_done()
