"""A folder of one's own pictures as GAN training images (uint8, size x size x 3).

Every file under the folder, nested folders too, is tried with Pillow: PNG, JPEG, BMP,
GIF (its first frame) and whatever else Pillow reads, in any size and mode (greyscale,
RGBA and palettes are laid on white, then RGB). Each is centre-cropped to a square and
resized. A file that cannot be decoded (broken, truncated, not a picture at all) is
skipped and named, never fatal.

The pictures are decoded once per run into memory, in one pass, and then batched by the
same seeded pipeline as CIFAR-10 (`tfkit.data.order`): decoding in tf.data would
repeat every epoch, and `tf.io.decode_image` stops the whole pipeline at the first
broken file without naming it (as `image_dataset_from_directory` does).
"""

import os

import numpy as np
from PIL import Image

from tfkit.data.splits import stratified_sample
from tfkit.errors import DataError


def load_pictures(folder, size=32, seed=1337, max_examples=None):
    """Every readable picture under `folder`, centre-cropped and resized to `size` x `size`.

    Args:
        folder: the folder to search, nested folders included.
        size: the side of the square images returned.
        seed: the order of the images (and of a `max_examples` sample).
        max_examples: keep only this many, drawn from `seed`.

    Returns:
        `(images, skipped)`: a uint8 array (n, size, size, 3) in a seeded order, and one
        `{"file": path relative to folder, "error": why}` per file that was not used.

    Raises:
        DataError: the folder does not exist or holds no readable picture.
    """
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is not a folder; --data-dir must name the folder of pictures")
    images, skipped = [], []
    for path in sorted(_files(folder)):
        try:
            images.append(_square(path, size))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            skipped.append({"file": os.path.relpath(path, folder), "error": _reason(error)})
    if not images:
        raise DataError(
            f"{folder} holds no readable picture (PNG, JPEG, BMP, GIF): "
            f"{len(skipped)} file(s) tried, none could be decoded"
        )
    images = np.stack(images)
    count = len(images) if max_examples is None else max_examples
    order = stratified_sample(np.zeros(len(images)), count, np.random.default_rng(seed))
    return images[order], skipped


def _files(folder):
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            if not name.startswith("."):  # .DS_Store and the like
                yield os.path.join(root, name)


def _square(path, size):
    """The picture at `path` as RGB on white, its centre square resized to `size`."""
    with Image.open(path) as picture:
        # A JPEG decodes at a fraction of its size when that is still 4x the target: a
        # 12-megapixel photo then takes a fifth of the time. Other formats ignore it.
        picture.draft(None, (4 * size, 4 * size))
        picture.load()  # a truncated file fails here, not later
        rgba = picture.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def _reason(error):
    text = str(error) or type(error).__name__
    return "not a picture Pillow can read" if "cannot identify image file" in text else text
