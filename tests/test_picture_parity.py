"""Training and serving see the same pixels: every format, `load_picture_classes` against
the export's `picture_pixels`, and both against the picture that was saved."""

import io
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import ExifTags, Image, ImageOps

from tfkit.data.decode import decode_picture, error_reason, picture_pixels, square_picture
from tfkit.data.pictures import load_picture_classes
from tfkit.export import export_image_classifier

# A 24 x 36 picture of 6 x 6 blocks in six colours, no symmetry (a wrong turn shows).
BLOCKS = (np.arange(4)[:, None] + 2 * np.arange(6)[None, :] + np.arange(4)[:, None] ** 2) % 6
INDEX = np.kron(BLOCKS, np.ones((6, 6), int)).astype(np.uint8)
COLOURS = np.array([(200, 30, 30), (30, 180, 40), (40, 60, 210), (250, 240, 20), (0, 0, 0),
                    (255, 255, 255)], np.uint8)  # fmt: skip
LEVELS = np.array([0, 40, 90, 150, 210, 255], np.uint8)
RGB, GREY = COLOURS[INDEX], LEVELS[INDEX]
ALPHA = np.array([255, 128, 0], np.uint8)[(INDEX + np.arange(36)[None, :] // 6) % 3]
GREY16 = GREY.astype(np.uint16) * 257 + np.uint16(100) * (GREY < 255)  # not multiples of 257


def on_white(rgb, alpha):
    rgb, alpha = np.asarray(rgb, float), np.asarray(alpha, float)[..., None] / 255
    return np.round(rgb * alpha + 255 * (1 - alpha)).astype(np.uint8)


def grey_rgb(grey):
    return np.repeat(np.asarray(grey)[..., None], 3, axis=-1)


def palette_picture():
    picture = Image.fromarray(INDEX, "P")
    picture.putpalette(COLOURS.flatten().tolist())
    return picture


def encode(picture, fmt, **options):
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def exif(orientation):
    tags = Image.Exif()
    tags[ExifTags.Base.Orientation] = orientation
    return tags


def animated_gif():
    second = Image.fromarray((INDEX + 1) % 6, "P")
    second.putpalette(COLOURS.flatten().tolist())
    return encode(palette_picture(), "GIF", save_all=True, append_images=[second])


# name: (the file's bytes, the upright picture it holds laid on white, or None: not served)
FILES = {
    "png_rgb.png": (encode(Image.fromarray(RGB), "PNG"), RGB),
    "png_grey16.png": (
        encode(Image.fromarray(GREY16), "PNG"),
        grey_rgb(np.round(GREY16 / 257).astype(np.uint8)),
    ),
    "png_palette_trns.png": (
        encode(palette_picture(), "PNG", transparency=3),
        on_white(RGB, 255 * (INDEX != 3)),
    ),
    "png_grey.png": (encode(Image.fromarray(GREY), "PNG"), grey_rgb(GREY)),
    "png_grey_alpha.png": (
        encode(Image.fromarray(np.dstack([GREY, ALPHA]), "LA"), "PNG"),
        on_white(grey_rgb(GREY), ALPHA),
    ),
    "png_grey_trns.png": (
        encode(Image.fromarray(GREY), "PNG", transparency=90),
        on_white(grey_rgb(GREY), 255 * (GREY != 90)),
    ),
    "png_rgb_trns.png": (  # the colour of the first pixel is transparent
        encode(Image.fromarray(RGB), "PNG", transparency=tuple(int(c) for c in RGB[0, 0])),
        on_white(RGB, 255 * (RGB != RGB[0, 0]).any(axis=-1)),
    ),
    "png_rgba.png": (
        encode(Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA"), "PNG"),
        on_white(RGB, ALPHA),
    ),
    # Stored turned a quarter anticlockwise; its EXIF says to show it turned back clockwise.
    "jpeg_exif.jpg": (
        encode(
            Image.fromarray(np.rot90(RGB).copy()), "JPEG", quality=95, subsampling=0, exif=exif(6)
        ),
        RGB,
    ),
    "bmp_24.bmp": (encode(Image.fromarray(RGB), "BMP"), RGB),
    # The fourth channel all zero, as common tools write it: opaque, not white.
    "bmp_32_zero_alpha.bmp": (
        encode(Image.fromarray(np.dstack([RGB, 0 * ALPHA]), "RGBA"), "BMP"),
        RGB,
    ),
    "bmp_32_alpha.bmp": (
        encode(Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA"), "BMP"),
        on_white(RGB, ALPHA),
    ),
    "bmp_8_palette.bmp": (encode(palette_picture(), "BMP"), RGB),
    "gif_animated.gif": (animated_gif(), RGB),
    "tiff.tif": (encode(Image.fromarray(RGB), "TIFF"), None),
    "ppm.ppm": (encode(Image.fromarray(RGB), "PPM"), None),
    "webp.webp": (encode(Image.fromarray(RGB), "WEBP", lossless=True), None),
}


def test_every_format_trains_on_the_pixels_the_export_serves_or_is_skipped(tmp_path):
    for name, (data, _) in FILES.items():
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "a" / name).write_bytes(data)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.png").write_bytes(FILES["png_rgb.png"][0])
    (images, labels), test, class_names, skipped = load_picture_classes(str(tmp_path), 32)

    served_names = sorted(name for name, (_, picture) in FILES.items() if picture is not None)
    assert test is None and class_names == ("a", "b")
    assert list(labels) == [0] * len(served_names) + [1]
    reasons = {entry["file"]: entry["error"] for entry in skipped}
    assert reasons == {
        "a/tiff.tif": "a TIFF picture, which the export cannot decode: convert it to PNG",
        "a/ppm.ppm": "a PPM picture, which the export cannot decode: convert it to PNG",
        "a/webp.webp": "a WEBP picture, which the export cannot decode: convert it to PNG",
    }
    for name, trained in zip(served_names, images):
        data, picture = FILES[name]
        served = picture_pixels(tf.constant(data), 32).numpy()
        np.testing.assert_array_equal(trained, served, err_msg=name)
        # ...and they are the picture that was saved (a JPEG within its loss).
        expected = square_picture(picture, 32).numpy().astype(int)
        error = np.abs(trained.astype(int) - expected)
        tolerance = 12 if name.endswith(".jpg") else 1
        assert error.mean() < tolerance / 4 and error.max() <= tolerance * 4, name
    for name in ("tiff.tif", "ppm.ppm", "webp.webp"):  # refused when served, in one line
        with pytest.raises(tf.errors.InvalidArgumentError) as refused:
            decode_picture(tf.constant(FILES[name][0]))
        assert error_reason(refused.value).endswith("convert it to PNG")


def test_the_export_gives_the_model_the_pixels_training_read(tmp_path):
    classes = {"a": ["bmp_32_zero_alpha.bmp", "png_rgba.png"],
               "b": ["jpeg_exif.jpg", "png_grey_trns.png"]}  # fmt: skip
    for label, names in classes.items():
        (tmp_path / "pictures" / label).mkdir(parents=True)
        for name in names:
            (tmp_path / "pictures" / label / name).write_bytes(FILES[name][0])
    images = load_picture_classes(str(tmp_path / "pictures"), 32)[0][0]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )  # linear: every pixel moves the outputs
    version = export_image_classifier(str(tmp_path / "export"), model, ("x", "y", "z"))
    serve = tf.saved_model.load(version).signatures["serving_default"]
    files = [FILES[name][0] for name in classes["a"] + classes["b"]]  # training's order
    served = serve(image_bytes=tf.constant(files))
    np.testing.assert_allclose(served["probabilities"], model(images.astype("float32")),
                               rtol=1e-6, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_as_pillow_turns_it(orientation):
    data = encode(Image.fromarray(RGB), "PNG", exif=exif(orientation))  # PNG: no loss
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(decode_picture(tf.constant(data)).numpy(), upright)


def test_a_big_endian_exif_and_a_broken_one():
    entry = struct.pack(">HHIHH", ExifTags.Base.Orientation, 3, 1, 8, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + b"\x00" * 4
    data = encode(Image.fromarray(RGB), "JPEG", quality=95, exif=b"Exif\x00\x00" + tiff)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(decode_picture(tf.constant(data)).numpy(), upright)
    broken = encode(Image.fromarray(RGB), "PNG", exif=b"Exif\x00\x00garbage-not-tiff")
    np.testing.assert_array_equal(decode_picture(tf.constant(broken)).numpy(), RGB)
