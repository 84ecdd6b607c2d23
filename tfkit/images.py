"""Image grids, for the GAN's per-epoch samples and `python -m tfkit sample`."""

import numpy as np

# 32-pixel CIFAR images are too small to judge at their own size.
GRID_SCALE = 4
TITLE_HEIGHT = 20


def tile(images):
    """A batch of HxWxC images as one roughly square grid image (empty cells black)."""
    images = np.asarray(images)
    columns = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    padded = np.zeros((rows * columns, *images.shape[1:]), dtype=images.dtype)
    padded[: len(images)] = images
    height, width, channels = images.shape[1:]
    grid = padded.reshape(rows, columns, height, width, channels).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * height, columns * width, channels)


def save_grid(path, images, title=None, scale=GRID_SCALE):
    """Writes uint8 images as one PNG grid, each pixel a `scale`-wide square (nearest).

    A `title` (e.g. "epoch 3") goes in a strip above the grid. Written through a
    temporary name.
    """
    from PIL import Image, ImageDraw

    from tfkit.files import atomic_path

    grid = Image.fromarray(tile(images))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    if title:
        titled = Image.new("RGB", (grid.width, grid.height + TITLE_HEIGHT), "white")
        titled.paste(grid, (0, TITLE_HEIGHT))
        ImageDraw.Draw(titled).text((4, 4), title, fill="black")
        grid = titled
    with atomic_path(path) as temporary:
        grid.save(temporary, format="PNG")
