"""Image grids, for the GAN's per-epoch samples and `python -m tfkit sample`."""

import numpy as np


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


def save_grid(path, images):
    """Writes uint8 images as one PNG grid, through a temporary name."""
    from PIL import Image

    from tfkit.runs import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(tile(images)).save(temporary, format="PNG")
