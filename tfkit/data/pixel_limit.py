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
# The refusal of a picture of width x height above the limit: `str.format`'s and
# `tf.strings.format`'s placeholders alike; `error_reason` puts "a picture of " first.
REFUSAL = "{}x{} " + TOO_MANY_PIXELS + " {} (--max-pixels); shrink it first"


@contextlib.contextmanager
def open_picture(path, max_pixels=MAX_PIXELS):
    """`Image.open(path)`, refused from its header (no pixel decoded) above `max_pixels`
    pixels: a 100 KB PNG can hold 20,000 x 20,000, and decoding it whole takes gigabytes.

    While it is open Pillow's own check is off (it warns above its default and fails
    above twice that, whatever `--max-pixels` says).

    Raises:
        ValueError: naming its size and the limit, as the classifier's decoder does.
        OSError: not a picture Pillow reads.
    """
    default = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise ValueError("a picture of " + REFUSAL.format(width, height, max_pixels))
            yield picture
    finally:
        Image.MAX_IMAGE_PIXELS = default
