"""Decode any image file by its content with Pillow into a fully loaded 8-bit RGB image.

Policies (others rely on them):

* The format is whatever Pillow detects from the bytes; the extension is ignored.
  The detected name is kept on the result as ``image.format`` ("JPEG", "PNG",
  "WEBP", "GIF", "BMP", "TIFF", "MPO" for multi-picture phone JPEGs...), and the
  original mode as ``image.info["source_mode"]``.
* EXIF orientation is applied, so ``image.size`` is the size as displayed.
* Animated files (GIF, WebP, APNG) give their first frame.
* Transparency is composited over white (a true alpha blend, not a dropped channel).
* 16-bit greyscale (``I;16*``) is scaled 0..65535 -> 0..255 (divide by 257), never clipped.
* 32-bit integer (``I``) is scaled by its actual range: kept when it fits 0..255,
  divided by 257 when it fits 0..65535, otherwise stretched min..max -> 0..255.
* Float (``F``): values within 0..1 are scaled by 255, anything else is clipped to
  0..255; NaN becomes 0.
* Decompression bombs are refused from the header before any pixel is allocated:
  width x height above ``max_pixels`` (default ``DEFAULT_MAX_PIXELS`` = 50 Mpx).
  Pillow's own hard limit (2 x ``Image.MAX_IMAGE_PIXELS``, about 179 Mpx) still
  applies on top; this module never changes ``Image.MAX_IMAGE_PIXELS``.
* Truncated files are rejected (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False;
  PNGs are also checked chunk by chunk, WebPs against their declared RIFF size).
* Every failure is a ``DecodeError`` with a short human-readable ``reason``.

Evaluation resize policy (``fit_and_crop``): scale the shorter side to ``size`` with
Pillow BICUBIC (``reducing_gap=3.0``), preserving the aspect ratio, then take the
centre square. Both steps are done in one ``resize(box=...)`` call.
"""

import os
import re
import struct
import zlib
from contextlib import contextmanager

import numpy
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 50_000_000
WHITE = (255, 255, 255, 255)
_SNIFF_BYTES = 512
# Magic numbers of formats Pillow reads: a file that starts like an image but
# cannot be identified is a damaged image, not "not an image".
_IMAGE_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
_OTHER_MAGIC = {
    b"%PDF": "PDF document",
    b"PK\x03\x04": "ZIP archive",
    b"\x1f\x8b": "gzip archive",
    b"ID3": "MP3 audio",
}
# Pillow raises a zoo of exception types on malformed input; all of them mean
# "this file cannot be decoded", so they are turned into DecodeError.
_DECODER_ERRORS = (
    OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError,
    struct.error, EOFError, zlib.error, MemoryError, OverflowError,
    ZeroDivisionError, RuntimeError, AttributeError, NotImplementedError,
)


class DecodeError(Exception):
    """An image file that cannot be decoded; ``reason`` is a short human-readable phrase."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` by content into a loaded RGB image, or raise ``DecodeError``."""
    _check_not_empty(path)
    with _decode_errors(path, max_pixels), Image.open(path) as source:
        source_format, source_mode = source.format, source.mode
        _check_pixels(source.size, max_pixels)
        source.load()
        _check_complete(path, source_format)
        rgb = to_rgb(_apply_orientation(source))
    rgb.format = source_format
    rgb.info["source_mode"] = source_mode
    return rgb


@contextmanager
def _decode_errors(path, max_pixels: int):
    """Turn whatever Pillow raises while opening or decoding ``path`` into a ``DecodeError``."""
    try:
        yield
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # warning: under -W error
        raise DecodeError(_bomb_reason(error, max_pixels)) from None
    except Image.UnidentifiedImageError:
        raise DecodeError(_unidentified_reason(path)) from None
    except _DECODER_ERRORS as error:
        # libwebp says only "could not create decoder object" for a cut file.
        truncated = _shorter_than_declared(path)
        raise DecodeError("truncated image data" if truncated else _error_reason(error)) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a loaded image of any Pillow mode to 8-bit RGB (policies in the module docstring)."""
    mode = image.mode
    try:
        if mode.startswith("I;16") or mode in ("I", "F"):
            return Image.fromarray(_scale_to_uint8(numpy.asarray(image), mode), "L").convert("RGB")
        if image.has_transparency_data:
            return _over_white(image.convert("RGBA"))
        return image.convert("RGB")
    except (ValueError, TypeError, OSError, KeyError) as error:
        raise DecodeError(f"unsupported mode {mode}") from error


def fit_and_crop(image: Image.Image, size: int) -> numpy.ndarray:
    """Resize the shorter side to ``size`` (aspect kept, BICUBIC) and centre-crop: uint8 (size, size, 3)."""
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels, got {size!r}")
    size = int(size)
    if image.mode != "RGB":
        image = to_rgb(image)
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    resized = image.resize(
        (size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0,
    )
    return numpy.asarray(resized, dtype=numpy.uint8)


def _scale_to_uint8(values: numpy.ndarray, mode: str) -> numpy.ndarray:
    """Map 16-bit, 32-bit integer or float pixels to 0..255 without clipping away the range."""
    if mode == "F":
        values = numpy.nan_to_num(values.astype(numpy.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return numpy.clip(numpy.rint(values), 0, 255).astype(numpy.uint8)
    values = values.astype(numpy.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if mode.startswith("I;16") or (low >= 0 and 255 < high <= 65535):
        return numpy.rint(values / 257.0).astype(numpy.uint8)
    if low >= 0 and high <= 255:
        return values.astype(numpy.uint8)
    # Signed or wider than 16 bits: there is no standard scale, so stretch the actual range.
    stretched = (values - low) * 255.0 / max(high - low, 1)
    return numpy.rint(stretched).astype(numpy.uint8)


def _over_white(rgba: Image.Image) -> Image.Image:
    """Alpha-blend an RGBA image over a white background."""
    background = Image.new("RGBA", rgba.size, WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip per EXIF; a corrupt EXIF block leaves the (valid) pixels as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODER_ERRORS:
        return image


def _check_not_empty(path) -> None:
    """Pillow says "cannot identify" for a zero-byte file; say what it is."""
    try:
        empty = os.stat(path).st_size == 0
    except OSError as error:
        raise DecodeError(f"unreadable: {error.strerror or error}") from None
    if empty:
        raise DecodeError("empty file")


def _check_pixels(size, max_pixels: int) -> None:
    """Refuse from the header alone, before ``load()`` allocates width x height pixels."""
    width, height = size
    if width < 1 or height < 1:
        raise DecodeError(f"invalid size {width}x{height}")
    if max_pixels and width * height > max_pixels:
        raise DecodeError(
            f"too large: {width}x{height} = {_megapixels(width * height)} Mpx "
            f"exceeds limit {_megapixels(max_pixels)} Mpx"
        )


def _check_complete(path, image_format: str) -> None:
    """Catch a PNG cut inside its last chunks: Pillow's decoder stops reading once it has the pixels."""
    if image_format == "PNG":
        with Image.open(path) as fresh:
            fresh.verify()  # walks every chunk and checks its CRC; raises when cut short


def _shorter_than_declared(path) -> bool:
    """True for a RIFF (WebP) file shorter than the size its header declares."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return False
    if len(header) < 12 or header[:4] != b"RIFF":
        return False
    return size < struct.unpack("<I", header[4:8])[0] + 8


def _megapixels(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _bomb_reason(error: Exception, max_pixels: int) -> str:
    """Pillow refused in ``Image.open`` (above its own hard limit); report the size it saw."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    if not found:
        return "too large: exceeds Pillow's decompression-bomb limit"
    pixels = int(found.group(1))
    limit = min(max_pixels or pixels, 2 * (Image.MAX_IMAGE_PIXELS or pixels))
    return f"too large: {_megapixels(pixels)} Mpx exceeds limit {_megapixels(limit)} Mpx"


def _error_reason(error: Exception) -> str:
    """A short phrase for an exception raised while reading pixels."""
    if isinstance(error, MemoryError):
        return "too large: out of memory while decoding"
    if isinstance(error, OSError) and error.errno is not None:
        return f"unreadable: {error.strerror}"  # the file system, not the image, failed
    message = " ".join(str(error).split())[:120]
    lowered = message.lower()
    if isinstance(error, EOFError) or "truncated" in lowered or "broken data stream" in lowered:
        return "truncated image data"
    return f"corrupt image data: {message or type(error).__name__}"


def _unidentified_reason(path) -> str:
    """Pillow cannot identify the file: say whether it is damaged, text, or something else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    for magic, name in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return f"corrupt image data: {name} header unreadable"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "corrupt image data: WEBP header unreadable"
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return f"not an image ({name})"
    if _looks_like_text(head):
        return "not an image (looks like HTML/text)"
    return "not an image (unrecognised format)"


def _looks_like_text(head: bytes) -> bool:
    """No NUL bytes and almost only printable ASCII / UTF-8 bytes."""
    if not head or b"\x00" in head:
        return False
    printable = sum(byte >= 32 or byte in b"\t\n\r\f" for byte in head)
    return printable >= 0.95 * len(head)
