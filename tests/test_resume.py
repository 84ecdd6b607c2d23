"""Under --deterministic, a run killed or stopped anywhere and re-run ends exactly as one
never stopped: the same history.csv (timings aside) and the same test metrics."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, python_env

pytestmark = pytest.mark.slow
TIMINGS = ("epoch_seconds", "examples_per_second")


def run(command, run_dir):
    result = subprocess.run(command + ["--run-dir", str(run_dir)], env=python_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    return result


def interrupt_at(command, run_dir, epoch, step, signum):
    """Starts `command`; sends `signum` once its backup has reached (epoch, >= step)."""
    process = subprocess.Popen(
        command + ["--run-dir", str(run_dir)], env=python_env(), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    state_file = run_dir / "backup" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        if state and (state["epoch"], state["step"]) >= (epoch, step):
            process.send_signal(signum)
            break
        time.sleep(0.01)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == -signum if signum == signal.SIGKILL else 128 + signum, output
    return output


def assert_same_run(expected, got):
    history = pd.read_csv(expected / "history.csv").drop(columns=list(TIMINGS))
    resumed = pd.read_csv(got / "history.csv").drop(columns=list(TIMINGS))
    pd.testing.assert_frame_equal(resumed, history, check_exact=True)
    expected, got = (json.loads((d / "metrics.json").read_text()) for d in (expected, got))
    for key in ("test", "final_pixel_kid"):
        assert got.get(key) == expected.get(key), key
    return got


# 100 words of each review, not the documents' 500: a GRU's epoch 4x shorter, the same code.
TEXT = ["--data", "synthetic", "--max-examples", "192", "--epochs", "3", "--batch-size", "32",
        "--max-len", "100", "--deterministic", "--dropout", "0.3", "--learning-rate", "3e-3",
        "--no-export", "--no-baseline"]  # fmt: skip


def test_conv1d_killed_then_interrupted_mid_epoch_ends_as_if_never_stopped(tmp_path):
    command = [sys.executable, "-m", "recipes.imdb_conv1d", *TEXT, "--reduce-lr-patience", "1"]
    assert run(command, tmp_path / "whole").returncode == 0
    stopped = tmp_path / "stopped"
    interrupt_at(command + ["--backup-every", "1"], stopped, 1, 2, signal.SIGKILL)
    output = interrupt_at(command + ["--backup-every", "1"], stopped, 2, 2, signal.SIGINT)
    assert "resumed at epoch 1, step 2" in output
    assert "stopped by SIGINT at epoch 2" in output and "re-run the same command" in output
    result = run(command, stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = assert_same_run(tmp_path / "whole", stopped)
    assert [r["epoch"] for r in metrics["resumed"]] == [1, 2]
    assert not (stopped / "backup").exists()


def test_conv1d_under_mixed_bfloat16_with_its_baseline_resumes_exactly(tmp_path):
    # The baseline once reset Keras's dtype policy: a new run trained in float32 after it
    # while metrics.json said mixed_bfloat16, and its resume (baseline read from its file)
    # trained in bfloat16, so the two histories differed.
    command = [sys.executable, "-m", "recipes.imdb_conv1d", *TEXT, "--mixed-precision", "bf16",
               "--baseline"]  # fmt: skip
    assert run(command, tmp_path / "whole").returncode == 0
    stopped = tmp_path / "stopped"
    interrupt_at(command + ["--backup-every", "1"], stopped, 1, 2, signal.SIGKILL)
    result = run(command, stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = assert_same_run(tmp_path / "whole", stopped)
    assert metrics["mixed_precision"] == "mixed_bfloat16"  # what the layers computed in
    assert "baseline" in metrics


MIRRORED = ["--strategy", "mirrored", "--logical-cpus", "2"]


@pytest.mark.parametrize(
    "recipe, strategy",
    [
        (["imdb_conv1d"], MIRRORED),
        (["imdb_rnn", "--cell", "gru"], []),
        (["imdb_rnn", "--cell", "gru"], MIRRORED),
    ],
)
def test_a_text_recipe_stopped_by_sigterm_mid_epoch_resumes_exactly(tmp_path, recipe, strategy):
    command = [sys.executable, "-m", f"recipes.{recipe[0]}", *recipe[1:], *TEXT, *strategy]
    assert run(command, tmp_path / "whole").returncode == 0
    stopped = tmp_path / "stopped"
    output = interrupt_at(command + ["--backup-every", "1"], stopped, 1, 1, signal.SIGTERM)
    assert "stopped by SIGTERM at epoch 1" in output
    result = run(command, stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed at epoch 1, step" in result.stdout
    assert_same_run(tmp_path / "whole", stopped)


@pytest.mark.parametrize("strategy", [[], ["--strategy", "mirrored", "--logical-cpus", "2"]])
def test_the_gan_stopped_mid_epoch_resumes_exactly(tmp_path, strategy):
    command = [sys.executable, "-m", "recipes.dcgan_cifar10", "--generator-filters", "8",
               "--discriminator-filters", "8", "--data", "synthetic", "--max-examples", "80",
               "--batch-size", "8", "--epochs", "3", "--quality-samples", "16",
               "--deterministic", "--no-export", *strategy]  # fmt: skip
    assert run(command, tmp_path / "whole").returncode == 0
    stopped = tmp_path / "stopped"
    interrupt_at(command + ["--backup-every", "1"], stopped, 1, 3, signal.SIGTERM)
    result = run(command, stopped)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_run(tmp_path / "whole", stopped)
    assert sorted(p.name for p in (stopped / "samples").iterdir())[-1] == "epoch_002.png"
