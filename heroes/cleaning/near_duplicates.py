"""Perceptual hashes packed into uint64 words, and a blocked, vectorised Hamming search over them.

The hash of a picture is six 64-bit imagehash hashes: pHash and dHash of each of
its Y, Cb and Cr planes (384 bits); the distance between two pictures is the
Hamming distance summed over the six. Colour planes matter here: on the embedded
set, same-class close-ups share their grey-level layout, and the grey pHash + dHash
pair cannot separate them from cropped copies (``heroes.cleaning.truth`` measures it).

Search complexity: ``close_pairs`` compares every pair once, but never in a Python
loop: it takes a block of ``b`` hashes at a time and XORs it against all later
hashes in one numpy operation per 64-bit word, counting bits with
``numpy.bitwise_count``. That is O(n² · w / 2) word operations for n hashes of w
words, in O(b · n) memory (``BLOCK_ELEMENTS`` caps a block at 1M pairs, about
11 MB). Measured on one busy core: 1,784 hashes of 6 words in 0.04 s, 20,000
(2·10⁸ pairs) in 1.8 s. Past a few hundred thousand images a sub-quadratic index
(multi-index hashing, a BK-tree) would pay off; at the study's scale the
brute-force block wins on simplicity and exactness.
"""

import imagehash
import numpy
from PIL import Image

HASH_BITS = 64
HASH_WORDS = 6  # pHash Y, dHash Y, pHash Cb, dHash Cb, pHash Cr, dHash Cr
# Hashes are taken from a 64x64 box-filtered copy: 3x faster than hashing the full
# image, and the box filter averages away JPEG and sensor noise first.
HASH_SOURCE_SIDE = 64
# Pairs compared per block (block rows x n): 1M pairs = 8 MB of XOR words, cache-friendly.
BLOCK_ELEMENTS = 1_000_000


def pack(image_hash: imagehash.ImageHash) -> numpy.uint64:
    """An 8x8 imagehash as one uint64 (row-major bits, most significant first)."""
    bits = numpy.asarray(image_hash.hash, dtype=bool).reshape(-1)
    if bits.size != HASH_BITS:
        raise ValueError(f"expected a {HASH_BITS}-bit hash, got {bits.size} bits")
    return numpy.frombuffer(numpy.packbits(bits).tobytes(), dtype=">u8")[0].astype(numpy.uint64)


def perceptual_hash(image) -> numpy.ndarray:
    """pHash and dHash of the Y, Cb and Cr planes of an RGB PIL image: (6,) uint64."""
    small = image.convert("RGB").resize((HASH_SOURCE_SIDE, HASH_SOURCE_SIDE), Image.Resampling.BOX)
    words = []
    for plane in small.convert("YCbCr").split():
        words += [pack(imagehash.phash(plane)), pack(imagehash.dhash(plane))]
    return numpy.array(words, dtype=numpy.uint64)


def to_hex(words) -> str:
    """A packed hash as hex digits, 16 per word (how hashes are written to CSV)."""
    return "".join(f"{int(word):016x}" for word in numpy.atleast_1d(words))


def from_hex(values) -> numpy.ndarray:
    """Hex strings back to an (n, words) uint64 array."""
    values = list(values)
    width = len(values[0]) // 16 if values else HASH_WORDS
    return numpy.array([[int(value[16 * k:16 * k + 16], 16) for k in range(width)] for value in values],
                       dtype=numpy.uint64).reshape(len(values), width)


def distances(a, b) -> numpy.ndarray:
    """Hamming distance between (..., words) packed hashes, summed over the last axis."""
    xor = numpy.asarray(a, dtype=numpy.uint64) ^ numpy.asarray(b, dtype=numpy.uint64)
    return numpy.bitwise_count(xor).sum(axis=-1, dtype=numpy.int64)


def _as_words(hashes) -> numpy.ndarray:
    """(n,) or (n, w) uint64 -> (n, w)."""
    hashes = numpy.asarray(hashes, dtype=numpy.uint64)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    if hashes.ndim != 2:
        raise ValueError(f"hashes must be (n,) or (n, words), got shape {hashes.shape}")
    return hashes


def close_pairs(hashes, threshold: int) -> tuple:
    """Every pair ``i < j`` whose Hamming distance is at most ``threshold``.

    ``hashes`` is (n,) or (n, w) uint64; with several words the distance is summed
    over them. Returns ``(pairs, distance)``: an (m, 2) int64 array sorted by
    (i, j) and the (m,) distances. Complexity in the module docstring.
    """
    columns = numpy.ascontiguousarray(_as_words(hashes).T)  # (w, n): each word contiguous
    width, count = columns.shape
    block = max(1, BLOCK_ELEMENTS // max(1, count))
    found, found_distance = [], []
    for start in range(0, count, block):
        stop = min(count, start + block)
        # Rows [start, stop) against every row from `start` on: each pair once.
        shape = (stop - start, count - start)
        distance = numpy.zeros(shape, dtype=numpy.uint16)
        xor, bits = numpy.empty(shape, dtype=numpy.uint64), numpy.empty(shape, dtype=numpy.uint8)
        for word in columns:
            numpy.bitwise_xor(word[start:stop, None], word[None, start:], out=xor)
            distance += numpy.bitwise_count(xor, out=bits)
        rows, others = numpy.nonzero(distance <= threshold)
        upper = others + start > rows + start
        rows, others = rows[upper], others[upper]
        found.append(numpy.stack([rows + start, others + start], axis=1))
        found_distance.append(distance[rows, others])
    if not found:
        return numpy.empty((0, 2), dtype=numpy.int64), numpy.empty(0, dtype=numpy.int64)
    return numpy.concatenate(found).astype(numpy.int64), numpy.concatenate(found_distance).astype(numpy.int64)
