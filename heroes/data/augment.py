"""Training-time augmentation: seeded resized crops, flips and colour jitter; fixed views for feature caches."""

import hashlib

import numpy
from PIL import Image

# Random resized crop (area fraction, aspect ratio) and a horizontal flip; part of every augmented view's key.
CROP_AREA = (0.6, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
AUGMENT_SPEC = f"flip+crop(area={CROP_AREA},ratio=({CROP_RATIO[0]:.4f},{CROP_RATIO[1]:.4f}))/v1"
AUGMENT_TAG = hashlib.sha256(AUGMENT_SPEC.encode()).hexdigest()[:8]


def _view_rng(sha256: str, view: int) -> numpy.random.Generator:
    return numpy.random.default_rng([int(sha256[:16], 16), view])


def _crop_and_flip(image: numpy.ndarray, rng: numpy.random.Generator, area_range=CROP_AREA) -> numpy.ndarray:
    """A random resized crop (area fraction in ``area_range``, aspect in ``CROP_RATIO``) and a coin-flip mirror."""
    height, width = image.shape[:2]
    area = rng.uniform(*area_range) * height * width
    ratio = numpy.exp(rng.uniform(numpy.log(CROP_RATIO[0]), numpy.log(CROP_RATIO[1])))
    crop_w = int(round(min(width, numpy.sqrt(area * ratio))))
    crop_h = int(round(min(height, numpy.sqrt(area / ratio))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = Image.fromarray(numpy.ascontiguousarray(image[top : top + crop_h, left : left + crop_w]))
    result = numpy.asarray(crop.resize((width, height), Image.Resampling.BILINEAR))
    return result[:, ::-1] if rng.random() < 0.5 else result


def augment_view(image: numpy.ndarray, sha256: str, view: int) -> numpy.ndarray:
    """View ``view`` of a uint8 (S, S, 3) image: view 0 is the image itself, others a seeded flip + resized crop.

    Seeded by the image's content hash and the view number, so the cached and the end-to-end paths (and every
    run) see exactly the same pixels for the same view.
    """
    if view == 0:
        return image
    return _crop_and_flip(image, _view_rng(sha256, view))


def colour_jitter(image: numpy.ndarray, rng: numpy.random.Generator, strength: float) -> numpy.ndarray:
    """float32 image with brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s]."""
    pixels = image.astype("float32")
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    pixels = pixels * brightness
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
    grey = pixels @ numpy.array([0.299, 0.587, 0.114], dtype="float32")
    pixels = (pixels - grey[..., None]) * saturation + grey[..., None]
    return numpy.clip(pixels, 0, 255)


def training_view(image: numpy.ndarray, rng: numpy.random.Generator, area_range, jitter: float) -> numpy.ndarray:
    """A fresh float32 training view for end-to-end fine-tuning: resized crop, mirror, colour jitter."""
    return colour_jitter(_crop_and_flip(image, rng, area_range), rng, jitter)


def view_batch(images, sha256s, views) -> numpy.ndarray:
    """float32 batch (0-255) of ``images[i]`` as view ``views[i]``."""
    batch = [augment_view(image, sha, int(view)) for image, sha, view in zip(images, sha256s, views)]
    return numpy.stack(batch).astype("float32")
