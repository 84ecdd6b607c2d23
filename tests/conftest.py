import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def python_env():
    """Environment for subprocesses: the repository on the path, quiet TensorFlow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def pytest_collection_modifyitems(items):
    """The slow end-to-end tests first: under `-n 2` the quick ones then fill both workers
    to the end, instead of one worker finishing a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def quick_flags(tmp_path):
    """Flags for a run of a few seconds on synthetic data inside tmp_path.

    Without the linear baseline, which a test of the baseline turns on (`--baseline`).
    """
    return [
        "--no-baseline",
        "--data", "synthetic",
        "--max-examples", "64",
        "--epochs", "1",
        "--batch-size", "32",
        "--run-dir", str(tmp_path / "run"),
        "--export-dir", str(tmp_path / "export"),
    ]


@pytest.fixture(autouse=True)
def _float32_policy():
    """Each test starts and ends under float32, whatever a recipe set."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


def kill_after_epochs(command, history_csv, min_rows, epochs, kill=None):
    """Starts `command`, kills it once `history_csv` has `min_rows` rows; returns the rows.

    `kill(process)` does the killing; by default SIGKILL goes to the process and every
    process it started (all the workers of a `tfkit launch`).
    """
    process = subprocess.Popen(
        command,
        env=python_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if history_csv.exists() and len(pd.read_csv(history_csv)) >= min_rows:
            break
        time.sleep(0.05)
    (kill or kill_all)(process)
    process.wait(timeout=60)
    rows = len(pd.read_csv(history_csv))
    assert min_rows <= rows < epochs, "the run ended before it could be killed"
    return rows


def kill_all(process):
    os.killpg(process.pid, signal.SIGKILL)


def kill_worker(index, signum=signal.SIGKILL):
    """A `kill` for `kill_after_epochs`: `signum` to worker `index` of a `tfkit launch` only."""

    def kill(launcher):
        with open(f"/proc/{launcher.pid}/task/{launcher.pid}/children") as file:
            children = [int(pid) for pid in file.read().split()]
        for pid in children:
            with open(f"/proc/{pid}/environ", "rb") as file:
                if b'"index": %d}' % index in file.read():
                    os.kill(pid, signum)
                    return
        raise AssertionError(f"worker {index} is not running")

    return kill
