"""Pictures that declare more pixels than the limit: refused from the header, never decoded.

A header that declares a large size is written into a small real picture of each format,
so the tests need no gigabytes: the refusal comes before any decoding.
"""

import io
import json
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from recipes import pixels_linear
from test_predict import picture_export, run_cli
from tfkit.config import MAX_PIXELS
from tfkit.data.decode import decode_picture, error_reason
from tfkit.data.pictures import load_picture_classes, load_pictures
from tfkit.errors import DataError

FORMATS = ("PNG", "JPEG", "GIF", "BMP")


def encoded(fmt, width=40, height=30, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype="uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def declaring(data, fmt, width, height):
    """`data` (a picture of `fmt`) with a header that declares `width` x `height`."""
    data = bytearray(data)
    if fmt == "PNG":  # IHDR: big-endian uint32 at bytes 16 and 20, then its CRC
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    elif fmt == "GIF":  # the logical screen: little-endian uint16 at bytes 6 and 8
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":  # little-endian int32 at bytes 18 and 22; negative height: top-down
        data[18:26] = struct.pack("<ii", width, height)
    else:  # JPEG: the frame header (SOF0), height then width, big-endian uint16
        start = bytes(data).index(b"\xff\xc0") + 5
        data[start : start + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def refusal(data, max_pixels=MAX_PIXELS):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode_picture(data, max_pixels)
    return error_reason(error.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_refused_from_its_header_with_its_size_and_the_limit(fmt):
    small = encoded(fmt)
    assert decode_picture(small, max_pixels=40 * 30).shape == (30, 40, 3)  # at the limit: read
    assert refusal(small, 40 * 30 - 1) == (
        f"a picture of 40x30 pixels, above the limit of {40 * 30 - 1} (--max-pixels); "
        "shrink it first"
    )
    side = 60_000 if fmt in ("JPEG", "GIF") else 100_000  # their header holds 16 bits
    assert refusal(declaring(small, fmt, side, side)).startswith(
        f"a picture of {side}x{side} pixels, above the limit of {MAX_PIXELS} "
    )


def test_a_gif_counts_its_first_frame_when_larger_than_its_screen():
    frames = [Image.new("P", (40, 30), i) for i in range(3)]  # extensions before the frame
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=50)
    animated = buffer.getvalue()
    assert decode_picture(animated, max_pixels=40 * 30).shape == (30, 40, 3)
    small_screen = bytearray(animated)
    small_screen[6:10] = struct.pack("<HH", 1, 1)  # the frame still says 40 x 30
    assert "40x30 pixels" in refusal(bytes(small_screen), 40 * 30 - 1)
    descriptor = animated.index(b"\x2c\x00\x00\x00\x00")  # at left 0, top 0
    huge = bytearray(small_screen)
    huge[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 30_000, 30_000)
    assert "30000x30000 pixels" in refusal(bytes(huge))


def test_sides_whose_product_overflows_64_bits_are_refused():
    assert "4294967295x4294967295 pixels" in refusal(
        declaring(encoded("PNG"), "PNG", 2**32 - 1, 2**32 - 1)
    )


def test_a_top_down_bmp_counts_its_height_without_the_sign():
    top_down = declaring(encoded("BMP"), "BMP", 20_000, -20_000)
    assert "20000x20000 pixels" in refusal(top_down)


def picture_classes(root, bombs=True):
    for name, colour in {"red": (220, 30, 30), "blue": (30, 30, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (32, 32), tuple(c + 3 * i for c in colour)).save(root / name / f"{i}.png")
    if bombs:
        for fmt, suffix in zip(FORMATS, ("png", "jpg", "gif", "bmp")):
            big = declaring(encoded(fmt), fmt, 20_000, 20_000)
            (root / "red" / f"bomb.{suffix}").write_bytes(big)
    return root


def test_training_and_the_gan_skip_each_such_file_by_name_with_its_size(tmp_path):
    folder = picture_classes(tmp_path / "pictures")
    train, _, _, skipped = load_picture_classes(str(folder), size=32)
    assert len(train[1]) == 12
    assert sorted(s["file"] for s in skipped) == [
        f"red/bomb.{suffix}" for suffix in ("bmp", "gif", "jpg", "png")
    ]
    assert all("20000x20000 pixels, above the limit of 89478485" in s["error"] for s in skipped)

    # The GAN reads with Pillow, whose own check would fail only above twice its limit.
    with pytest.raises(DataError, match="16 file"):  # every 32x32 picture is above 1,000 too
        load_pictures(str(folder), size=32, max_pixels=1000)
    images, skipped = load_pictures(str(folder), size=32)
    assert len(images) == 12 and len(skipped) == 4
    assert all("20000x20000 pixels" in s["error"] for s in skipped)


def test_the_flag_reaches_training_the_export_and_predict(tmp_path, capsys):
    folder = picture_classes(tmp_path / "pictures", bombs=False)
    Image.new("RGB", (33, 33), (220, 30, 30)).save(folder / "red" / "large.png")  # 1,089 pixels
    pixels_linear.main(["--data", "images", "--data-dir", str(folder), "--epochs", "2",
                        "--max-pixels", "1024", "--run-dir", str(tmp_path / "run"),
                        "--export-dir", str(tmp_path / "export")])  # fmt: skip
    printed = capsys.readouterr().out
    assert "skipped 1 file(s)" in printed and "33x33 pixels, above the limit of 1024" in printed
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_pixels"] == 1024

    export = tf.saved_model.load(str(tmp_path / "export" / "1"))
    assert int(export.signatures["max_pixels"]()["max_pixels"]) == 1024
    serve = export.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="33x33 pixels, above the limit of 1024"):
        serve(image_bytes=tf.constant([(folder / "red" / "large.png").read_bytes()]))

    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(folder),
                             "--output", str(tmp_path / "labels.csv")], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert "skipped red/large.png: a picture of 33x33 pixels, above the limit of 1024" in printed.err
    assert len(pd.read_csv(tmp_path / "labels.csv")) == 12


def test_a_served_batch_with_a_bomb_fails_in_one_line_and_predict_labels_the_rest(
    tmp_path, capsys
):
    version = picture_export(tmp_path)
    folder = picture_classes(tmp_path / "new")
    serve = tf.saved_model.load(version).signatures["serving_default"]
    bomb = (folder / "red" / "bomb.png").read_bytes()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(image_bytes=tf.constant([(folder / "red" / "0.png").read_bytes(), bomb]))
    assert error_reason(error.value).startswith("a picture of 20000x20000 pixels, above the limit")

    code, printed = run_cli(["predict", version, "--input", str(folder), "--output",
                             str(tmp_path / "labels.csv"), "--batch-size", "8"], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert "predicted 12, skipped 4" in printed.out
    assert "skipped red/bomb.gif: a picture of 20000x20000 pixels, above the limit of 89478485" in (
        printed.err
    )
