"""Render resources/icons/refit-studio.svg into the app icons the bundle needs.

    QT_QPA_PLATFORM=offscreen python scripts/make_icons.py

Writes refit-studio.ico (Windows), refit-studio.icns (macOS) and refit-studio-256.png (Linux:
the executable and the .desktop entry) next to the SVG. Rendered with Qt's SVG renderer, saved
with Pillow. The outputs are committed; run this again after changing the SVG.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)


def render(svg: Path, side: int):
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG file.")
    image = QImage(side, side, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    svg = ICONS / "refit-studio.svg"
    images = {side: render(svg, side) for side in SIZES}
    images[256].save(ICONS / "refit-studio-256.png")
    images[256].save(
        ICONS / "refit-studio.ico",
        sizes=[(s, s) for s in SIZES if s <= 256],
        append_images=[images[s] for s in SIZES if s < 256],
    )
    images[1024].save(
        ICONS / "refit-studio.icns", append_images=[images[s] for s in (16, 32, 64, 128, 256, 512)]
    )
    for name in ("refit-studio.ico", "refit-studio.icns", "refit-studio-256.png"):
        print(f"wrote {ICONS / name} ({(ICONS / name).stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
