"""Embedded default dataset: drawn heroes in mixed formats, hard probes, optional injected defects with truth.

Layout written under ``out_dir`` (the scanner relies on it)::

    <class>/<class>_NNNN.<ext>          per_class clean images per class, then the defects (with dirt)
    probes/<hero class>/<class>_probe_NN.<ext>   heroes with a bare face, never in the class folders

Every image is a pure function of ``numpy.random.default_rng([seed, class_index, image_index])``
(probes and defects use offset indices), so the same seed gives byte-identical files.

Clean formats, decided per image: JPEG 70% (quality 60-95), PNG 12% (40% of them RGBA with a
transparent border), WebP 8%, GIF 5%, BMP 5%; the extension always matches the content.

Defects (``dirt=True``) are extra files, per class ``max(1, round(rate * per_class))`` of each kind:

    ======================  ====  =====================================================
    kind                    rate  what
    ======================  ====  =====================================================
    corrupt                 2%    a clean image truncated to 40-70% or with a garbled header
    not_image               1%    text or HTML saved as .jpg/.png
    exact_duplicate         3%    byte-identical copy of a clean image, same class
    near_duplicate          3%    resized / re-encoded / cropped 2-6% / brightened copy
    cross_class_duplicate   2%    exact or near copy of another class's image
    tiny                    2%    valid image under 48 px (downscaled copy or fresh figure)
    mislabelled             2%    a figure of another class filed here (``true_label`` names it)
    off_class               2%    no figure at all: a landscape, a texture or abstract shapes (``true_label`` "")
    ======================  ====  =====================================================

With ``truth_path`` one CSV row per defect: ``path,kind,source,label,true_label``.
"""

import contextlib
import io
import numbers
import os
import shutil
import tempfile
from pathlib import Path

import numpy
from PIL import Image, ImageDraw, ImageEnhance, ImageFile, ImageOps

from heroes.config import CLASSES
from heroes.data.synthetic import drawing
from heroes.errors import UserError

DIRT_RATES = {
    "corrupt": 0.02,
    "not_image": 0.01,
    "exact_duplicate": 0.03,
    "near_duplicate": 0.03,
    "cross_class_duplicate": 0.02,
    "tiny": 0.02,
    "mislabelled": 0.02,
    "off_class": 0.02,
}
TRUTH_COLUMNS = ("path", "kind", "source", "label", "true_label")
FORMAT_SHARES = (("jpeg", 0.70), ("png", 0.12), ("webp", 0.08), ("gif", 0.05), ("bmp", 0.05))
EXTENSIONS = {"png": ".png", "webp": ".webp", "gif": ".gif", "bmp": ".bmp"}
PROBES_DIR = "probes"
MAX_PROBES = 10
TINY_SIDE = 48
MIN_SIZE = 32
# Offsets of the image index in the seed, so probes and defects never share a stream with clean images.
PROBE_OFFSET = 1_000_000
DIRT_OFFSET = 2_000_000
NOT_IMAGE_TEXTS = (
    "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>"
    "<p>The requested URL /images/{n}.jpg was not found on this server.</p></body></html>\n",
    "<html><head><title>Access denied</title></head><body>Error 1020. Ray ID: {n:x}. "
    "You do not have access to this image.</body></html>\n",
    "Error: image {n} is no longer available.\n",
    '{{"error": "rate limited", "retry_after": {n}}}\n',
)


def dirt_counts(per_class):
    """Defects of each kind injected per class: ``max(1, round(rate * per_class))``."""
    return {kind: max(1, int(rate * per_class + 0.5)) for kind, rate in DIRT_RATES.items()}


def probe_count(per_class):
    """Probes per hero class: 10, or fewer when ``per_class`` is small (at least 1)."""
    return min(MAX_PROBES, max(1, per_class // 10))


def encode(image, rng, kind=None):
    """``(bytes, extension)`` of ``image`` in a format drawn from ``FORMAT_SHARES`` (or ``kind``)."""
    if kind is None:
        shares = numpy.array([share for _, share in FORMAT_SHARES])
        kind = FORMAT_SHARES[int(numpy.searchsorted(numpy.cumsum(shares), rng.random() * shares.sum(), "right"))][0]
    buffer = io.BytesIO()
    if kind == "jpeg":
        image.save(buffer, "JPEG", quality=int(rng.integers(60, 96)), progressive=bool(rng.random() < 0.2))
        return buffer.getvalue(), ".jpeg" if rng.random() < 0.15 else ".jpg"
    if kind == "png":
        if rng.random() < 0.4:
            image = _transparent_border(image, rng)
        image.save(buffer, "PNG")
    elif kind == "webp":
        image.save(buffer, "WEBP", quality=int(rng.integers(70, 96)))
    elif kind == "gif":
        # Fast octree: median cut costs ~80 ms per 224 px image, deterministic either way.
        image.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, "GIF")
    elif kind == "bmp":
        image.save(buffer, "BMP")
    else:
        raise ValueError(f"unknown format {kind!r}")
    return buffer.getvalue(), EXTENSIONS[kind]


def _transparent_border(image, rng):
    """RGBA copy whose outer 3-8% is fully transparent, like a cut-out found on the web."""
    border = max(1, int(image.width * rng.uniform(0.03, 0.08)))
    alpha = Image.new("L", image.size, 0)
    alpha.paste(255, (border, border, image.width - border, image.height - border))
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def decodes(data):
    """True when Pillow fully decodes ``data`` (truncation not tolerated), as the scanner does."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            ImageOps.exif_transpose(image).convert("RGB")
        return True
    except Exception:  # any failure at all means "not decodable": that is the question asked
        return False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _decode(data):
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def corrupt_bytes(data, rng):
    """Truncate to 40-70% (or garble the header) until a full Pillow decode fails."""
    for attempt in range(20):
        if attempt >= 10 or (attempt == 0 and rng.random() < 0.25):
            head = rng.integers(0, 256, size=16, dtype=numpy.uint8).tobytes()
            candidate = head + data[16:]
        else:
            candidate = data[: int(len(data) * rng.uniform(0.4, 0.7))]
        if not decodes(candidate):
            return candidate
    raise RuntimeError("could not produce an undecodable copy")  # never seen; would be a Pillow change


def near_copy(image, rng):
    """A near duplicate: one or two of resize, re-encode at another quality, crop 2-6%, brighten."""
    operations = rng.permutation(["resize", "requality", "crop", "brighten"])[: int(rng.integers(1, 3))]
    for operation in operations:
        if operation == "resize":
            factor = rng.uniform(0.55, 0.9)
            if min(image.size) * factor < TINY_SIDE:  # stay a near duplicate, never a tiny image
                factor = rng.uniform(1.1, 1.4)
            image = image.resize((round(image.width * factor), round(image.height * factor)),
                                 Image.Resampling.LANCZOS)
        elif operation == "crop":
            left, top, right, bottom = rng.uniform(0.02, 0.06, 4)
            w, h = image.size
            image = image.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))
        elif operation == "brighten":
            image = ImageEnhance.Brightness(image).enhance(rng.uniform(1.15, 1.4))
    if "requality" in operations:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(35, 60)))
        return buffer.getvalue(), ".jpg"
    return encode(image, rng)


def _not_image(rng):
    text = NOT_IMAGE_TEXTS[int(rng.integers(len(NOT_IMAGE_TEXTS)))].format(n=int(rng.integers(10**5, 10**8)))
    return text.encode("utf-8"), ".jpg" if rng.random() < 0.6 else ".png"


def _other_class(rng, class_index):
    return CLASSES[(class_index + 1 + int(rng.integers(len(CLASSES) - 1))) % len(CLASSES)]


def _tiny(rng, label, context, source):
    """A downscaled copy of ``source`` (60%) or a fresh small figure (then no source)."""
    side = int(rng.integers(16, TINY_SIDE))
    if rng.random() < 0.6:
        image = _decode(context.read(source)).resize((side, side), Image.Resampling.LANCZOS)
        return *encode(image, rng), source, label
    return *encode(drawing.draw_image(label, rng, side), rng), "", label


def _cross_class(rng, context, class_index):
    """An exact (half) or near copy of a random clean image of another class."""
    other = _other_class(rng, class_index)
    source = context.clean[other][int(rng.integers(len(context.clean[other])))]
    data = context.read(source)
    if rng.random() < 0.5:
        return data, Path(source).suffix, source, other
    return *near_copy(_decode(data), rng), source, other


def _landscape(rng, draw, side):
    """Sky, sun, two or three mountain ridges and a foreground of grass or water."""
    sky = drawing.random_colour(rng, (0.2, 0.7), (0.6, 1.0))
    for y in range(0, side, 4):  # vertical gradient, lighter towards the horizon
        shade = 0.55 + 0.45 * y / side
        draw.rectangle((0, y, side, y + 4), fill=tuple(int(min(255, c * shade + 60 * (1 - shade))) for c in sky))
    x, y, r = rng.uniform(0.1, 0.9) * side, rng.uniform(0.08, 0.35) * side, rng.uniform(0.04, 0.1) * side
    draw.ellipse((x - r, y - r, x + r, y + r), fill=drawing.random_colour(rng, (0.0, 0.4), (0.9, 1.0)))
    for layer in range(int(rng.integers(2, 4))):
        base = (0.5 + 0.12 * layer) * side
        peaks = numpy.linspace(-0.1, 1.1, int(rng.integers(4, 9))) * side
        ridge = [(px, base - rng.uniform(0.05, 0.3) * side) for px in peaks]
        draw.polygon([(-0.1 * side, side), *ridge, (1.1 * side, side)], fill=drawing.random_colour(rng, (0.2, 0.6),
                                                                                                  (0.2, 0.7)))
    draw.rectangle((0, rng.uniform(0.78, 0.9) * side, side, side), fill=drawing.random_colour(rng, (0.3, 0.8)))


def _texture(rng, draw, side):
    """A repeating pattern: diagonal stripes, a checkerboard or a grid of dots in two or three colours."""
    colours = [drawing.random_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    step = rng.uniform(0.04, 0.15) * side
    cells = int(side / step) + 2
    kind = int(rng.integers(3))
    if kind == 0:
        for i in range(2 * cells):
            x = i * step
            draw.polygon([(x, 0), (x + step, 0), (x + step - side, side), (x - side, side)],
                         fill=colours[i % len(colours)])
        return
    for i in range(cells):
        for j in range(cells):
            box = (i * step, j * step, (i + (1 if kind == 1 else 0.7)) * step, (j + (1 if kind == 1 else 0.7)) * step)
            (draw.rectangle if kind == 1 else draw.ellipse)(box, fill=colours[(i + j) % len(colours)])


def _abstract(rng, draw, side):
    """Large concentric rings or rays from a point: bold geometry with no body or face in it."""
    cx, cy = rng.uniform(0.2, 0.8, 2) * side
    colours = [drawing.random_colour(rng, (0.5, 1.0), (0.5, 1.0)) for _ in range(int(rng.integers(2, 5)))]
    if rng.random() < 0.5:
        for index, radius in enumerate(numpy.arange(1.5 * side, 0, -rng.uniform(0.05, 0.12) * side)):
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colours[index % len(colours)])
        return
    rays = int(rng.integers(8, 24))
    for index in range(rays):
        a, b = 2 * numpy.pi * index / rays, 2 * numpy.pi * (index + 1) / rays
        draw.polygon([(cx, cy), (cx + 2 * side * numpy.cos(a), cy + 2 * side * numpy.sin(a)),
                      (cx + 2 * side * numpy.cos(b), cy + 2 * side * numpy.sin(b))], fill=colours[index % len(colours)])


def draw_scene(rng, size):
    """A picture with no person in it (landscape, texture or abstract shapes), lit and noised like the figures."""
    side = size * drawing.SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), drawing.random_colour(rng))
    scene = (_landscape, _texture, _abstract)[int(rng.integers(3))]
    scene(rng, ImageDraw.Draw(canvas), side)
    return drawing.finish(rng, canvas.reduce(drawing.SUPERSAMPLE))


def make_defect(kind, rng, context, class_index, source):
    """``(bytes, ext, source_relpath, true_label)`` of one defect filed in ``CLASSES[class_index]``."""
    label = CLASSES[class_index]
    if kind == "corrupt":
        return corrupt_bytes(context.read(source), rng), Path(source).suffix, source, label
    if kind == "not_image":
        return *_not_image(rng), "", ""
    if kind == "exact_duplicate":
        return context.read(source), Path(source).suffix, source, label
    if kind == "near_duplicate":
        return *near_copy(_decode(context.read(source)), rng), source, label
    if kind == "cross_class_duplicate":
        return _cross_class(rng, context, class_index)
    if kind == "tiny":
        return _tiny(rng, label, context, source)
    if kind == "mislabelled":
        other = _other_class(rng, class_index)
        return *encode(drawing.draw_image(other, rng, context.size), rng), "", other
    if kind == "off_class":
        return *encode(draw_scene(rng, context.size), rng), "", ""
    raise ValueError(f"unknown defect kind {kind!r}")


class _Context:
    """The dataset being written: its temporary root, image size and clean files per class."""

    def __init__(self, root, size, seed):
        self.root, self.size, self.seed = Path(root), size, seed
        self.clean = {label: [] for label in CLASSES}

    def write(self, relative, data):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def read(self, relative):
        return (self.root / relative).read_bytes()


def _write_clean(context, per_class, bar):
    for class_index, label in enumerate(CLASSES):
        for index in range(per_class):
            rng = numpy.random.default_rng([context.seed, class_index, index])
            data, ext = encode(drawing.draw_image(label, rng, context.size), rng)
            relative = f"{label}/{label}_{index:04d}{ext}"
            context.write(relative, data)
            context.clean[label].append(relative)
            bar.update()


def _write_probes(context, count, bar):
    for class_index, label in enumerate(CLASSES):
        if label not in drawing.HERO_CLASSES:
            continue
        for index in range(count):
            rng = numpy.random.default_rng([context.seed, class_index, PROBE_OFFSET + index])
            data, ext = encode(drawing.draw_image(label, rng, context.size, unmasked=True), rng)
            context.write(f"{PROBES_DIR}/{label}/{label}_probe_{index:02d}{ext}", data)
            bar.update()


def _write_dirt(context, per_class, bar):
    """Defects per class, named like clean files so only their content gives them away."""
    rows = []
    for class_index, label in enumerate(CLASSES):
        plan = numpy.random.default_rng([context.seed, class_index, DIRT_OFFSET])
        kinds = [kind for kind, count in dirt_counts(per_class).items() for _ in range(count)]
        kinds = [kinds[k] for k in plan.permutation(len(kinds))]
        sources = numpy.resize(plan.permutation(per_class), len(kinds))  # distinct sources while they last
        for offset, kind in enumerate(kinds):
            rng = numpy.random.default_rng([context.seed, class_index, DIRT_OFFSET + 1 + offset])
            source = context.clean[label][int(sources[offset])]
            data, ext, source, true_label = make_defect(kind, rng, context, class_index, source)
            relative = f"{label}/{label}_{per_class + offset:04d}{ext}"
            context.write(relative, data)
            rows.append((relative, kind, source, label, true_label))
            bar.update()
    return rows


def _check_arguments(out_dir, per_class, size, seed, truth_path):
    for name, value, low in (("per_class", per_class, 1), ("size", size, MIN_SIZE), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise UserError(f"{name} must be a whole number >= {low}, got {value!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new folder")
    if truth_path is not None and Path(truth_path).resolve().is_relative_to(out.resolve()):
        raise UserError(f"truth file {truth_path} must live outside the dataset folder {out}")


def _publish(temporary, out):
    """Move the finished dataset into place in one rename (an empty ``out`` is replaced)."""
    os.chmod(temporary, 0o755)
    try:
        os.rename(temporary, out)
    except OSError as error:
        raise UserError(f"cannot create {out}: {error.strerror or error}; choose a new folder") from None


def _truth_frame(rows, out_dir):
    import pandas

    def full(relative):
        return (Path(out_dir) / relative).as_posix() if relative else ""

    records = [(full(path), kind, full(source), label, true_label)
               for path, kind, source, label, true_label in sorted(rows)]
    return pandas.DataFrame(records, columns=list(TRUTH_COLUMNS))


def write_dataset(out_dir, per_class=250, size=224, seed=0, dirt=False, truth_path=None, progress=True) -> str:
    """Draw the dataset into the new folder ``out_dir``; return a one-line summary for the CLI."""
    from tqdm import tqdm

    from heroes.io import atomic_path, cannot_write

    _check_arguments(out_dir, per_class, size, seed, truth_path)
    out = Path(out_dir)
    probes = probe_count(per_class)
    defects = sum(dirt_counts(per_class).values()) * len(CLASSES) if dirt else 0
    total = per_class * len(CLASSES) + probes * len(drawing.HERO_CLASSES) + defects
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent)
    except OSError as error:
        raise UserError(f"cannot create {out}: {error.strerror or error}") from None
    # The truth is written before the dataset is published and renamed into place after it: a failure on either
    # side (a full disk, Ctrl-C) leaves neither, not a dataset without its truth.
    truth = atomic_path(truth_path) if truth_path is not None else contextlib.nullcontext()
    published = False
    try:
        with truth as truth_temporary:
            context = _Context(temporary, size, seed)
            try:
                with tqdm(total=total, disable=not progress, unit="img", desc="synth") as bar:
                    _write_clean(context, per_class, bar)
                    _write_probes(context, probes, bar)
                    rows = _write_dirt(context, per_class, bar) if dirt else []
            except OSError as error:
                raise cannot_write(out, error) from None
            if truth_temporary is not None:
                _truth_frame(rows, out_dir).to_csv(truth_temporary, index=False)
            _publish(temporary, out)
            published = True
    except BaseException:
        if published:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    summary = (f"wrote {per_class * len(CLASSES)} images ({len(CLASSES)} classes x {per_class}, {size} px), "
               f"{probes * len(drawing.HERO_CLASSES)} probes and {len(rows)} defects to {out_dir}")
    return summary + (f"; truth in {truth_path}" if truth_path is not None else "")
