"""Folders of one's own pictures: class folders for a classifier, any folder for the GAN.

A classifier's pictures (`load_picture_classes`) are decoded by the function its export
runs (`tfkit.data.decode.picture_pixels`: PNG, JPEG, GIF, BMP), so a served picture gives
the pixels training saw; a file in another format is skipped and named, with the fix.
The GAN, which serves no pictures, reads with Pillow whatever Pillow reads
(`read_picture`: turned upright by its EXIF orientation, 16-bit scaled to 8, greyscale,
RGBA and palettes laid on white, then RGB; TIFF, WebP, PPM too). Either way a file that
cannot be decoded (broken, truncated, not a picture at all) is skipped and named, never
fatal.

The pictures are decoded once per run into memory, in one pass, and then batched by the
same seeded pipeline as CIFAR-10 (`tfkit.data.order`): decoding in tf.data would
repeat every epoch, and `tf.io.decode_image` stops the whole pipeline at the first
broken file without naming it (as `image_dataset_from_directory` does).
"""

import functools
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from tfkit.config import MAX_PIXELS
from tfkit.data.decode import UNKNOWN_FORMAT, error_reason, picture_pixels
from tfkit.data.pixel_limit import TOO_MANY_PIXELS, open_picture
from tfkit.data.splits import stratified_sample
from tfkit.errors import DataError

# Pillow's modes of 16-bit greyscale, 0..65535 (a 16-bit PNG opens as I;16).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def load_pictures(folder, size=32, seed=1337, max_examples=None, max_pixels=MAX_PIXELS):
    """Every readable picture under `folder`, centre-cropped and resized to `size` x `size`.

    Args:
        folder: the folder to search, nested folders included.
        size: the side of the square images returned.
        seed: the order of the images (and of a `max_examples` sample).
        max_examples: keep only this many, drawn from `seed`.
        max_pixels: a picture whose header declares more is skipped, not decoded.

    Returns:
        `(images, skipped)`: a uint8 array (n, size, size, 3) in a seeded order, and one
        `{"file": path relative to folder, "error": why}` per file that was not used.

    Raises:
        DataError: the folder does not exist or holds no readable picture.
    """
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is not a folder; --data-dir must name the folder of pictures")
    images, skipped = [], []
    for path in sorted(picture_files(folder)):
        try:
            # A JPEG decodes at a fraction of its size when that is still 4x the target:
            # a 12-megapixel photo then takes a fifth of the time.
            picture = read_picture(path, min_side=4 * size, max_pixels=max_pixels)
            square = ImageOps.fit(picture, (size, size), Image.Resampling.LANCZOS)
            images.append(np.asarray(square, dtype=np.uint8))
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


def load_picture_classes(folder, size=32, max_pixels=MAX_PIXELS):
    """Class folders of pictures for a classifier: `folder/<class>/*` or `folder/train/<class>/*`
    (and `folder/test/<class>/*`), any class names, two classes at least.

    Each file's bytes go through `tfkit.data.decode.picture_pixels`, the very function the
    exported model runs on the bytes it is sent, so training and serving see the same
    pixels. A file it cannot decode is skipped and named; one in a format the export
    cannot decode (TIFF, WebP, PPM...) is skipped with the fix: convert it to PNG; one
    whose header declares more than `max_pixels` pixels is skipped before decoding.

    Returns:
        `(train, test, class_names, skipped)`: `(images, labels)` pairs (uint8
        (n, size, size, 3), int32 class ids), test None without `test/`; the class
        names (folder names, sorted); `{"file", "error"}` per file that was not used.

    Raises:
        DataError: no such folder; fewer than two class folders; a layout where `train`
        or `test` would be a class, or a folder beside `train/` that would be ignored;
        a class of `test/` that `train/` lacks; a class of the training pictures, or
        the whole of `test/`, without one readable picture.
    """
    root, test_dir, class_names = _class_layout(folder)
    pixels = _pixels_function(size, max_pixels)
    skipped, pairs = [], []
    for split_dir in (root, test_dir):
        if split_dir is None:
            pairs.append(None)
            continue
        images, labels = [], []
        for label, name in enumerate(class_names):
            class_dir = os.path.join(split_dir, name)
            paths = sorted(picture_files(class_dir)) if os.path.isdir(class_dir) else []
            for path in paths:
                try:
                    with open(path, "rb") as file:
                        images.append(pixels(tf.constant(file.read())).numpy())
                    labels.append(label)
                except (OSError, ValueError, tf.errors.InvalidArgumentError) as error:
                    skipped.append(
                        {"file": os.path.relpath(path, folder), "error": _why(path, error)}
                    )
            if split_dir == root and label not in labels:
                raise DataError(f"{class_dir} holds no readable picture; every class needs some")
        if not labels:  # else the evaluation on nothing fails only after the whole training
            names = ", ".join(class_names)
            raise DataError(
                f"{split_dir} holds no readable picture in a class folder ({names}): put the "
                f"test pictures in {split_dir}/<class>/, or remove {split_dir} to hold out a "
                "fifth of the training pictures"
            )
        pairs.append((np.stack(images), np.array(labels, "int32")))
    return pairs[0], pairs[1], class_names, skipped


@functools.cache
def _pixels_function(size, max_pixels):
    # Traced once a process (a second); then a picture takes milliseconds, not the 60 of eager.
    pixels = functools.partial(picture_pixels, size=size, max_pixels=max_pixels)
    return tf.function(pixels, autograph=False)


def _class_layout(folder):
    """`(training folder, test folder or None, class names)`, or a DataError on a bad layout."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is not a folder; --data-dir must name the folder of classes")
    layout = (
        f"lay the pictures out as {folder}/train/<class>/ and {folder}/test/<class>/, or as "
        f"{folder}/<class>/ alone (a fifth held out for the test)"
    )
    subfolders = sorted(_subfolders(folder))
    root, test_dir = folder, None
    if "train" in subfolders:
        root = os.path.join(folder, "train")
        test_dir = os.path.join(folder, "test") if "test" in subfolders else None
        others = [name for name in subfolders if name not in ("train", "test")]
        if others:
            raise DataError(f"{folder} holds train/ and also {', '.join(others)}/, which would be "
                            f"ignored: {layout}")  # fmt: skip
    class_names = tuple(sorted(_subfolders(root)))
    splits = [name for name in class_names if name.lower() in ("train", "test")]
    if splits:
        raise DataError(f"{os.path.join(root, splits[0])} would be a class: {layout}")
    if len(class_names) < 2:
        raise DataError(
            f"{root} needs one folder of pictures per class, two at least (e.g. {root}/cats/, "
            f"{root}/dogs/); found: {', '.join(class_names) or 'no folder'}"
        )
    unknown = test_dir and sorted(set(_subfolders(test_dir)) - set(class_names))
    if unknown:
        raise DataError(
            f"{test_dir} has the class(es) {', '.join(unknown)} that {root} lacks: the model "
            f"learns only the classes of train/ ({', '.join(class_names)}); add their pictures "
            "to train/ or take them out of test/"
        )
    return root, test_dir, class_names


def _why(path, error):
    """One line on a file training cannot use, with the fix when its format is the cause."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    reason = error_reason(error)
    if TOO_MANY_PIXELS in reason:  # never handed to Pillow: it would decode it
        return reason
    try:  # a picture Pillow reads (TIFF, WebP, a 16-bit BMP...) that the export cannot
        with Image.open(path) as picture:
            picture.load()
            kind = picture.format
    except (OSError, ValueError, Image.DecompressionBombError):
        return "not a picture (PNG, JPEG, GIF or BMP)" if reason == UNKNOWN_FORMAT else reason
    if reason == UNKNOWN_FORMAT:
        return f"a {kind} picture, which the export cannot decode: convert it to PNG"
    return f"{reason} (Pillow reads it as {kind}: convert it to PNG)"


def _subfolders(folder):
    return [
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name)) and not name.startswith(".")
    ]


def picture_files(folder):
    """Every regular file under `folder`, nested folders too, hidden ones left out (a FIFO or
    a device would block the read that follows)."""
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            path = os.path.join(root, name)
            if not name.startswith(".") and os.path.isfile(path):  # .DS_Store and the like
                yield path


def read_picture(path, min_side=None, max_pixels=MAX_PIXELS):
    """The picture at `path` as an upright 8-bit RGB `PIL.Image`, transparency laid on white.

    The GAN's reader (`load_pictures`): any format Pillow reads. A classifier's pictures
    go through `tfkit.data.decode.picture_pixels` instead, as its export's do.

    Args:
        path: a file Pillow reads (the first frame of an animation).
        min_side: when given, a JPEG may decode at a fraction of its size as long as both
            sides stay at least this; other formats ignore it.
        max_pixels: a picture whose header declares more is refused before decoding.

    Raises:
        OSError, ValueError or `Image.DecompressionBombError`: Pillow cannot decode it,
        or it has more than `max_pixels` pixels.
    """
    with open_picture(path, max_pixels) as picture:
        if min_side:
            picture.draft(None, (min_side, min_side))
        picture.load()  # a truncated file fails here, not later
        if picture.format == "GIF":
            # The classifier's decoder (TensorFlow's decode_gif) has no alpha: a transparent
            # pixel is its palette colour there, so it is here too, for the GAN.
            picture = picture.convert("RGB")
            picture.info.pop("transparency", None)  # else convert("RGBA") applies it again
        # First of all: a phone stores a portrait photo as landscape plus an EXIF
        # Orientation tag, and anything done before turning it would be done sideways.
        try:
            picture = ImageOps.exif_transpose(picture)
        except Exception:  # noqa: BLE001, S110  broken EXIF (Pillow raises even SyntaxError):
            pass  # the pixels are fine; keep them as stored
    rgba = _eight_bits(picture).convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _eight_bits(picture):
    """A 16- or 32-bit greyscale picture scaled to 8 bits (mode L); other modes as they are.

    `convert("RGB")` clips such values at 255: 16-bit mid-grey (32768) would come out
    white. The I;16 modes hold 0..65535. Modes I (32-bit integers) and F (floats) carry no
    range, and Pillow opens some 16-bit PNGs and TIFFs as I: values above 255 are read as
    16-bit (0..65535, scaled by 1/257), values within 0..255 as 8-bit already; negative
    values become 0.
    """
    if picture.mode in SIXTEEN_BIT_MODES:
        picture, scale = picture.convert("I"), 1 / 257  # point() refuses I;16B
    elif picture.mode in ("I", "F"):
        scale = 1 / 257 if picture.getextrema()[1] > 255 else 1
    else:
        return picture
    # + 0.5 rounds to the nearest level, as convert("L") truncates: 32768 gives 128.
    return picture.point(lambda value: value * scale + 0.5).convert("L")


def _reason(error):
    text = str(error) or type(error).__name__
    return "not a picture Pillow can read" if "cannot identify image file" in text else text
