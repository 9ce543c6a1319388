"""Time ``heroes.data.scan`` on 1,500 generated 224 px images (JPEG/PNG/WebP mixed, six classes)."""

import argparse
import tempfile
import time
from pathlib import Path

import numpy
from PIL import Image

from heroes.data import scan

CLASSES = ["Batman", "Captain Marvel", "Superman", "Wonder Woman", "Deadpool", "Not a hero"]
FORMATS = [
    ("JPEG", ".jpg", {"quality": 90}),
    ("PNG", ".png", {"compress_level": 1}),
    ("WEBP", ".webp", {"quality": 80, "method": 2}),
]


def draw(rng: numpy.random.Generator, size: int) -> Image.Image:
    """A smooth random colour field with a few rectangles: photo-like enough for the codecs."""
    small = rng.integers(0, 256, (8, 8, 3), dtype=numpy.uint8)
    image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    pixels = numpy.array(image)
    for _ in range(3):
        top, left = rng.integers(0, size - 16, 2)
        height, width = rng.integers(8, size // 2, 2)
        pixels[top:top + height, left:left + width] = rng.integers(0, 256, 3)
    noise = rng.integers(-12, 13, pixels.shape)
    return Image.fromarray(numpy.clip(pixels + noise, 0, 255).astype(numpy.uint8))


def generate(root: Path, count: int, size: int, seed: int) -> None:
    """Write ``count`` images spread over the six classes, formats cycling JPEG/PNG/WebP."""
    rng = numpy.random.default_rng(seed)
    for index in range(count):
        folder = root / CLASSES[index % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        image_format, suffix, options = FORMATS[index % len(FORMATS)]
        draw(rng, size).save(folder / f"{index:05d}{suffix}", image_format, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1500, help="images to generate (default 1500)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--workers", type=int, default=None, help="scan processes (default: scan's own choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heroes-scan-bench-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        generate(root, args.count, args.size, args.seed)
        print(f"generated {args.count} images of {args.size} px in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        manifest = scan.scan(root, progress=False, workers=args.workers)
        seconds = time.perf_counter() - started
    ok = int((manifest["status"] == "ok").sum())
    print(f"scan: {len(manifest)} files ({ok} ok) in {seconds:.2f} s = {len(manifest) / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
