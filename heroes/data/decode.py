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
* Memory budget: decoding needs ``decode_bytes`` (the image as Pillow stores it,
  width x height x bands x bytes per sample plus a pointer per row, its RGB copy,
  and the working copies of transparency and wide samples). Above ``max_bytes``
  (default ``DEFAULT_MAX_BYTES`` = 1 GiB) a JPEG is decoded at 1/2, 1/4 or 1/8 scale
  by libjpeg's DCT scaling (``Image.draft``); any other format is refused. A
  1 x 49,000,000 image, under the pixel limit, is refused: its row pointers alone
  take 392 MB.
* A header that claims more pixels than the file's bytes can hold is refused before
  decoding: a Huffman-coded JPEG spends at least one bit per 8 x 8 block, deflate
  packs at most 1032 bytes into one (PNG).
* Truncated files are rejected (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False;
  PNGs are also checked chunk by chunk, WebPs against their declared RIFF size).
* Every failure is a ``DecodeError`` with a short human-readable ``reason``.

Evaluation resize policy (``fit_and_crop``): scale the shorter side to ``size`` with
Pillow BICUBIC (``reducing_gap=3.0``), preserving the aspect ratio, then take the
centre square. Both steps are done in one ``resize(box=...)`` call.
"""

import math
import os
import re
import struct
import zlib
from contextlib import contextmanager

import numpy
from PIL import Image, ImageMode, ImageOps

from heroes.io import file_problem

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 2**30
ROW_POINTER = 8  # bytes Pillow keeps per image row, whatever its width
JPEG_SCALES = (1, 2, 4, 8)  # libjpeg's DCT scaling: decode at 1/1, 1/2, 1/4 or 1/8 of each side
DEFLATE_MAX_RATIO = 1032  # one bit of length and one of distance give at most 258 bytes
# Start-of-frame markers of arithmetic-coded JPEGs, which can spend less than a bit per block.
ARITHMETIC_SOF = tuple(b"\xff" + bytes([marker]) for marker in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
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


def decode_image(path, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    """Decode ``path`` by content into a loaded RGB image, or raise ``DecodeError``.

    A JPEG too large for ``max_bytes`` comes back scaled down; ``image.info["full_size"]`` is its size as displayed.
    """
    with _loaded(path, max_pixels, max_bytes) as (source, facts):
        rgb = to_rgb(source)
    rgb.format = facts["format"]
    rgb.info.update(source_mode=facts["mode"], full_size=(facts["width"], facts["height"]))
    return rgb


def inspect_image(path, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Decode every pixel of ``path`` to prove it whole, and say what it is: width and height as displayed, format
    and mode; ``DecodeError`` exactly when ``decode_image`` would raise one.

    A JPEG is decoded at 1/8 scale: libjpeg still reads the whole stream, the pixels take 1/64 of the memory.
    """
    with _loaded(path, max_pixels, max_bytes, smallest=True) as (source, facts):
        to_rgb(source.crop((0, 0, 1, 1)))  # the mode converts
    return facts


def image_bytes(size, mode: str) -> int:
    """Bytes Pillow holds for an image: width x height x bands x bytes per sample (several bands padded to 4, as
    Pillow stores them) plus a pointer per row."""
    width, height = size
    try:
        sample = numpy.dtype(ImageMode.getmode(mode).typestr).itemsize
        pixel = 4 if Image.getmodebands(mode) > 1 else sample
    except (KeyError, TypeError, ValueError):
        pixel = 4
    return height * (width * pixel + ROW_POINTER)


def decode_bytes(size, mode: str, transparent: bool = False) -> int:
    """Peak bytes of ``decode_image`` for a ``size`` image stored as ``mode``: the decoded image and its RGB copy,
    plus two RGBA copies to blend transparency over white, or the int64/float64 arrays that scale wide samples."""
    width, height = size
    needed = image_bytes(size, mode) + image_bytes(size, "RGB")
    if transparent:
        needed += 2 * image_bytes(size, "RGBA")
    if mode.startswith("I") or mode == "F":
        needed += 16 * width * height
    return needed


@contextmanager
def _loaded(path, max_pixels: int, max_bytes: int, smallest: bool = False):
    """The image at ``path``, checked, loaded and turned upright, with its facts (size as displayed, format, mode).

    ``smallest``: JPEGs at 1/8 scale whatever the budget (``inspect_image``).
    """
    _check_readable(path)
    with _decode_errors(path, max_pixels), Image.open(path) as source:
        facts = {"width": source.width, "height": source.height, "format": source.format, "mode": source.mode}
        _check_pixels(source.size, max_pixels)
        _check_plausible(path, source)
        _fit_budget(source, max_bytes, smallest)
        source.load()
        _check_complete(path, facts["format"])
        loaded = source.size
        _apply_orientation(source)
        if source.size != loaded:  # turned a quarter: the size as displayed swaps too
            facts["width"], facts["height"] = facts["height"], facts["width"]
        yield source, facts


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


def _apply_orientation(image: Image.Image) -> None:
    """Rotate/flip per EXIF, in place (no third copy of the pixels); a corrupt EXIF block leaves them as stored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except _DECODER_ERRORS:
        pass


def _check_readable(path) -> None:
    """A plain, non-empty file (a FIFO would block; Pillow says "cannot identify" for zero bytes): say what it is."""
    problem = file_problem(path)
    if problem:
        raise DecodeError(problem)
    if os.path.getsize(path) == 0:
        raise DecodeError("empty file")


def _check_plausible(path, source: Image.Image) -> None:
    """Refuse a header that claims more pixels than the file's bytes can encode, before any pixel is allocated."""
    width, height = source.size
    size = os.path.getsize(path)
    if source.format in ("JPEG", "MPO"):
        with open(path, "rb") as handle:
            head = handle.read(65536)
        if any(marker in head for marker in ARITHMETIC_SOF):
            return  # arithmetic coding (rare) is not bounded by a bit per block
        needed = math.ceil(width / 8) * math.ceil(height / 8) / 8
    elif source.format == "PNG":
        needed = height * (1 + math.ceil(width / 8)) / DEFLATE_MAX_RATIO  # a filter byte per row, 1 bit per pixel
    else:
        return
    if size < needed:
        raise DecodeError(f"corrupt image data: {width}x{height} pixels cannot fit in {size:,} bytes "
                          f"(a {source.format} that size needs at least {math.ceil(needed):,})")


def _fit_budget(source: Image.Image, max_bytes: int, smallest: bool) -> None:
    """Scale a JPEG down (DCT scaling) until decoding fits ``max_bytes``; refuse any other image that does not."""
    transparent = source.mode in ("RGBA", "LA", "PA") or "transparency" in source.info
    jpeg = source.format in ("JPEG", "MPO")
    scales = JPEG_SCALES[-1:] if jpeg and smallest else JPEG_SCALES if jpeg else (1,)
    width, height = source.size
    for scale in scales:
        scaled = (math.ceil(width / scale), math.ceil(height / scale))
        if not max_bytes or decode_bytes(scaled, source.mode, transparent) <= max_bytes:
            if scale > 1:  # libjpeg scales both sides alike: a 1-pixel-wide JPEG does not shrink
                source.draft(source.mode, (max(1, width // scale), max(1, height // scale)))
            break
    needed = decode_bytes(source.size, source.mode, transparent)
    if max_bytes and needed > max_bytes:
        raise DecodeError(f"too large to decode: {width}x{height} {source.mode} needs {_mebibytes(needed)} MiB, "
                          f"over the {_mebibytes(max_bytes)} MiB memory budget")


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


def _mebibytes(count: int) -> str:
    return f"{count / 2**20:,.0f}"


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
