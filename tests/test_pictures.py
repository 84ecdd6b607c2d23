"""A folder of one's own pictures for the DCGAN: formats, modes, sizes, broken files."""

import json
import os

import numpy as np
import pytest
from PIL import ExifTags, Image

from recipes import dcgan_cifar10
from tfkit.data.pictures import load_picture_classes, load_pictures, read_picture
from tfkit.errors import DataError


def write_pictures(folder):
    """Pictures of every kind, nested, plus a truncated JPEG and a text file named .png."""
    (folder / "nested" / "deeper").mkdir(parents=True)
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, 40:80] = (255, 0, 0)  # a red centre square between blue sides
    wide[:, :40] = wide[:, 80:] = (0, 0, 255)
    Image.fromarray(wide).save(folder / "wide.jpg", quality=95)
    Image.fromarray(np.full((50, 30), 128, np.uint8), "L").save(folder / "grey.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 1] = 255  # green, half of it transparent
    rgba[:32, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(folder / "nested" / "alpha.png")
    Image.fromarray(wide).convert("P").save(folder / "nested" / "palette.gif")
    Image.fromarray(wide[:, :40]).save(folder / "nested" / "deeper" / "blue.bmp")
    good = (folder / "wide.jpg").read_bytes()
    (folder / "nested" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (folder / "notes.png").write_text("not a picture at all")
    return 5


def test_every_readable_picture_is_used_and_the_bad_ones_are_named(tmp_path):
    good = write_pictures(tmp_path)
    images, skipped = load_pictures(str(tmp_path), size=32, seed=0)
    assert images.shape == (good, 32, 32, 3) and images.dtype == np.uint8
    assert sorted(s["file"] for s in skipped) == ["nested/broken.jpg", "notes.png"]
    assert all(s["error"] for s in skipped)
    # Centre-cropped: the wide picture's red middle fills its square.
    reds = [image for image in images if image[..., 0].mean() > 200 and image[..., 2].mean() < 60]
    assert len(reds) == 2  # the JPEG and the palette GIF
    # Transparent pixels lie on white; greyscale became three equal channels.
    assert any((image[:8] == (0, 255, 0)).all() and (image[-8:] == 255).all() for image in images)
    assert any((image == 128).all() for image in images)


def test_a_folder_without_pictures_is_one_error(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(DataError, match="no readable picture.*1 file"):
        load_pictures(str(tmp_path))


def test_the_dcgan_trains_on_a_folder_of_pictures(tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    write_pictures(pictures)
    run = tmp_path / "run"
    dcgan_cifar10.main(
        ["--data", "images", "--data-dir", str(pictures), "--run-dir", str(run)]
        + ["--epochs", "1", "--batch-size", "4", "--quality-samples", "4"]
        + ["--generator-filters", "16", "--discriminator-filters", "16"]
        + ["--export-dir", str(tmp_path / "export")]
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_examples"] == 5
    assert [s["file"] for s in metrics["skipped_files"]] == ["nested/broken.jpg", "notes.png"]
    assert list((run / "samples").iterdir()) and list((tmp_path / "export").iterdir())


@pytest.mark.parametrize(
    "mode, value, grey",
    [
        ("I;16", 32768, 128),  # mid-grey of a 16-bit PNG, as Pillow opens it
        ("I;16B", 32768, 128),  # big-endian 16-bit, from a TIFF
        ("I", 32768, 128),  # 32-bit integers holding 16-bit values
        ("F", 32768.0, 128),
        ("I", 100, 100),  # 32-bit integers within 0..255 are 8-bit values already
    ],
)
def test_16_bit_pictures_are_scaled_to_8_bits_not_clipped(tmp_path, mode, value, grey):
    dtype = {"I;16": np.uint16, "I;16B": ">u2", "I": np.int32, "F": np.float32}[mode]
    values = np.full((20, 30), value, dtype)
    if mode == "I;16B":
        picture = Image.frombytes(mode, (30, 20), values.tobytes())
    else:
        picture = Image.fromarray(values)
    path = tmp_path / ("grey.png" if mode == "I;16" else "grey.tif")
    picture.save(path)
    assert Image.open(path).mode == mode
    (image,), _ = load_pictures(str(tmp_path), size=8)
    assert np.abs(image.astype(int) - grey).max() <= 1


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    stored = np.zeros((40, 80, 3), np.uint8)  # stored sideways: red left half, blue right
    stored[:, :40] = (255, 0, 0)
    stored[:, 40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    (image,), _ = load_pictures(str(tmp_path), size=32)
    # Upright, the stored left side is the top: red above blue.
    assert image[:12, :, 0].mean() > 200 and image[:12, :, 2].mean() < 60
    assert image[-12:, :, 2].mean() > 200 and image[-12:, :, 0].mean() < 60


def test_read_picture_gives_the_whole_picture_upright_in_8_bit_rgb(tmp_path):
    stored = np.zeros((20, 40), np.uint16)  # 16-bit, stored sideways: white left half
    stored[:, :20] = 65535
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(stored).save(tmp_path / "sideways.png", exif=exif)
    picture = read_picture(tmp_path / "sideways.png")
    assert picture.mode == "RGB" and picture.size == (20, 40)  # 20 wide, 40 high
    pixels = np.asarray(picture)
    assert (pixels[:20] == 255).all() and (pixels[20:] == 0).all()


def test_a_picture_with_broken_exif_is_kept_as_stored(tmp_path):
    path = tmp_path / "badexif.png"
    Image.fromarray(np.full((40, 20, 3), 100, np.uint8)).save(path, exif=b"garbage-not-tiff")
    picture = read_picture(path)
    assert picture.size == (20, 40) and picture.getpixel((0, 0)) == (100, 100, 100)


def test_a_transparent_gif_reads_as_the_export_decodes_it(tmp_path):
    import tensorflow as tf

    from tfkit.data.decode import decode_picture

    pixels = np.zeros((30, 40), np.uint8)
    pixels[10:20, 10:30] = 1
    gif = Image.fromarray(pixels, mode="P")
    gif.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    gif.save(tmp_path / "t.gif", transparency=0)
    ours = np.asarray(read_picture(tmp_path / "t.gif"))
    served = decode_picture(tf.constant((tmp_path / "t.gif").read_bytes())).numpy()
    np.testing.assert_array_equal(ours, served.astype(np.uint8))


def class_folders(root, layout):
    """`{"train/cats": 2, ...}`: that many small PNGs in each folder under `root`."""
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / folder / f"{i}.png")
    return str(root)


def test_picture_class_folders_with_and_without_train_and_test(tmp_path):
    train, test, names, _ = load_picture_classes(
        class_folders(tmp_path / "flat", {"cats": 2, "dogs": 3})
    )
    assert names == ("cats", "dogs") and list(train[1]) == [0, 0, 1, 1, 1] and test is None
    folder = class_folders(tmp_path / "split", {"train/cats": 2, "train/dogs": 2, "test/dogs": 1})
    train, test, names, _ = load_picture_classes(folder)
    assert names == ("cats", "dogs") and list(test[1]) == [1] and test[0].shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "layout, message",
    [
        # a test folder beside class folders, without train/: "test" is no class
        ({"cats": 1, "dogs": 1, "test/cats": 1}, "test would be a class: lay the pictures out as"),
        ({"train/cats": 1, "train/test": 1, "train/dogs": 1}, "train/test would be a class"),
        # class folders beside train/ would be ignored
        ({"train/cats": 1, "train/dogs": 1, "birds": 1}, "holds train/ and also birds/"),
        # a test class the model never learns
        (
            {"train/cats": 1, "train/dogs": 1, "test/cats": 1, "test/birds": 1},
            "has the class\\(es\\) birds that .*train lacks",
        ),
        # a test folder with no labelled picture
        (
            {"train/cats": 1, "train/dogs": 1, "test": 0},
            "test holds no readable picture in a class",
        ),
        ({"train/cats": 1, "train/dogs": 1, "test/cats": 0}, "test holds no readable picture"),
    ],
)
def test_a_picture_layout_that_would_mislead_training_is_refused_in_one_line(
    tmp_path, layout, message
):
    folder = class_folders(tmp_path, layout)
    with pytest.raises(DataError, match=message) as refused:
        load_picture_classes(folder)
    assert "\n" not in str(refused.value)


def test_a_decompression_bomb_and_a_fifo_are_skipped_not_decoded(tmp_path):
    from PIL import Image

    from tfkit.data.pictures import load_picture_classes

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 90, 40, 40)).save(tmp_path / name / f"{i}.png")
    Image.new("L", (10_000, 10_000)).save(tmp_path / "a" / "bomb.png")  # 100 KB, 10^8 pixels
    os.mkfifo(tmp_path / "b" / "pipe.png")  # reading it would block forever
    train, _, _, skipped = load_picture_classes(str(tmp_path), size=8)
    assert len(train[1]) == 4
    assert [s["file"] for s in skipped] == [os.path.join("a", "bomb.png")]
    assert "10000x10000 pixels" in skipped[0]["error"]
