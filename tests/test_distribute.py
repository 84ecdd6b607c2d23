"""Strategies on 2 logical CPUs. Logical devices must be set before TensorFlow starts,
so each test runs in a fresh process."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, python_env

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


def run_python(code_or_args, timeout=240):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], env=python_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_mirrored_step_equals_the_single_device_step_with_class_weights_and_clipping():
    result = run_python(SAME_STEP)
    assert result.returncode == 0 and "same" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_a_recipe_and_a_search_run_mirrored_on_two_logical_cpus(tmp_path):
    common = ["--strategy", "mirrored", "--logical-cpus", "2", "--data", "synthetic",
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


def test_multi_worker_is_refused_in_one_line_until_it_is_built():
    result = run_python(["-m", "recipes.imdb_conv1d", "--strategy", "multi_worker",
                         "--data", "synthetic", "--max-examples", "8"])  # fmt: skip
    assert result.returncode == 2
    assert "--strategy multi_worker is not available yet" in result.stderr.strip().splitlines()[-1]
