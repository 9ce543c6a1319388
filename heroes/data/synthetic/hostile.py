"""Hostile image files for tests and benchmarks: headers that claim far more pixels than the file holds."""

import io
import struct
import zlib

from PIL import Image


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, mode_bits=(8, 2)) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height`` pixels (8-bit RGB by default)."""
    header = struct.pack(">IIBBBBB", width, height, *mode_bits, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b""))
            + _png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A 16 x 16 JPEG whose frame header claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.find(b"\xff\xc0")
    data[frame + 5: frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)
