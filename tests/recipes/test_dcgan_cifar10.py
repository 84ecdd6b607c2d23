import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, kill_after_epochs, python_env
from recipes import dcgan_cifar10
from tfkit.__main__ import main as tfkit_main
from tfkit.optim import get_optimizer

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


def test_kernel_distance_separates_real_from_noise():
    import numpy as np

    from tfkit.data.cifar10 import synthetic_images

    real = synthetic_images(np.full(120, 6), seed=0).astype("float32") / 127.5 - 1
    more_real = synthetic_images(np.full(120, 6), seed=1).astype("float32") / 127.5 - 1
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype("float32")
    features = dcgan_cifar10.pixel_features
    same = dcgan_cifar10.kernel_distance(features(real), features(more_real))
    different = dcgan_cifar10.kernel_distance(features(real), features(noise))
    assert abs(same) < 0.05 and different > 10 * abs(same) + 0.1


def test_bad_gan_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        dcgan_cifar10.main(["--class", "dragon"])
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
    assert json.loads((run / "metrics.json").read_text())["train_examples"] == 40
    assert "pixel_kid" in history and (run / "curves.png").exists()
    # TerminateOnNaN reads only "loss": it is the sum of both, so a NaN in either stops.
    assert (history["loss"] - history["d_loss"] - history["g_loss"]).abs().max() < 1e-5

    # `python -m tfkit sample` draws from the newest version.
    tfkit_main(["sample", str(tmp_path / "export"), "--n", "4", "--out", str(tmp_path / "g.png")])
    assert (tmp_path / "g.png").exists()


@pytest.mark.slow
def test_a_killed_gan_resumes_with_every_epoch_once(tmp_path):
    epochs = 5
    command = [
        sys.executable, "-m", "recipes.dcgan_cifar10", *NARROW, "--data", "synthetic",
        "--max-examples", "200", "--quality-samples", "20", "--epochs", str(epochs),
        "--run-dir", str(tmp_path / "run"), "--no-export",
    ]
    rows_at_kill = kill_after_epochs(command, tmp_path / "run" / "history.csv", 2, epochs)
    result = subprocess.run(command, env=python_env(), cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    first_epoch = int(re.search(r"Epoch (\d+)/%d" % epochs, result.stdout).group(1)) - 1
    assert first_epoch in (rows_at_kill - 1, rows_at_kill)  # resumed, not restarted
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == list(range(epochs))


def narrow_gan(**overrides):
    config = dcgan_cifar10.Config(generator_filters=8, discriminator_filters=8, batch_size=4, **overrides)
    gan = dcgan_cifar10.DCGAN(
        dcgan_cifar10.build_generator(config), dcgan_cifar10.build_discriminator(config), config
    )
    gan.compile(
        d_optimizer=get_optimizer("rmsprop", 1e-3, clipvalue=1.0),
        g_optimizer=get_optimizer("rmsprop", 1e-3, clipvalue=1.0),
    )
    return gan


def real_batches(count=8):
    import numpy as np
    import tensorflow as tf

    images = np.random.default_rng(0).uniform(-1, 1, (count, 32, 32, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(4)


def test_backup_holds_both_networks_and_both_optimizers(tmp_path):
    import numpy as np

    from tfkit.backup import STATE_FILE, ExactBackupAndRestore
    from tfkit.data.order import epoch_batches

    gan = narrow_gan()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    batches = epoch_batches(images, 4, seed=0)
    backup = ExactBackupAndRestore(str(tmp_path / "backup"), batches.epoch_order)
    gan.fit(batches, epochs=1, verbose=0, callbacks=[batches.epoch_order, backup])
    restored = narrow_gan()
    state = json.loads((tmp_path / "backup" / STATE_FILE).read_text())
    restored.load_weights(tmp_path / "backup" / state["files"]["weights"])
    for name in ("d_optimizer", "g_optimizer"):
        saved = [np.asarray(v) for v in getattr(gan, name).variables]
        loaded = [np.asarray(v) for v in getattr(restored, name).variables]
        assert any(np.abs(v).sum() > 0 for v in saved[1:]), name  # RMSprop state was trained
        assert all(np.array_equal(a, b) for a, b in zip(saved, loaded)), name
    for a, b in zip(gan.generator.get_weights(), restored.generator.get_weights()):
        assert np.array_equal(a, b)


def test_fp16_wraps_both_optimizers_in_loss_scaling():
    import keras
    import numpy as np

    keras.mixed_precision.set_global_policy("mixed_float16")
    gan = narrow_gan()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    history = gan.fit(real_batches(), epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][0]) and np.isfinite(history.history["g_loss"][0])


def test_search_scores_trials_by_pixel_kid_and_retrains_the_best(tmp_path):
    flags = NARROW + ["--data", "synthetic", "--max-examples", "64", "--epochs", "1",
                      "--quality-samples", "32"]  # fmt: skip
    dcgan_cifar10.main(flags + ["--tune", "--max-trials", "2", "--run-dir", str(tmp_path / "s")])
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert len(trials) == 2 and trials["pixel_kid"].is_monotonic_increasing  # lower is better
    for name in ("learning_rate", "generator_learning_rate", "batch_size", "label_noise"):
        assert name in trials
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert best["objective"] == "pixel_kid"

    dcgan_cifar10.main(flags + ["--retrain-best", str(tmp_path / "s"),
                                "--run-dir", str(tmp_path / "r"), "--export-dir", str(tmp_path / "e")])  # fmt: skip
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["label_noise"] == best["hyperparameters"]["label_noise"]
    assert (tmp_path / "e" / "1" / "saved_model.pb").exists()


def test_a_run_saves_its_pair_and_another_starts_from_it(tmp_path):
    import keras
    import numpy as np

    from tfkit.errors import UsageError

    base = ["--data", "synthetic", "--max-examples", "40", "--epochs", "1", "--no-export"]
    base += ["--quality-samples", "8"]
    common = base + NARROW
    dcgan_cifar10.main(common + ["--run-dir", str(tmp_path / "source")])
    source = tmp_path / "source"
    assert (source / "generator.keras").exists() and (source / "discriminator.keras").exists()
    # At an LR too small to move the weights, the new run's networks are the source's.
    tuned = tmp_path / "tuned"
    dcgan_cifar10.main(
        common
        + ["--run-dir", str(tuned), "--init-from", str(source)]
        + ["--learning-rate", "1e-12", "--generator-learning-rate", "1e-12", "--clipvalue", "1"]
    )
    for name in ("generator", "discriminator"):
        before = keras.saving.load_model(source / f"{name}.keras").get_weights()
        after = keras.saving.load_model(tuned / f"{name}.keras").get_weights()
        for a, b in zip(before, after):
            np.testing.assert_allclose(a, b, atol=1e-5)
    # A pair of other widths is refused in one line.
    with pytest.raises(UsageError, match="architecture does not match"):
        dcgan_cifar10.main(
            base + ["--generator-filters", "8", "--discriminator-filters", "16"]
            + ["--run-dir", str(tmp_path / "other"), "--init-from", str(source)]
        )
