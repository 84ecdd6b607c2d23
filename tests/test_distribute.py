"""Strategies on 2 logical CPUs. Logical devices must be set before TensorFlow starts,
so each test runs in a fresh process."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, kill_after_epochs, kill_worker, python_env

SAME_STEP = """
import numpy as np
import tfkit.quiet
import keras
import tensorflow as tf
from tfkit.distribute import get_strategy
from tfkit.optim import get_optimizer

mirrored = get_strategy("mirrored", logical_cpus=2)
assert mirrored.num_replicas_in_sync == 2
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 5)).astype("float32")
y = (rng.random((16, 1)) < 0.3).astype("float32")

def one_step(strategy, make_optimizer):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=make_optimizer(), loss="binary_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # undistributed (class_weight)
    model.fit(data, epochs=1, verbose=0, class_weight={0: 1.0, 1: 3.0})
    return model.get_weights()

def largest_difference(make_optimizer):
    single = one_step(tf.distribute.get_strategy(), make_optimizer)
    return max(np.abs(a - b).max() for a, b in zip(single, one_step(mirrored, make_optimizer)))

# Small limits, so that every clip is active on this batch.
for clipping in ({}, {"clipnorm": 0.05}, {"clipvalue": 0.02}, {"global_clipnorm": 0.05}):
    assert largest_difference(lambda: get_optimizer("sgd", 0.5, **clipping)) < 1e-6, clipping
    if clipping:  # Keras's own optimizer clips per replica, and so differs: the check bites.
        assert largest_difference(lambda: keras.optimizers.SGD(0.5, **clipping)) > 1e-3, clipping
print("same")
"""


GAN_REPLICA_SEEDS = """
import numpy as np
import tfkit.quiet
import keras
import tensorflow as tf
from recipes import dcgan_cifar10 as recipe
from tfkit.distribute import get_strategy

mirrored = get_strategy("mirrored", logical_cpus=2)
config = recipe.Config(generator_filters=8, discriminator_filters=8)
def gan():
    return recipe.DCGAN(recipe.build_generator(config), recipe.build_discriminator(config), config)

with mirrored.scope():
    distributed = gan()
seeds = mirrored.experimental_local_results(mirrored.run(tf.function(distributed.replica_seed)))
assert not np.array_equal(seeds[0], seeds[1]), seeds  # each replica its own latents
# On one device the GAN draws exactly what keras.random draws from the same seed.
expected = keras.random.normal((4, 32), seed=keras.random.SeedGenerator(config.seed))
np.testing.assert_array_equal(tf.random.stateless_normal((4, 32), gan().replica_seed()), expected)
print("distinct")
"""


# Each worker restores from its own folder, and only the chief's holds a backup: what
# happens when --run-dir is not on storage that every host sees.
WORKERS_DISAGREE = """
import json, os, sys
import numpy as np
import tfkit.quiet
import keras
import tensorflow as tf
from tfkit import cli
from tfkit.backup import ExactBackupAndRestore
from tfkit.data.order import epoch_batches
from tfkit.distribute import get_strategy

def main(argv):
    strategy = get_strategy("multi_worker")
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
    restore = os.path.join(argv[0], f"restore{index}")
    if index == 0:
        os.makedirs(restore)
        model.save_weights(os.path.join(restore, "w.weights.h5"))
        np.savez(os.path.join(restore, "a.npz"))
        files = {"weights": "w.weights.h5", "arrays": "a.npz"}
        with open(os.path.join(restore, "state.json"), "w") as file:
            json.dump({"epoch": 2, "step": 0, "files": files, "callbacks": []}, file)
    x = np.zeros((8, 2), "float32")
    data = epoch_batches((x, x[:, :1]), 4, seed=0)
    backup = ExactBackupAndRestore(os.path.join(argv[0], f"backup{index}"), data.epoch_order,
                                   restore_dir=restore)
    model.fit(data, epochs=4, callbacks=[data.epoch_order, backup], verbose=0)

cli.run(main)
"""


def run_python(code_or_args, timeout=240, **env):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], env={**python_env(), **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def text_run(run_dir, epochs, *flags):
    """`python -m recipes.imdb_conv1d` on small synthetic data, every epoch run (224 tokens
    hold every synthetic review, at most 209 words, with less padding than the default 500)."""
    return ["-m", "recipes.imdb_conv1d", "--data", "synthetic", "--max-examples", "256", "--no-baseline",
            "--batch-size", "32", "--epochs", str(epochs), "--early-stopping-patience", "99",
            "--max-len", "224", "--run-dir", str(run_dir), *flags]  # fmt: skip


LAUNCH_TWO = ["-m", "tfkit", "launch", "--workers", "2", "--", sys.executable]


def on_two_workers(recipe_args):
    """`tfkit launch` of the recipe on two local workers under multi_worker."""
    return [*LAUNCH_TWO, *recipe_args, "--strategy", "multi_worker"]


def check_resumed(result, run_dir, rows_at_kill, epochs):
    """The re-run succeeded, started where the backup left off, and ran each epoch once."""
    assert result.returncode == 0, result.stderr[-3000:]
    first_epoch = int(re.search(r"Epoch (\d+)/%d" % epochs, result.stdout).group(1)) - 1
    assert first_epoch in (rows_at_kill - 1, rows_at_kill)  # resumed, not restarted
    assert list(pd.read_csv(run_dir / "history.csv")["epoch"]) == list(range(epochs))


def test_mirrored_step_equals_the_single_device_step_with_class_weights_and_clipping():
    result = run_python(SAME_STEP)
    assert result.returncode == 0 and "same" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_a_recipe_and_a_search_run_mirrored_on_two_logical_cpus(tmp_path):
    common = ["--strategy", "mirrored", "--logical-cpus", "2", "--data", "synthetic", "--no-baseline",
              "--max-examples", "64", "--epochs", "1", "--batch-size", "32"]  # fmt: skip
    result = run_python(["-m", "recipes.imdb_conv1d", *common, "--run-dir", str(tmp_path / "run"),
                         "--export-dir", str(tmp_path / "export")])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["per_replica_batch"] == 16

    result = run_python(["-m", "recipes.imdb_conv1d", *common, "--tune", "--max-trials", "2",
                         "--run-dir", str(tmp_path / "search")])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (pd.read_csv(tmp_path / "search" / "trials.csv")["status"] == "COMPLETED").all()


def test_gan_replicas_draw_their_own_latents():
    result = run_python(GAN_REPLICA_SEEDS)
    assert result.returncode == 0 and "distinct" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mirrored", "multi_worker"])
def test_the_gan_trains_and_exports_under_a_strategy(tmp_path, strategy):
    args = ["-m", "recipes.dcgan_cifar10", "--data", "synthetic", "--max-examples", "32",
            "--epochs", "1", "--batch-size", "16", "--generator-filters", "8",
            "--discriminator-filters", "8", "--quality-samples", "16",
            "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "export")]  # fmt: skip
    if strategy == "mirrored":
        result = run_python([*args, "--strategy", "mirrored", "--logical-cpus", "2"])
    else:
        result = run_python(on_two_workers(args))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["strategy"] == strategy and metrics["replicas"] == 2
    assert metrics["final_pixel_kid"] > 0
    assert os.listdir(tmp_path / "run" / "samples") == ["epoch_000.png"]
    assert os.listdir(tmp_path / "export") == ["1"]


@pytest.mark.slow
def test_a_killed_mirrored_run_resumes_with_every_epoch_once(tmp_path):
    epochs = 6
    args = text_run(tmp_path / "run", epochs, "--strategy", "mirrored", "--logical-cpus", "2",
                    "--no-export")  # fmt: skip
    rows = kill_after_epochs([sys.executable, *args], tmp_path / "run" / "history.csv", 2, epochs)
    check_resumed(run_python(args), tmp_path / "run", rows, epochs)


@pytest.mark.slow
def test_a_text_recipe_on_two_workers_where_only_the_chief_keeps_files(tmp_path):
    (tmp_path / "tmp").mkdir()
    args = text_run(tmp_path / "run", 2, "--export-dir", str(tmp_path / "export"))
    result = run_python(on_two_workers(args), TMPDIR=str(tmp_path / "tmp"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [0, 1]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["strategy"] == "multi_worker" and metrics["replicas"] == 2
    assert metrics["per_replica_batch"] == 16
    assert os.listdir(tmp_path / "export") == ["1"]
    # Worker 1 ran the same saving code into a temporary folder, and removed it.
    assert "[worker 1] exported: " + str(tmp_path / "tmp") in result.stderr
    assert [name for name in os.listdir(tmp_path / "tmp") if name.startswith("tfkit-")] == []


@pytest.mark.slow
def test_workers_that_would_resume_at_different_epochs_fail_in_one_line(tmp_path):
    result = run_python([*LAUNCH_TWO, "-c", WORKERS_DISAGREE, str(tmp_path)])
    assert result.returncode == 1
    assert "the workers would resume at different epochs [0, 2]" in result.stderr
    assert "Put --run-dir on storage that every host sees" in result.stderr


def test_multi_worker_without_tf_config_is_refused_in_one_line():
    env = {key: value for key, value in python_env().items() if key != "TF_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "recipes.imdb_conv1d", "--strategy", "multi_worker",
         "--data", "synthetic", "--max-examples", "8"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert "--strategy multi_worker needs TF_CONFIG" in last_line
    assert "python -m tfkit launch --workers 2" in last_line


@pytest.mark.slow
def test_a_multi_worker_run_survives_a_lost_worker_a_sigterm_and_losing_every_process(tmp_path):
    """One run, interrupted three ways and run again after each, ends as one never stopped:
    worker 1 SIGKILLed (the launcher stops the chief, which would wait for it forever);
    worker 1 SIGTERMed mid-epoch (every worker stops at the same step, the one the chief's
    backup holds); every process SIGKILLed."""
    epochs = 4
    flags = ["--deterministic", "--no-export"]
    whole = on_two_workers(text_run(tmp_path / "whole", epochs, *flags))
    assert run_python(whole).returncode == 0
    args = on_two_workers(text_run(tmp_path / "run", epochs, *flags, "--backup-every", "1"))
    history_csv = tmp_path / "run" / "history.csv"
    kill_after_epochs([sys.executable, *args], history_csv, 1, epochs, kill=kill_worker(1))

    launcher = subprocess.Popen([sys.executable, *args], env=python_env(), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    state_file = tmp_path / "run" / "backup" / "state.json"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            state = json.loads(state_file.read_text())
            if (state["epoch"], state["step"]) >= (2, 1):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    kill_worker(1, signal.SIGTERM)(launcher)
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, err[-3000:]  # the chief stopped cleanly too
    stopped_at = json.loads(state_file.read_text())
    # Both workers stop at the same step, the one the chief's backup holds.
    assert err.count(f"stopped by SIGTERM at epoch 2, step {stopped_at['step']},") == 2, err[-3000:]

    rows = kill_after_epochs([sys.executable, *args], history_csv, 3, epochs)  # every process
    check_resumed(run_python(args), tmp_path / "run", rows, epochs)
    history = pd.read_csv(history_csv).drop(columns=["epoch_seconds", "examples_per_second"])
    expected = pd.read_csv(tmp_path / "whole" / "history.csv").drop(columns=["epoch_seconds", "examples_per_second"])
    # Across workers the running metrics of the stopped epoch come back as one sum,
    # so they may differ in the last float32 digit; the training itself is the same.
    pd.testing.assert_frame_equal(history, expected, rtol=1e-5)
