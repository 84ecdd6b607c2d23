"""CIFAR-10 training images (uint8, 32x32x3), from TFDS, the binary files, or synthetic.

The local copy is read from the `cifar-10-batches-bin/` binary files, never from the
Python-pickle version, whose loading runs code. Each binary record is one label byte
then 3072 bytes: the red, green and blue 32x32 planes, row-major.
"""

import os

import numpy as np

from tfkit.data.download import download_and_prepare
from tfkit.data.splits import stratified_sample
from tfkit.errors import DataError

TFDS_NAME = "cifar10"
DOWNLOAD_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
RECORD_BYTES = 1 + 32 * 32 * 3
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
NUM_TRAIN_PER_CLASS = 5000
WAYS_OUT = (
    "Use --data dir --data-dir PATH with a local copy of cifar-10-batches-bin/ (from "
    f"{DOWNLOAD_URL}), or --data synthetic."
)


def parse_class(text):
    """`--class`: a name ("frog"), an id ("6") or "all". Returns the id, or None for all."""
    if text == "all":
        return None
    if text in CLASS_NAMES:
        return CLASS_NAMES.index(text)
    if text.isdigit() and int(text) < len(CLASS_NAMES):
        return int(text)
    raise ValueError(
        f"class must be a CIFAR-10 class name ({', '.join(CLASS_NAMES)}), an id 0-9, or all. "
        f"Received: class={text!r}"
    )


def read_binary_batch(path):
    """Reads one CIFAR-10 binary file.

    Returns:
        `(images, labels)`: uint8 array of shape (n, 32, 32, 3) and uint8 labels.

    Raises:
        DataError: the file is truncated, of the wrong size, or holds labels over 9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(
            f"{path} is truncated or not a CIFAR-10 binary batch: {raw.size} bytes is not a "
            f"multiple of {RECORD_BYTES} (a label byte and 3072 pixel bytes). Download the "
            "binary version again."
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{path} holds label {labels.max()}; CIFAR-10 labels are 0-9.")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def load_cifar10(source, data_dir=None, class_id=6, seed=1337, max_examples=None, split="train"):
    """CIFAR-10 training (or test) images of one class (frog, id 6, as in 002 §6) or all.

    Args:
        source: "tfds", "dir" (a `cifar-10-batches-bin/` folder) or "synthetic".
        data_dir: the TFDS data directory, or the folder holding (or being) the copy.
        class_id: the class to keep, or None for every class.
        seed: seeds synthetic data and the order of the images.
        max_examples: caps the number of images, for quick runs.
        split: "train" (50,000 images) or "test" (10,000; synthetic: others of the same kind).

    Returns:
        `(images, labels)`: uint8 images of shape (n, 32, 32, 3) and their class ids,
        shuffled from `seed`; a cap keeps the class mix.
    """
    if source == "tfds":
        images, labels = _from_tfds(data_dir, split)
    elif source == "dir":
        images, labels = _from_directory(data_dir, TEST_FILES if split == "test" else TRAIN_FILES)
    elif source == "synthetic":
        per_class = NUM_TRAIN_PER_CLASS // (5 if split == "test" else 1)
        count = per_class * (1 if class_id is not None else len(CLASS_NAMES))
        if max_examples is not None:
            count = min(count, max_examples)
        classes = np.full(count, class_id) if class_id is not None else np.arange(count) % 10
        seed = seed if split == "train" else seed + 1  # other pictures than the training ones
        return synthetic_images(classes, seed), classes.astype("uint8")
    else:
        raise ValueError(f"unknown data source. Received: data={source!r}")
    if class_id is not None:
        images, labels = images[labels == class_id], labels[labels == class_id]
    count = len(labels) if max_examples is None else max_examples
    order = stratified_sample(labels, count, np.random.default_rng(seed))
    return images[order], labels[order]


def _from_tfds(data_dir, split="train"):
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    download_and_prepare(builder, DOWNLOAD_URL, WAYS_OUT)
    dataset = builder.as_dataset(split=split, as_supervised=True).batch(5000)
    batches = list(tfds.as_numpy(dataset))
    return (
        np.concatenate([images for images, _ in batches]),
        np.concatenate([labels for _, labels in batches]),
    )


def _from_directory(data_dir, names=TRAIN_FILES):
    root = os.path.join(data_dir, "cifar-10-batches-bin")
    root = root if os.path.isdir(root) else data_dir
    missing = [name for name in names if not os.path.isfile(os.path.join(root, name))]
    if missing:
        raise DataError(
            f"{data_dir} is not a cifar-10-batches-bin/ copy: missing {', '.join(missing)}. "
            "It needs the binary files data_batch_1.bin .. data_batch_5.bin (and test_batch.bin)."
        )
    batches = [read_binary_batch(os.path.join(root, name)) for name in names]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def synthetic_images(classes, seed):
    """Deterministic structured images a GAN can learn: soft coloured blobs on a gradient.

    Each class has its own palette, so `--class` selects a visibly different set.
    Returns a uint8 array of shape (len(classes), 32, 32, 3).
    """
    rng = np.random.default_rng(seed)
    palettes = np.random.default_rng(12345).uniform(0.1, 0.9, size=(10, 3, 3))
    y, x = np.mgrid[0:32, 0:32] / 31.0
    images = np.empty((len(classes), 32, 32, 3), dtype=np.float32)
    for i, label in enumerate(classes):
        background, blob, edge = palettes[label]
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * x + np.sin(angle) * y + 1.5) / 3.0
        image = background * ramp[..., None]
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.2, 0.8, size=2)
            radius = rng.uniform(0.08, 0.25)
            mask = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
            image = image * (1 - mask[..., None]) + (blob + 0.1 * edge) * mask[..., None]
        images[i] = image + rng.normal(0, 0.02, size=image.shape)
    return np.clip(images * 255, 0, 255).astype(np.uint8)
