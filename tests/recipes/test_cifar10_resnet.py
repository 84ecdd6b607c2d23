import json
import os
import signal
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras
from PIL import Image

from recipes import cifar10_resnet
from tfkit.data.pictures import load_picture_classes

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (40, 60, 210)}


def picture_folder(root, per_class=24, broken=True):
    """Three classes of noisy coloured pictures in several sizes, modes and formats."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        os.makedirs(root / name)
        for i in range(per_class):
            height, width = [(32, 32), (48, 40), (20, 28)][i % 3]
            pixels = np.clip(rng.normal(colour, 40, (height, width, 3)), 0, 255).astype("uint8")
            picture = Image.fromarray(pixels)
            if i % 4 == 1:
                picture.convert("RGBA").save(root / name / f"{i}.png")
            elif i % 4 == 2:
                picture.save(root / name / f"{i}.jpg", quality=90)
            else:
                picture.save(root / name / f"{i}.png")
    if broken:
        (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_resnet20_is_the_papers_size_and_depth_is_6n_plus_2():
    ten = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
    model = cifar10_resnet.build_model(cifar10_resnet.Config(class_names=ten))
    assert 0.26e6 < model.count_params() < 0.28e6  # He et al. 2016: 0.27 M
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert sum(layer.kernel_size == (3, 3) for layer in convolutions) == 19  # + the Dense: 20
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar10_resnet.Config(depth=21)
    with pytest.raises(SystemExit) as exit:
        cifar10_resnet.main(["--augment", "flip,spin"])
    assert exit.value.code == 2


def test_augmentation_acts_only_while_training():
    config = cifar10_resnet.Config(augment="flip,crop,color")
    assert cifar10_resnet.Config(data="images", data_dir=".").augmentations == ("crop",)
    assert config.augmentations == ("flip", "crop", "color")
    pictures = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    for layer in cifar10_resnet.augmentation(config):
        np.testing.assert_array_equal(layer(pictures, training=False), pictures)
        assert not np.array_equal(layer(pictures, training=True), pictures), layer.name


def test_mix_up_blends_pairs_and_learns_both_labels():
    images = tf.constant(np.arange(5 * 4 * 4 * 3, dtype="uint8").reshape(5, 4, 4, 3))
    labels = tf.constant([0, 1, 2, 1, 0], tf.int32)
    indices = tf.constant([7, 3, 9, 1, 4], tf.int64)
    mixed, mixed_labels, weights = cifar10_resnet.mix_up(
        images, labels, indices, alpha=0.4, seed=1, class_weight=[1.0, 1.0, 1.0]
    )
    assert mixed.shape == (6, 4, 4, 3) and list(mixed_labels.numpy()) == [0, 1, 2, 0, 1, 2]
    weight = weights.numpy()[:3] / 2
    np.testing.assert_allclose(weights.numpy()[3:] / 2, 1 - weight, rtol=1e-6)
    first = tf.cast(images[0], tf.float32) * weight[0] + tf.cast(images[4], tf.float32) * (1 - weight[0])
    np.testing.assert_allclose(mixed[0], first, rtol=1e-5)
    again = cifar10_resnet.mix_up(images, labels, indices, 0.4, 1, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(again[2], weights)  # the same batch draws the same
    other = cifar10_resnet.mix_up(images, labels, indices[::-1], 0.4, 1, [1.0, 1.0, 1.0])
    assert not np.array_equal(other[2], weights)


def test_picture_folders_train_skip_a_broken_file_and_serve_what_training_saw(tmp_path):
    folder = picture_folder(tmp_path / "pictures")
    cifar10_resnet.main(["--data", "images", "--data-dir", str(folder), "--epochs", "3",
                         "--depth", "8", "--augment", "crop,color", "--mixup", "0.2",
                         "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "export")])  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [s["file"] for s in metrics["skipped_files"]] == [os.path.join("red", "broken.png")]
    assert metrics["test_examples"] == 14  # a seeded, stratified fifth of the 72 pictures
    assert metrics["baseline"]["model"].startswith("pixels") and metrics["baseline"]["test"]
    assert metrics["test"]["accuracy"] >= 0.9

    # Serving: the export decodes the files' bytes; it must agree with the trained model
    # on the pixels training read.
    images, labels = load_picture_classes(str(folder))[0]
    model = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    trained = model.predict(images.astype("float32"), verbose=0).argmax(axis=1)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "broken.png")
    files.sort(key=lambda p: (p.parent.name, str(p)))
    loaded = tf.saved_model.load(str(tmp_path / "export" / "1"))
    serve = loaded.signatures["serving_default"]
    out = serve(image_bytes=tf.constant([p.read_bytes() for p in files]))
    assert (out["probabilities"].numpy().argmax(axis=1) == trained).mean() >= 0.99
    names = [n.decode() for n in loaded.signatures["class_names"]()["class_names"].numpy()]
    assert names == ["blue", "green", "red"]
    assert set(out["label"].numpy()) <= {b"blue", b"green", b"red"}


def test_a_synthetic_cifar10_run_is_resumable_and_exports_image_bytes_in(tmp_path, quick_flags):
    cifar10_resnet.main([*quick_flags, "--depth", "8", "--epochs", "2", "--no-baseline"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == "synthetic" and len(metrics["class_counts"]["train"]) == 10
    serve = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"]
    picture = tf.io.encode_png(np.full((32, 32, 3), 200, "uint8"))
    out = serve(image_bytes=tf.stack([picture, picture]))
    assert out["probabilities"].shape == (2, 10) and out["label"].dtype == tf.string


def test_cifar10_from_tfds_has_its_ten_classes_and_its_own_test_split(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=200):
        cifar10_resnet.main(["--data", "tfds", "--data-dir", str(tmp_path / "tfds"),
                             "--max-examples", "100", "--depth", "8", "--epochs", "1",
                             "--no-baseline", "--no-export", "--run-dir", str(tmp_path / "run")])  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == "tfds" and len(metrics["class_counts"]["test"]) == 10
    assert metrics["test_examples"] == 100  # the test split's own, capped; not held out of train
    assert json.loads((tmp_path / "run" / "config.json").read_text())["class_names"][0] == "airplane"


@pytest.mark.slow
def test_augmented_and_mixed_up_run_killed_mid_epoch_resumes_exactly(tmp_path):
    from test_resume import assert_same_run, interrupt_at, run

    command = [sys.executable, "-m", "recipes.cifar10_resnet", "--data", "synthetic",
               "--max-examples", "96", "--epochs", "3", "--batch-size", "16", "--depth", "8",
               "--augment", "flip,crop,color", "--mixup", "0.2", "--deterministic",
               "--no-export", "--no-baseline"]  # fmt: skip
    assert run(command, tmp_path / "whole").returncode == 0
    stopped = tmp_path / "stopped"
    interrupt_at(command + ["--backup-every", "1"], stopped, 1, 2, signal.SIGKILL)
    result = run(command, stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed at epoch 1, step" in result.stdout
    assert_same_run(tmp_path / "whole", stopped)
