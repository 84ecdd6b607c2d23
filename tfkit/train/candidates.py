"""Running a candidate: its recipe in a child process, watched, and stopped between steps.

A child process per candidate frees its memory when it ends and dies with the train
process (Linux's parent-death signal), so a killed train run leaves no recipe training
on. A candidate is stopped with SIGTERM, which a recipe takes as "finish the step, back
up, exit": when it falls clearly behind (`behind`) or when the budget runs out. Its
output goes to the terminal and to `logs/<candidate>.log`.
"""

import ctypes
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd

from tfkit.train.pick import standard_error

POLL_SECONDS = 0.5
STOP_GRACE = 20.0  # seconds a stopped recipe has to finish its step and back up
# A candidate is judged against the leader once it has trained this many epochs.
MIN_EPOCHS = 3
# ...and stopped when its best score trails the leader's at the same epoch by more than
# this many standard errors of the leader's validation score (a binomial proportion).
BEHIND_STANDARD_ERRORS = 2.0


@dataclasses.dataclass
class Outcome:
    """How a candidate's process ended."""

    status: str  # "finished" (metrics.json written), "stopped" or "failed"
    reason: str = ""
    epochs: int = 0  # rows of its history.csv the decision read
    seconds: float = 0.0


def run_candidate(command, run_dir, log_path, clock, reserve, judge=None, floor=None):
    """Runs `command` until it ends, `judge(history)` returns a reason to stop, or only
    `reserve` seconds of the budget are left; a candidate whose training is over (it is
    being evaluated and exported) is given up to `floor` seconds left instead, so that
    its trained epochs are not lost for the time kept for a refit.

    Returns:
        An `Outcome`.
    """
    started = time.monotonic()
    history_csv = os.path.join(run_dir, "history.csv")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env(),
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (no other thread runs: the last echo was joined)
    )  # fmt: skip
    echo = threading.Thread(target=_echo, args=(process.stdout, log_path), daemon=True)
    echo.start()
    outcome, rows = None, 0
    try:
        while process.poll() is None:
            clock.tick()
            history = _history(history_csv)
            # Each epoch judged on the history up to it, however many a poll finds: the
            # decision depends on the history, not on when it was read.
            while judge is not None and history is not None and rows < len(history):
                rows += 1
                reason = judge(history.iloc[:rows])
                if reason:
                    outcome = Outcome("stopped", reason, rows)
                    break
            if outcome is not None:
                break
            left = clock.left()
            if left <= reserve and not (floor is not None and left > floor and _trained(run_dir)):
                outcome = Outcome("stopped", "the time budget ran out", rows)
                break
            time.sleep(POLL_SECONDS)
    finally:  # stopped by a rule, the budget, or a signal to this process
        if process.poll() is None:
            stop(process)
        echo.join(timeout=5)
    seconds = time.monotonic() - started
    if outcome is not None:
        return dataclasses.replace(outcome, seconds=seconds)
    if process.returncode == 0 and os.path.exists(os.path.join(run_dir, "metrics.json")):
        history = _history(history_csv)
        return Outcome("finished", epochs=0 if history is None else len(history), seconds=seconds)
    return Outcome("failed", f"exit status {process.returncode}: {_last_line(log_path)}",
                   seconds=seconds)  # fmt: skip


def stop(process):
    """SIGTERM, so the recipe backs up after its current step; SIGKILL if it will not end."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def behind(history, leader_history, metric, val_examples):
    """Why a candidate is clearly behind the leader, or None.

    After `MIN_EPOCHS` epochs, the candidate's best validation score so far is compared
    with the leader's best over as many epochs (its whole run when it trained fewer): it
    is behind when it trails by more than `BEHIND_STANDARD_ERRORS` standard errors of
    the leader's score on `val_examples` examples.
    """
    column = f"val_{metric}"
    epochs = len(history)
    if leader_history is None or epochs < MIN_EPOCHS or column not in history:
        return None
    best = float(history[column].max())
    leader = float(leader_history[column].iloc[:epochs].max())
    error = standard_error(leader, val_examples)
    if best < leader - BEHIND_STANDARD_ERRORS * error:
        return (f"behind after {epochs} epochs: best val_{metric} {best:.4f} < the leader's "
                f"{leader:.4f} at {epochs} epochs - {BEHIND_STANDARD_ERRORS:g} x {error:.4f} "
                "(its standard error)")  # fmt: skip
    return None


def _trained(run_dir):
    """Whether the run's training is over: its backup says so (`tfkit.backup`, at the end of
    `fit`); it is then evaluated and exported."""
    try:
        with open(os.path.join(run_dir, "backup", "state.json")) as file:
            return bool(json.load(file).get("finished"))
    except (OSError, ValueError):
        return False


def read_history(run_dir):
    """A candidate's history.csv as a DataFrame, or None."""
    return _history(os.path.join(run_dir, "history.csv"))


def _history(path):
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def _child_env():
    """The train process's environment, with the recipes and tfkit importable."""
    spec = importlib.util.find_spec("recipes")  # found, not imported: tfkit imports no recipe
    root = os.path.dirname(next(iter(spec.submodule_search_locations)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent():
    """In the child: SIGKILL it when the train process dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: a killed train run may leave its candidate running
        pass


def _echo(stream, log_path):
    """Copies the child's output to this terminal and to its log, as it comes."""
    with open(log_path, "ab") as log:
        for chunk in iter(lambda: stream.read1(4096), b""):
            log.write(chunk)
            log.flush()
            try:  # a replaced sys.stdout (a notebook, a test) may have no bytes buffer
                if hasattr(sys.stdout, "buffer"):
                    sys.stdout.buffer.write(chunk)
                else:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            except (OSError, ValueError):  # a closed terminal: the log still gets it all
                pass


def _last_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = [line.strip() for line in file.read().replace("\r", "\n").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no output"
