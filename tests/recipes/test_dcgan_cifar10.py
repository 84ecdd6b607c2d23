import os
import subprocess
import sys

import pandas as pd
import pytest

from recipes import dcgan_cifar10

NARROW = ["--generator-filters", "16", "--discriminator-filters", "16"]

LOAD_WITHOUT_TFKIT = """
import sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
images = serve(latent=tf.random.normal([3, 32]))["images"]
assert "tfkit" not in sys.modules
assert images.dtype == tf.uint8 and images.shape == (3, 32, 32, 3), (images.dtype, images.shape)
print("ok")
"""


def test_document_networks():
    config = dcgan_cifar10.Config()
    generator = dcgan_cifar10.build_generator(config)
    discriminator = dcgan_cifar10.build_discriminator(config)
    assert generator.input_shape == (None, 32) and generator.output_shape == (None, 32, 32, 3)
    assert generator.layers[-1].activation.__name__ == "tanh"
    assert discriminator.output_shape == (None, 1)
    # 002 §6.2: 3x3 then three 4x4 stride-2 convolutions: 32 -> 30 -> 14 -> 6 -> 2.
    convs = [layer for layer in discriminator.layers if "conv2d" in layer.name]
    assert [c.output.shape[1] for c in convs] == [30, 14, 6, 2]


def test_tile_makes_a_square_grid():
    import numpy as np

    grid = dcgan_cifar10.tile(np.ones((5, 32, 32, 3), dtype="uint8"))
    assert grid.shape == (64, 96, 3)  # 3 columns, 2 rows
    assert grid[:32].min() == 1 and grid[32:, :64].min() == 1 and grid[32:, 64:].max() == 0


def test_bad_gan_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        dcgan_cifar10.main(["--image-class", "dragon"])
    assert exit_info.value.code == 2
    assert "CIFAR-10 class name" in capsys.readouterr().err


@pytest.mark.slow
def test_a_few_steps_write_grids_history_and_a_servable_generator(tmp_path):
    dcgan_cifar10.main(NARROW + [
        "--data", "synthetic", "--max-examples", "40", "--epochs", "2",
        "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "export"),
    ])
    run = tmp_path / "run"
    assert sorted(os.listdir(run / "samples")) == ["epoch_000.png", "epoch_001.png"]
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    for column in ("d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake", "examples_per_second"):
        assert column in history
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TFKIT, str(tmp_path / "export" / "1")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
