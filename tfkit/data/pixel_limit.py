"""The limit on a picture's pixels, read from its header before any decoding.

A 0.4 MB PNG can declare 20,000 x 20,000 pixels; decoding it whole took 8.5 GB. Every
picture decoder of tfkit refuses a picture above `--max-pixels` (default Pillow's
`Image.MAX_IMAGE_PIXELS`, `tfkit.config.MAX_PIXELS`) from the size its header
declares: the classifier's decoder in its graph (`tfkit.data.decode`), and the readers
that use Pillow here. No TensorFlow in this module: `tfkit train` reads with it first.
"""

import contextlib

from PIL import Image

from tfkit.config import MAX_PIXELS

TOO_MANY_PIXELS = "pixels, above the limit of"  # in every refusal, TensorFlow's too


def check_pixel_count(picture, max_pixels=MAX_PIXELS):
    """Refuses an opened `PIL.Image` (its header read, no pixel decoded) of more than
    `max_pixels` pixels: a 100 KB PNG can hold 20,000 x 20,000, and decoding it whole
    takes gigabytes.

    Raises:
        ValueError: naming its size and the limit, as the classifier's decoder does.
    """
    width, height = picture.size
    if width * height > max_pixels:
        raise ValueError(
            f"a picture of {width}x{height} {TOO_MANY_PIXELS} {max_pixels} (--max-pixels); "
            "shrink it first"
        )


@contextlib.contextmanager
def pillow_check_off():
    """Pillow's own decompression-bomb check off (it warns above its default and fails
    above twice that, whatever `--max-pixels` says): `check_pixel_count` refuses instead."""
    default = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = default
