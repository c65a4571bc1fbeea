"""load_image: every format and mode becomes an upright 8-bit RGB image, or an ImageError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from data_fixtures import image, jpeg_bytes, save
from PIL import Image, PngImagePlugin

from engine.data import IMAGE_EXTENSIONS, ImageError, ProblemKind, load_image


def rgb_at(img: Image.Image, xy=(2, 2)) -> tuple[int, int, int]:
    assert img.mode == "RGB"
    return img.getpixel(xy)


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [
        ("JPEG", ".jpg"),
        ("PNG", ".png"),
        ("BMP", ".bmp"),
        ("TIFF", ".tif"),
        ("WEBP", ".webp"),
        ("PPM", ".ppm"),
    ],
)
def test_common_formats_load_as_rgb(tmp_path, fmt, suffix):
    assert suffix in IMAGE_EXTENSIONS
    src = Image.new("RGB", (12, 8), (200, 30, 30))
    path = save(src, tmp_path / f"a{suffix}", fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    img = load_image(path)
    assert img.size == (12, 8) and img.mode == "RGB"
    assert np.allclose(rgb_at(img), (200, 30, 30), atol=6)


def test_tiff_16_bit_is_rescaled_not_clamped(tmp_path):
    arr = np.array([[0, 32768, 65535, 4096]], dtype=np.uint16)
    path = save(Image.fromarray(arr), tmp_path / "deep.tif")
    assert Image.open(path).mode.startswith("I;16")
    img = load_image(path)
    values = [img.getpixel((x, 0))[0] for x in range(4)]
    assert values == [0, 128, 255, 16]


def test_png_16_bit_with_a_12_bit_sbit_uses_the_real_depth(tmp_path):
    arr = np.array([[0, 2048, 4095]], dtype=np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([12]))
    path = save(Image.fromarray(arr), tmp_path / "sensor.png", pnginfo=info)
    values = [load_image(path).getpixel((x, 0))[0] for x in range(3)]
    assert values == [0, 128, 255]
    plain = save(Image.fromarray(arr), tmp_path / "plain.png")
    assert load_image(plain).getpixel((2, 0))[0] == 16  # 4095 of 65535, no sBIT


def test_float_images_are_scaled(tmp_path):
    arr = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = save(Image.fromarray(arr, mode="F"), tmp_path / "f.tif")
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_gif_loads_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert rgb_at(load_image(path)) == (255, 0, 0)


def test_grayscale_and_bilevel(tmp_path):
    gray = save(Image.new("L", (6, 6), 77), tmp_path / "g.png")
    assert rgb_at(load_image(gray)) == (77, 77, 77)
    one = save(Image.new("1", (6, 6), 1), tmp_path / "b.png")
    assert rgb_at(load_image(one)) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    img.putpixel((0, 0), 0)
    path = save(img, tmp_path / "p.png", transparency=0)
    loaded = load_image(path)
    assert rgb_at(loaded, (0, 0)) == (255, 255, 255)
    assert rgb_at(loaded, (3, 3)) == (10, 200, 10)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(tmp_path, mode):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.putpixel((1, 1), (0, 0, 0, 255))
    img.putpixel((2, 2), (0, 0, 0, 128))
    path = save(img.convert(mode), tmp_path / "a.png")
    loaded = load_image(path)
    assert rgb_at(loaded, (0, 0)) == (255, 255, 255)
    assert rgb_at(loaded, (1, 1)) == (0, 0, 0)
    assert 120 <= rgb_at(loaded, (2, 2))[0] <= 135


def test_cmyk_jpeg_and_tiff(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    for path in (save(cmyk, tmp_path / "c.jpg", quality=95), save(cmyk, tmp_path / "c.tif")):
        r, g, b = rgb_at(load_image(path))
        assert r > 240 and g < 15 and b < 15


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes())
    assert Image.open(path).size == (20, 10)
    assert load_image(path).size == (10, 20)


def test_jpeg_draft_decodes_small_but_never_below_min_size(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(Image.effect_noise((800, 600), 40).convert("RGB")))
    assert load_image(path).size == (800, 600)
    for min_size in (50, 75, 76, 150, 224, 300, 301, 600, 1000):
        w, h = load_image(path, min_size=min_size).size
        assert min(w, h) >= min(min_size, 600), (min_size, w, h)
        assert abs(w / h - 800 / 600) < 0.02
    assert load_image(path, min_size=75).size == (100, 75)  # decoded at 1/8 scale
    assert load_image(path, min_size=224).size == (400, 300)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (100, 50)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="safety limit") as err:
            load_image(path)
    assert err.value.kind is ProblemKind.TOO_LARGE and "big.png" in str(err.value)
    # Where warnings are errors, Pillow raises the warning itself: still an ImageError.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError) as err:
            load_image(path)
    assert err.value.kind is ProblemKind.TOO_LARGE
    # Over twice the limit Pillow raises DecompressionBombError.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert err.value.kind is ProblemKind.TOO_LARGE


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (b"", ProblemKind.EMPTY_FILE, "is empty"),
        (b"hello, this is text", ProblemKind.NOT_IMAGE, "is not an image"),
        (b"\x89PNG\r\n\x1a\n", ProblemKind.UNREADABLE, "damaged"),
        (
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
            ProblemKind.NOT_IMAGE,
            "is not an image",
        ),
    ],
)
def test_bad_files_raise_image_error_naming_the_file(tmp_path, data, kind, words):
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert err.value.kind is kind and words in str(err.value) and str(path) in str(err.value)


def test_truncated_jpeg_and_missing_file(tmp_path):
    data = jpeg_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="truncated") as err:
        load_image(path, min_size=8)
    assert err.value.kind is ProblemKind.TRUNCATED
    with pytest.raises(ImageError, match="gone") as err:
        load_image(tmp_path / "missing.png")
    assert err.value.kind is ProblemKind.UNREADABLE


def test_image_error_survives_pickling():
    import pickle

    err = ImageError("x.png is truncated.", ProblemKind.TRUNCATED, "is truncated")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.kind is ProblemKind.TRUNCATED
    assert back.reason == "is truncated"


def test_loaded_image_does_not_keep_the_file_open(tmp_path):
    path = save(image(3), tmp_path / "x.png")
    img = load_image(path)
    path.unlink()
    assert img.copy().size == (16, 16)
