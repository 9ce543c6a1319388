"""decode_image: every Pillow mode to sane RGB, by content, and every bad file to a DecodeError reason."""

import struct
import time
import warnings
import zlib

import numpy
import pytest
from PIL import Image, ImageFile

from heroes.data.decode import DecodeError, decode_image, fit_and_crop, to_rgb


def save(tmp_path, image, name, image_format, **options):
    path = tmp_path / name
    image.save(path, image_format, **options)
    return path


def pixel(path_or_image, xy=(0, 0)):
    image = decode_image(path_or_image) if not isinstance(path_or_image, Image.Image) else path_or_image
    assert image.mode == "RGB"
    return image.getpixel(xy)


def close(actual, expected, tolerance=3):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


@pytest.mark.parametrize("mode, color, expected", [
    ("1", 1, (255, 255, 255)),
    ("L", 100, (100, 100, 100)),
    ("LA", (0, 0), (255, 255, 255)),
    ("LA", (0, 255), (0, 0, 0)),
    ("RGBA", (255, 0, 0, 128), (255, 127, 127)),
    ("RGBA", (0, 0, 255, 0), (255, 255, 255)),
    ("CMYK", (255, 0, 0, 0), (0, 255, 255)),
    ("YCbCr", (76, 85, 255), (254, 0, 0)),
    ("LAB", (255, 128, 128), (255, 255, 255)),
    ("I", 200, (200, 200, 200)),
    ("I", 65535, (255, 255, 255)),
    ("F", 0.5, (128, 128, 128)),
    ("F", 300.0, (255, 255, 255)),
])
def test_tiff_modes_become_sane_rgb(tmp_path, mode, color, expected):
    path = save(tmp_path, Image.new(mode, (4, 4), color), "image.tif", "TIFF")
    image = decode_image(path)
    assert image.info["source_mode"] == mode and image.format == "TIFF"
    assert close(pixel(image), expected, tolerance=6), pixel(image)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = numpy.array([[0, 257 * 100], [32768, 65535]], dtype=numpy.uint16)
    path = save(tmp_path, Image.fromarray(values), "deep.png", "PNG")
    image = decode_image(path)
    assert image.info["source_mode"].startswith("I;16")
    assert [pixel(image, xy)[0] for xy in [(0, 0), (1, 0), (0, 1), (1, 1)]] == [0, 100, 128, 255]


def test_int32_wide_range_is_stretched():
    values = numpy.array([[-1000, 0], [500, 100000]], dtype=numpy.int32)
    image = to_rgb(Image.fromarray(values, "I"))
    assert pixel(image, (0, 0)) == (0, 0, 0) and pixel(image, (1, 1)) == (255, 255, 255)


def test_hsv_converts_in_memory():
    assert close(pixel(to_rgb(Image.new("HSV", (2, 2), (0, 255, 255)))), (255, 0, 0))


def test_palette_with_transparency_is_white_where_transparent(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    path = save(tmp_path, image, "palette.png", "PNG", transparency=0)
    decoded = decode_image(path)
    assert pixel(decoded, (0, 0)) == (255, 255, 255)
    assert pixel(decoded, (1, 1)) == (255, 0, 0)


def test_adobe_cmyk_jpeg(tmp_path):
    path = save(tmp_path, Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "cmyk.jpg", "JPEG", quality=95)
    assert close(pixel(path), (0, 255, 255), tolerance=6)


def test_exif_orientation_six_rotates(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path, image, "rotated.jpg", "JPEG", exif=exif, quality=95)
    decoded = decode_image(path)
    assert decoded.size == (20, 40)
    assert close(pixel(decoded, (10, 2)), (0, 0, 255), tolerance=40)  # left edge turned to the top


@pytest.mark.parametrize("image_format, name", [("PNG", "wrong.jpg"), ("WEBP", "wrong.png"), ("GIF", "wrong.jpeg")])
def test_content_wins_over_extension(tmp_path, image_format, name):
    path = save(tmp_path, Image.new("RGB", (6, 5), (0, 255, 0)), name, image_format)
    decoded = decode_image(path)
    assert decoded.format == image_format and decoded.size == (6, 5)
    assert close(pixel(decoded), (0, 255, 0), tolerance=10)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), color) for color in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert close(pixel(path), (255, 0, 0), tolerance=10)


@pytest.mark.parametrize("image_format, cut", [("JPEG", 0.5), ("JPEG", -2), ("PNG", 0.5), ("PNG", -20), ("WEBP", 0.7)])
def test_truncated_files_are_rejected(tmp_path, image_format, cut):
    rng = numpy.random.default_rng(0)
    whole = save(tmp_path, Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=numpy.uint8)), "whole", image_format)
    content = whole.read_bytes()
    end = int(len(content) * cut) if cut > 0 else len(content) + cut
    path = tmp_path / "cut.img"
    path.write_bytes(content[:end])
    with pytest.raises(DecodeError, match="truncated"):
        decode_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match="^empty file$"):
        decode_image(path)


def test_html_named_png(tmp_path):
    path = tmp_path / "page.png"
    path.write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>\n")
    with pytest.raises(DecodeError, match=r"not an image \(looks like HTML/text\)"):
        decode_image(path)


def test_folder_is_unreadable_not_corrupt(tmp_path):
    with pytest.raises(DecodeError, match="^unreadable"):
        decode_image(tmp_path)


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DecodeError, match="not an image"):
        decode_image(path)


def png_header(width, height):
    """A tiny PNG that declares ``width`` x ``height`` pixels: signature, IHDR, one empty IDAT, IEND."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (10_000, 10_000), (10_000, 6_000)])
def test_decompression_bomb_is_refused_from_the_header(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(width, height))
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="too large") as caught, warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's bomb warning must not escape either
        decode_image(path)
    assert time.perf_counter() - started < 1.0
    assert "exceeds limit" in caught.value.reason
    assert Image.MAX_IMAGE_PIXELS == 89478485  # untouched


def test_max_pixels_is_a_parameter(tmp_path):
    path = save(tmp_path, Image.new("RGB", (100, 100)), "small.png", "PNG")
    with pytest.raises(DecodeError, match=r"too large: 100x100"):
        decode_image(path, max_pixels=5000)


def test_fit_and_crop_keeps_aspect_and_centres():
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 255, 0), (100, 0, 200, 100))  # the centre third is green
    array = fit_and_crop(image, 32)
    assert array.shape == (32, 32, 3) and array.dtype == numpy.uint8
    assert close(array[16, 16], (0, 255, 0))
    assert fit_and_crop(Image.new("L", (10, 30)), 8).shape == (8, 8, 3)
    with pytest.raises(ValueError):
        fit_and_crop(image, 0)
