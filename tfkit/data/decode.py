"""Encoded pictures to pixels: the one decoder that classifier training and its export run.

`picture_pixels(data, size)` is all an image classifier sees of a file: training runs it
on each file's bytes (`tfkit.data.pictures.load_picture_classes`), the export runs it in
its graph on the bytes it is sent (`tfkit.export.export_image_classifier`), so both see
the same pixels by construction. TensorFlow ops only, and only the four decoders every TF
Serving knows (PNG, JPEG, GIF's first frame, BMP): a graph holding a newer op (WebP, JPEG
XL) would not load on an older server at all. Any other bytes fail with `UNKNOWN_FORMAT`.

Before any pixel is decoded, the size the file's header declares is checked against a
limit (`max_pixels`, by default Pillow's decompression-bomb limit, 89,478,485 pixels): a
0.4 MB PNG can declare 20,000 x 20,000 pixels, and decoding it whole took 8.5 GB. Such a
picture fails with `InvalidArgument` naming its size and the limit.

The functions hold no Python control flow on tensors, so autograph is told to leave them
as they are: rewriting their source took 5 of the 6 seconds a trace took.
"""

import re

import tensorflow as tf

from tfkit.config import MAX_PIXELS
from tfkit.data.pixel_limit import REFUSAL, TOO_MANY_PIXELS

UNKNOWN_FORMAT = "not a PNG, JPEG, GIF or BMP file (what the export decodes): convert it to PNG"
# EXIF sits in a JPEG's APP1 segment (64 KiB at most, before the pixels) or a PNG's eXIf chunk.
EXIF_SEARCH_BYTES = 65536
ORIENTATION_TAG = 0x0112
MAX_IFD_ENTRIES = 64  # IFD0 of a camera holds 10 to 20
MAX_GIF_BLOCKS = 100_000  # extension blocks read before a GIF's first frame, at most


@tf.autograph.experimental.do_not_convert
def picture_pixels(data, size, max_pixels=MAX_PIXELS):
    """`decode_picture` then `square_picture`: what the classifier is given, (size, size, 3).

    A JPEG at least 8 times the size decodes at a half, a quarter or an eighth of it (its
    DCT scaled, as Pillow's `draft`), keeping at least 4 times the size for the resize:
    a 640 x 480 photo for 32 x 32 at a half, 2.5 times faster.
    """
    return square_picture(decode_picture(data, max_pixels, min_side=4 * size), size)


@tf.autograph.experimental.do_not_convert
def decode_picture(data, max_pixels=MAX_PIXELS, min_side=None):
    """Encoded picture bytes (a scalar tf.string) as upright RGB uint8 (height, width, 3).

    Turned upright by an EXIF Orientation tag (a JPEG's or a PNG's), as phones store
    portraits; greyscale made RGB; 16-bit rounded to 8; transparency (alpha, a PNG's tRNS
    or a palette's) laid on white; a GIF gives its first frame (its transparent colour as
    the palette holds it: TensorFlow's GIF decoder has no alpha); an 8-bit BMP's palette
    applied; a 32-bit BMP's fourth channel is alpha unless it is zero everywhere (common
    tools write it so, meaning opaque). A JPEG decodes with the accurate integer DCT, and
    with `min_side` at the smallest of 1/8, 1/4 or 1/2 of its size that keeps its shorter
    side at least `min_side`.

    Raises:
        tf.errors.InvalidArgumentError: a broken file, bytes in another format
            (`UNKNOWN_FORMAT`), or a header declaring more than `max_pixels` pixels (refused
            before decoding); `error_reason` turns it into one line.
    """
    data = tf.convert_to_tensor(data, tf.string)
    head = tf.strings.substr(data, 0, EXIF_SEARCH_BYTES)  # where PNG chunks and EXIF are sought
    png = tf.equal(tf.strings.substr(data, 0, 4), b"\x89PNG")
    gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
    bmp = tf.equal(tf.strings.substr(data, 0, 2), b"BM")
    width, height = tf.case(
        [
            (tf.io.is_jpeg(data), lambda: _jpeg_size(data)),
            (png, lambda: _header_size(data, 16, 4, little_endian=False)),
            (gif, lambda: _gif_size(data)),
            (bmp, lambda: _bmp_size(data)),
        ],
        default=lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
    )
    limit = tf.constant(max_pixels, tf.int64)
    refused = tf.strings.format(REFUSAL, (width, height, limit))
    # width x height <= limit, without the product (two 32-bit sides overflow int64).
    small = tf.equal(height, 0) | (width <= limit // tf.maximum(height, 1))
    within = tf.debugging.Assert(small, [refused])
    with tf.control_dependencies([within]):  # nothing is decoded before the check
        data = tf.identity(data)
    shorter_side = tf.minimum(width, height)
    rgb = tf.case(
        [
            (tf.io.is_jpeg(data), lambda: _decode_jpeg(data, shorter_side, min_side)),
            (png, lambda: _decode_png(data, head)),
            (gif, lambda: tf.io.decode_gif(data)[0]),
            (bmp, lambda: _decode_bmp(data)),
        ],
        default=_unknown_format,
    )
    return _turn_upright(rgb, _exif_orientation(data, head, png))


@tf.autograph.experimental.do_not_convert
def square_picture(image, size):
    """An RGB picture (uint8, height x width x 3) centre-cropped to a square and resized.

    `tf.image.resize` (bilinear, antialiased when shrinking) rounded back to uint8. (Pillow's
    LANCZOS, which `load_pictures` uses for the GAN, gives other pixels than any
    `tf.image.resize` method.) A picture already `size` x `size` is unchanged.
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    # A plain slice: crop_to_bounding_box's checks cost as much as a small PNG's decoding.
    square = tf.slice(image, [(height - side) // 2, (width - side) // 2, 0], [side, side, 3])

    def resized():  # in the branch: a picture already size x size is not resized at all
        # uint8 in: the same floats out as casting first, without a float copy of it.
        floats = tf.image.resize(square, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(floats), 0, 255), tf.uint8)

    return tf.cond(tf.equal(side, size), lambda: square, resized)


def error_reason(error):
    """The op's own words in a TensorFlow error ("Invalid PNG data..."), one line."""
    lines = [line for line in error.message.splitlines() if line and not line[0].isspace()]
    skip = ("Graph execution error", "Detected at node", "<stack traces")
    words = [line for line in lines if not line.startswith(skip)]
    reason = (words or lines)[0].split("}} ")[-1]  # eager errors start with {{function_node ..}}
    if UNKNOWN_FORMAT in reason:  # an Assert's words come as "assertion failed: [...]"
        return UNKNOWN_FORMAT
    refused = re.search(rf"\d+x\d+ {TOO_MANY_PIXELS} [^\]'\n]*", reason)
    if refused:  # an Assert's words, in a graph's or an eager call's framing
        return "a picture of " + refused.group(0)
    return reason.split(" [Op:")[0].split("\t")[0].strip()


def _jpeg_size(data):
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)  # from its frame header
    return shape[1], shape[0]


def _header_size(data, start, width, little_endian):
    """Width and height: two unsigned integers of `width` bytes at byte `start`."""
    raw = _bytes(data, start, 2 * width)
    sides = _unsigned(raw, tf.constant([0, width], tf.int64), width, little_endian)
    return sides[0], sides[1]


def _gif_size(data):
    """The larger of a GIF's logical screen and its first frame: TensorFlow's decoder
    allocates a frame at its own size, whatever the screen says."""
    screen = _header_size(data, 6, 2, little_endian=True)
    byte = lambda position: tf.cast(_bytes(data, position, 1)[0], tf.int64)
    flags = byte(10)  # a global colour table of 3 x 2^(n+1) bytes follows the 13-byte header
    start = 13 + tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64),
                                                                 flags % 8), 0)  # fmt: skip

    # Extensions (0x21, a label, then sub-blocks of a size byte and that many bytes, up to
    # a size 0) come before the first frame's descriptor (0x2C).
    def more(position, inside, steps):
        return (steps < MAX_GIF_BLOCKS) & (inside | tf.equal(byte(position), 0x21))

    def skip(position, inside, steps):
        size = byte(position)
        return (tf.where(inside, position + size + 1, position + 2),
                tf.logical_not(inside & tf.equal(size, 0)), steps + 1)  # fmt: skip

    position, _, _ = tf.while_loop(
        more, skip, (start, tf.constant(False), tf.constant(0)), parallel_iterations=1
    )
    frame = tf.cond(
        tf.equal(byte(position), 0x2C),  # left, top, then width and height, 16 bits each
        lambda: _header_size(data, position + 5, 2, little_endian=True),
        lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
    )
    larger = screen[0] * screen[1] >= frame[0] * frame[1]  # 16-bit sides: no overflow
    return tf.where(larger, screen[0], frame[0]), tf.where(larger, screen[1], frame[1])


def _bmp_size(data):
    # Signed 32-bit: a negative height means the rows are stored top-down.
    width, height = _header_size(data, 18, 4, little_endian=True)
    signed = lambda side: tf.abs(tf.where(side >= 2**31, side - 2**32, side))
    return signed(width), signed(height)


def _decode_jpeg(data, side, min_side=None):
    """The JPEG whose shorter side is `side` (from its header), at the smallest scale that
    keeps `side` at least `min_side`."""
    # Pillow's default DCT too; TensorFlow's default (the fast one) gives other pixels.
    def at(ratio):
        return lambda: tf.io.decode_jpeg(data, 3, ratio=ratio, dct_method="INTEGER_ACCURATE")

    if not min_side:
        return at(1)()
    return tf.case([(side // ratio >= min_side, at(ratio)) for ratio in (8, 4, 2)], default=at(1))


def _decode_png(data, head):
    # A 16-bit PNG (its bit depth is IHDR's byte 24) is read as 16 bits then / 257, so it
    # rounds (as uint8 it would be cut); any other as 8 bits. Four channels lay
    # transparency (alpha, tRNS, a palette's) on white and grey is made RGB; a PNG
    # without transparency (no alpha channel, its colour type byte 25, and no tRNS chunk
    # before the first IDAT, sought in `head`) is read as three, in a third of the memory.
    pixels_start, transparency = _find(head, b"IDAT"), _find(head, b"tRNS")
    colour_type = _bytes(data, 25, 1)[0]
    opaque = (
        (pixels_start >= 0)
        & ((transparency < 0) | (transparency > pixels_start))
        & ~tf.reduce_any(tf.equal(colour_type, [4, 6]))  # grey + alpha, RGBA
    )
    return tf.case(
        [
            (
                tf.equal(_bytes(data, 24, 1)[0], 16),
                lambda: _on_white(tf.cast(tf.io.decode_png(data, 4, tf.uint16), tf.float32) / 257.0),
            ),
            (opaque, lambda: tf.io.decode_png(data, 3, tf.uint8)),
        ],
        default=lambda: _on_white_8_bits(tf.io.decode_png(data, 4, tf.uint8)),
    )


def _on_white(rgba):
    """RGBA (floats in 0..255) laid on white, as uint8 RGB."""
    alpha = rgba[..., 3:] / 255.0
    return tf.cast(tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def _on_white_8_bits(rgba):
    """RGBA uint8 laid on white: `_on_white`'s pixels in 16-bit integers, a third of its
    memory (a 9,000 x 9,000 picture took 3 GB in floats). (c a + 255 (255 - a)) / 255 is
    never halfway between two integers, so adding 127 and dividing rounds as it does."""
    rgb, alpha = tf.cast(rgba[..., :3], tf.uint16), tf.cast(rgba[..., 3:], tf.uint16)
    return tf.cast((rgb * alpha + 255 * (255 - alpha) + 127) // 255, tf.uint8)


def _decode_bmp(data):
    image = tf.io.decode_bmp(data)  # 1 (palette indices), 3 or 4 channels, as stored
    channels = tf.shape(image)[-1]

    def palette():
        # The colour table follows the header (its size at byte 14): blue, green, red, 0.
        header = _unsigned(_bytes(data, 0, 18), tf.constant(14, tf.int64), 4, True)
        table = _bytes(data, 14 + header, 1024)
        colours = tf.reverse(tf.reshape(table, [256, 4])[:, :3], axis=[1])
        return tf.gather(colours, tf.cast(image[..., 0], tf.int32))

    def with_alpha():
        # All zero: written without alpha (common tools do), so opaque, not transparent.
        opaque = tf.equal(tf.reduce_max(image[..., 3]), 0)
        return tf.cond(
            opaque, lambda: image[..., :3], lambda: _on_white_8_bits(image)
        )

    return tf.case(
        [(tf.equal(channels, 1), palette), (tf.equal(channels, 4), with_alpha)],
        default=lambda: image[..., :3],
    )


def _unknown_format():
    failed = tf.debugging.Assert(False, [UNKNOWN_FORMAT])
    with tf.control_dependencies([failed]):
        return tf.zeros([0, 0, 3], tf.uint8)


def _bytes(data, start, length):
    """`length` bytes of `data` from `start` as uint8, zeros past its end."""
    start = tf.minimum(tf.cast(start, tf.int32), tf.strings.length(data))  # substr fails past it
    raw = tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8)
    return tf.pad(raw, [[0, length - tf.size(raw)]])


def _unsigned(raw, positions, width, little_endian):
    """The unsigned integers of `width` bytes at `positions` in `raw` (clipped to its end)."""
    places = positions[..., None] + tf.range(width, dtype=tf.int64)
    values = tf.cast(tf.gather(raw, tf.clip_by_value(places, 0, tf.size(raw, tf.int64) - 1)),
                     tf.int64)  # fmt: skip
    order = tf.range(width, dtype=tf.int64)
    shifts = 8 * tf.where(little_endian, order, width - 1 - order)
    return tf.reduce_sum(tf.bitwise.left_shift(values, shifts), axis=-1)


def _find(text, pattern):
    """The first position of `pattern` (bytes) in the string `text`, or -1: the length of
    what comes before it (a string search in C++, a seventh of comparing byte arrays)."""
    before = tf.strings.split(text, sep=pattern, maxsplit=1)
    position = tf.cast(tf.strings.length(before[0]), tf.int64)
    return tf.where(tf.size(before) > 1, position, tf.constant(-1, tf.int64))


def _exif_orientation(data, head, png):
    """The EXIF Orientation (1 to 8) of a JPEG (APP1 "Exif") or a PNG (eXIf chunk); else 1.

    Read from the TIFF structure EXIF is: "II" (little-endian) or "MM", 42, the offset of
    the first IFD, its entry count, then 12-byte entries (tag, type, count, value),
    sought in `head`, the file's first `EXIF_SEARCH_BYTES`.
    """
    raw = tf.io.decode_raw(head, tf.uint8)
    # Zeros after a file shorter than the search, as many as any read below can pass its
    # end by (a read further is clipped to the last, a zero): what a search padded to
    # EXIF_SEARCH_BYTES reads, without comparing 64 KiB of zeros for each small picture.
    raw = tf.pad(raw, [[0, tf.where(tf.size(raw) < EXIF_SEARCH_BYTES, 16, 0)]])
    found = tf.where(png, _find(head, b"eXIf"), _find(head, b"Exif\x00\x00"))
    tiff = found + tf.where(png, tf.constant(4, tf.int64), 6)
    order = _unsigned(raw, tiff, 2, True)
    little = tf.equal(order, 0x4949)  # "II"
    number = lambda offset, width: _unsigned(raw, tiff + offset, width, little)
    valid = (found >= 0) & (little | tf.equal(order, 0x4D4D)) & tf.equal(number(2, 2), 42)
    valid &= png | tf.io.is_jpeg(data)
    first_ifd = number(4, 4)
    count = number(first_ifd, 2)
    entries = first_ifd + 2 + 12 * tf.range(MAX_IFD_ENTRIES, dtype=tf.int64)
    tags, values = number(entries, 2), number(entries + 8, 2)
    match = (tf.range(MAX_IFD_ENTRIES, dtype=tf.int64) < count) & tf.equal(tags, ORIENTATION_TAG)
    orientation = tf.reduce_max(tf.where(match & valid, values, 0))
    return tf.cast(tf.where((orientation >= 1) & (orientation <= 8), orientation, 1), tf.int32)


def _turn_upright(image, orientation):
    """`image` as EXIF `orientation` says to show it (Pillow's `ImageOps.exif_transpose`)."""
    # Per orientation 1 to 8: whether rows and columns swap, then which axes reverse.
    # (Plain transpose and reverse: tf.image.rot90 builds a tf.case, a second to trace.)
    turns = [(False, []), (False, [1]), (False, [0, 1]), (False, [0]),
             (True, []), (True, [1]), (True, [0, 1]), (True, [0])]  # fmt: skip

    def turn(swap, axes):
        def turned():
            swapped = tf.transpose(image, [1, 0, 2]) if swap else image
            return tf.reverse(swapped, axes) if axes else swapped

        return turned

    return tf.switch_case(orientation - 1, [turn(swap, axes) for swap, axes in turns])
