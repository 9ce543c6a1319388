"""The probe grid: unmasked heroes with every model's prediction above each picture."""

from heroes.data.decode import decode_image, fit_and_crop

GRID_CELL = 2.2  # inches per image of the probe grid
GRID_PIXELS = 160  # side of each probe image as drawn


def probe_grid(image_paths, titles, out_png, columns: int = 5, headings=None, title: str = ""):
    """The images in a grid, each under its title (split at ``" | "`` onto separate lines) and optional heading;
    ``title`` above the grid. Returns ``heroes.reporting.plots.scores.Saved``."""
    from matplotlib.figure import Figure

    from heroes.reporting.plots.scores import DPI, save_figure

    image_paths, titles = [str(path) for path in image_paths], [str(title) for title in titles]
    if len(image_paths) != len(titles) or not image_paths:
        raise ValueError(f"need one title per image and at least one image, got {len(image_paths)} and {len(titles)}")
    headings = [""] * len(image_paths) if headings is None else [str(text) for text in headings]
    columns = max(1, min(columns, len(image_paths)))
    rows = -(-len(image_paths) // columns)
    lines = max(title.count(" | ") + 1 for title in titles) + any(headings)
    figure = Figure(figsize=(GRID_CELL * columns, (GRID_CELL + 0.18 * lines) * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes:
        axis.set_axis_off()
    for axis, path, caption, heading in zip(axes, image_paths, titles, headings):
        try:
            axis.imshow(fit_and_crop(decode_image(path), GRID_PIXELS))
        except Exception:  # a figure must never fail on one bad file: show the gap instead
            axis.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=axis.transAxes)
        axis.set_title("\n".join(([heading] if heading else []) + caption.split(" | ")), fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, out_png)
