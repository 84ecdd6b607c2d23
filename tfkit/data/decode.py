"""Encoded pictures to pixels: the one decoder that classifier training and its export run.

`picture_pixels(data, size)` is all an image classifier sees of a file: training runs it
on each file's bytes (`tfkit.data.pictures.load_picture_classes`), the export runs it in
its graph on the bytes it is sent (`tfkit.export.export_image_classifier`), so both see
the same pixels by construction. TensorFlow ops only, and only the four decoders every TF
Serving knows (PNG, JPEG, GIF's first frame, BMP): a graph holding a newer op (WebP, JPEG
XL) would not load on an older server at all. Any other bytes fail with `UNKNOWN_FORMAT`.

The functions hold no Python control flow on tensors, so autograph is told to leave them
as they are: rewriting their source took 5 of the 6 seconds a trace took.
"""

import tensorflow as tf

UNKNOWN_FORMAT = "not a PNG, JPEG, GIF or BMP file (what the export decodes): convert it to PNG"
# EXIF sits in a JPEG's APP1 segment (64 KiB at most, before the pixels) or a PNG's eXIf chunk.
EXIF_SEARCH_BYTES = 65536
ORIENTATION_TAG = 0x0112
MAX_IFD_ENTRIES = 64  # IFD0 of a camera holds 10 to 20


@tf.autograph.experimental.do_not_convert
def picture_pixels(data, size):
    """`decode_picture` then `square_picture`: what the classifier is given, (size, size, 3)."""
    return square_picture(decode_picture(data), size)


@tf.autograph.experimental.do_not_convert
def decode_picture(data):
    """Encoded picture bytes (a scalar tf.string) as upright RGB uint8 (height, width, 3).

    Turned upright by an EXIF Orientation tag (a JPEG's or a PNG's), as phones store
    portraits; greyscale made RGB; 16-bit rounded to 8; transparency (alpha, a PNG's tRNS
    or a palette's) laid on white; a GIF gives its first frame (its transparent colour as
    the palette holds it: TensorFlow's GIF decoder has no alpha); an 8-bit BMP's palette
    applied; a 32-bit BMP's fourth channel is alpha unless it is zero everywhere (common
    tools write it so, meaning opaque). A JPEG decodes with the accurate integer DCT.

    Raises:
        tf.errors.InvalidArgumentError: a broken file, or bytes in another format
            (`UNKNOWN_FORMAT`); `error_reason` turns it into one line.
    """
    data = tf.convert_to_tensor(data, tf.string)
    png = tf.equal(tf.strings.substr(data, 0, 4), b"\x89PNG")
    rgb = tf.case(
        [
            (tf.io.is_jpeg(data), lambda: _decode_jpeg(data)),
            (png, lambda: _decode_png(data)),
            (tf.equal(tf.strings.substr(data, 0, 3), b"GIF"), lambda: tf.io.decode_gif(data)[0]),
            (tf.equal(tf.strings.substr(data, 0, 2), b"BM"), lambda: _decode_bmp(data)),
        ],
        default=_unknown_format,
    )
    return _turn_upright(rgb, _exif_orientation(data, png))


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
    square = tf.image.crop_to_bounding_box(
        image, (height - side) // 2, (width - side) // 2, side, side
    )
    resized = tf.image.resize(tf.cast(square, tf.float32), [size, size], antialias=True)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return tf.cond(tf.equal(side, size), lambda: square, lambda: resized)


def error_reason(error):
    """The op's own words in a TensorFlow error ("Invalid PNG data..."), one line."""
    lines = [line for line in error.message.splitlines() if line and not line[0].isspace()]
    skip = ("Graph execution error", "Detected at node", "<stack traces")
    words = [line for line in lines if not line.startswith(skip)]
    reason = (words or lines)[0].split("}} ")[-1]  # eager errors start with {{function_node ..}}
    if UNKNOWN_FORMAT in reason:  # an Assert's words come as "assertion failed: [...]"
        return UNKNOWN_FORMAT
    return reason.split(" [Op:")[0].split("\t")[0].strip()


def _decode_jpeg(data):
    # Pillow's default DCT too; TensorFlow's default (the fast one) gives other pixels.
    return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")


def _decode_png(data):
    # Read as 16 bits then / 257: a 16-bit PNG rounds (as uint8 it would be cut), an 8-bit
    # one comes back exact. Four channels: grey made RGB, tRNS and palette alpha applied.
    return _on_white(tf.cast(tf.io.decode_png(data, 4, tf.uint16), tf.float32) / 257.0)


def _on_white(rgba):
    """RGBA (floats in 0..255) laid on white, as uint8 RGB."""
    alpha = rgba[..., 3:] / 255.0
    return tf.cast(tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


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
            opaque, lambda: image[..., :3], lambda: _on_white(tf.cast(image, tf.float32))
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


def _find(raw, pattern):
    """The first position of `pattern` (bytes) in `raw`, or -1."""
    count = tf.size(raw) - len(pattern) + 1
    found = tf.ones([count], tf.bool)
    for offset, byte in enumerate(pattern):
        found &= tf.equal(raw[offset : offset + count], byte)
    first = tf.cast(tf.argmax(tf.cast(found, tf.int32)), tf.int64)
    return tf.where(tf.reduce_any(found), first, tf.constant(-1, tf.int64))


def _exif_orientation(data, png):
    """The EXIF Orientation (1 to 8) of a JPEG (APP1 "Exif") or a PNG (eXIf chunk); else 1.

    Read from the TIFF structure EXIF is: "II" (little-endian) or "MM", 42, the offset of
    the first IFD, its entry count, then 12-byte entries (tag, type, count, value).
    """
    raw = tf.io.decode_raw(tf.strings.substr(data, 0, EXIF_SEARCH_BYTES), tf.uint8)
    # Zeros after a file shorter than the search, as many as any read below can pass its
    # end by (a read further is clipped to the last, a zero): what a search padded to
    # EXIF_SEARCH_BYTES reads, without comparing 64 KiB of zeros for each small picture.
    raw = tf.pad(raw, [[0, tf.where(tf.size(raw) < EXIF_SEARCH_BYTES, 16, 0)]])
    found = tf.where(png, _find(raw, b"eXIf"), _find(raw, b"Exif\x00\x00"))
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
