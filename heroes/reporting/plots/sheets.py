"""Every figure of the project; images are decoded with Pillow, files are written atomically."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from heroes.io import atomic_path

BACKGROUND = (255, 255, 255)
UNREADABLE = (160, 160, 160)


def _font(pixels):
    """Pillow's built-in font at ``pixels`` size (a bitmap fallback where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _thumbnail(path, thumb):
    """The picture at ``path`` fitted in a ``thumb`` square, or None when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image).convert("RGB")
    except Exception:  # any decode failure becomes a grey tile: a sheet must never crash on bad data
        return None
    image.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
    return image


def _fit(draw, text, font, width):
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(paths, titles, out_png, columns=6, thumb=96) -> Path:
    """A grid of thumbnails with a small title under each; unreadable files become grey tiles."""
    paths, titles = list(paths), [str(title) for title in titles]
    if len(paths) != len(titles):
        raise ValueError(f"got {len(paths)} paths but {len(titles)} titles")
    if not paths:
        raise ValueError("contact_sheet needs at least one image")
    if columns < 1 or thumb < 8:
        raise ValueError(f"columns must be >= 1 and thumb >= 8, got {columns} and {thumb}")
    font = _font(max(8, thumb // 9))
    caption = max(10, thumb // 7)
    pad = 4
    rows = -(-len(paths) // columns)
    sheet = Image.new("RGB", (columns * (thumb + pad) + pad, rows * (thumb + caption + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, (path, title) in enumerate(zip(paths, titles)):
        x = pad + (index % columns) * (thumb + pad)
        y = pad + (index // columns) * (thumb + caption + pad)
        image = _thumbnail(path, thumb)
        if image is None:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=UNREADABLE)
            draw.text((x + thumb / 2, y + thumb / 2), "unreadable", fill=(40, 40, 40), font=font, anchor="mm")
        else:
            sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
        draw.text((x + thumb / 2, y + thumb + 1), _fit(draw, title, font, thumb), fill=(0, 0, 0), font=font,
                  anchor="ma")
    with atomic_path(out_png) as temporary:
        sheet.save(temporary, format="PNG")
    return Path(out_png)


def groups_sheet(groups, out_png, thumb=96, max_members=8) -> Path:
    """One row per group, its members side by side: ``groups`` is ``[(heading, [(path, caption), ...]), ...]``.

    Meant for duplicate groups a person has to look at: the heading (group id, labels)
    sits left of the row; a group with more than ``max_members`` shows the first ones.
    """
    groups = [(str(heading), list(members)[:max_members]) for heading, members in groups]
    if not groups:
        raise ValueError("groups_sheet needs at least one group")
    if thumb < 8 or max_members < 1:
        raise ValueError(f"thumb must be >= 8 and max_members >= 1, got {thumb} and {max_members}")
    font = _font(max(8, thumb // 9))
    caption, pad, heading_width = max(10, thumb // 7), 4, thumb + thumb // 2
    columns = max(len(members) for _, members in groups)
    row_height = thumb + caption + pad
    sheet = Image.new("RGB", (heading_width + columns * (thumb + pad) + pad, len(groups) * row_height + pad),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for row, (heading, members) in enumerate(groups):
        y = pad + row * row_height
        for line, text in enumerate(heading.split("\n")[:4]):
            draw.text((pad, y + line * (caption + 2)), _fit(draw, text, font, heading_width - 2 * pad),
                      fill=(0, 0, 0), font=font)
        for column, (path, text) in enumerate(members):
            x = heading_width + column * (thumb + pad)
            image = _thumbnail(path, thumb)
            if image is None:
                draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=UNREADABLE)
            else:
                sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
            draw.text((x + thumb / 2, y + thumb + 1), _fit(draw, str(text), font, thumb), fill=(0, 0, 0),
                      font=font, anchor="ma")
        draw.line((pad, y + row_height - 2, sheet.width - pad, y + row_height - 2), fill=(220, 220, 220))
    with atomic_path(out_png) as temporary:
        sheet.save(temporary, format="PNG")
    return Path(out_png)
