import numpy as np
import pytest

from tfkit.data.cifar10 import (
    RECORD_BYTES, load_cifar10, parse_class, read_binary_batch, synthetic_images,
)
from tfkit.errors import DataError


def write_batch(path, images, labels):
    """Writes CIFAR-10 binary records: a label byte, then the R, G, B planes row-major."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    path.write_bytes(np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8).tobytes())


def random_batch(rng, count):
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    return images, labels


def test_binary_reader_round_trips_pixels_and_labels(tmp_path):
    images, labels = random_batch(np.random.default_rng(0), 7)
    write_batch(tmp_path / "data_batch_1.bin", images, labels)
    read_images, read_labels = read_binary_batch(tmp_path / "data_batch_1.bin")
    assert read_images.shape == (7, 32, 32, 3) and read_images.dtype == np.uint8
    assert (read_images == images).all() and (read_labels == labels).all()
    # The first pixel bytes of a record are the red plane: pixel (0, 0) red, (0, 1) red, ...
    raw = np.fromfile(tmp_path / "data_batch_1.bin", dtype=np.uint8)
    assert raw[1] == images[0, 0, 0, 0] and raw[2] == images[0, 0, 1, 0]
    assert raw[1 + 1024] == images[0, 0, 0, 1]


def test_truncated_file_is_rejected_in_one_line(tmp_path):
    images, labels = random_batch(np.random.default_rng(1), 2)
    write_batch(tmp_path / "b.bin", images, labels)
    data = (tmp_path / "b.bin").read_bytes()
    (tmp_path / "b.bin").write_bytes(data[: RECORD_BYTES + 100])
    with pytest.raises(DataError, match="truncated or not a CIFAR-10 binary batch") as error:
        read_binary_batch(tmp_path / "b.bin")
    assert "\n" not in str(error.value)


def test_dir_source_keeps_one_class(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}.bin", *random_batch(rng, 20))
    (folder / "test_batch.bin").write_bytes(b"")  # not read for training
    frogs, frog_labels = load_cifar10("dir", str(tmp_path), class_id=6, seed=0)
    every, _ = load_cifar10("dir", str(folder), class_id=None, seed=0)
    labels = np.concatenate([read_binary_batch(folder / f"data_batch_{i}.bin")[1] for i in range(1, 6)])
    assert len(frogs) == (labels == 6).sum() and len(every) == 100
    assert len(load_cifar10("dir", str(tmp_path), class_id=None, seed=0, max_examples=9)[0]) == 9


def test_dir_source_names_missing_files(tmp_path):
    with pytest.raises(DataError, match="data_batch_1.bin"):
        load_cifar10("dir", str(tmp_path))


def test_class_flag_forms():
    assert parse_class("frog") == 6 and parse_class("6") == 6 and parse_class("all") is None
    with pytest.raises(ValueError, match="CIFAR-10 class name"):
        parse_class("dragon")


def test_synthetic_images_are_deterministic_structured_and_per_class():
    frogs, _ = load_cifar10("synthetic", class_id=6, seed=3, max_examples=32)
    assert frogs.shape == (32, 32, 32, 3) and frogs.dtype == np.uint8
    assert (frogs == load_cifar10("synthetic", class_id=6, seed=3, max_examples=32)[0]).all()
    # Structure: neighbouring pixels are far closer than random pixels would be.
    neighbour_gap = np.abs(np.diff(frogs.astype(int), axis=2)).mean()
    assert neighbour_gap < 10
    # Classes look different: their mean colours differ.
    ships = synthetic_images(np.full(32, 8), seed=3)
    assert np.abs(frogs.mean(axis=(0, 1, 2)) - ships.mean(axis=(0, 1, 2))).max() > 10


def test_tfds_source_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        images, _ = load_cifar10("tfds", str(tmp_path), class_id=None, seed=0)
    assert images.shape == (30, 32, 32, 3) and images.dtype == np.uint8
