"""`python -m tfkit launch --workers N -- COMMAND...`: multi-worker training on one machine.

Starts N copies of COMMAND, each with the `TF_CONFIG` of one worker of a cluster on
free ports of 127.0.0.1 (TensorFlow's gRPC server has no authentication, so it is
never bound to other interfaces here). Worker 0 is the chief: its output passes
through untouched; the others' lines are prefixed with `[worker i]`. The exit status
is the chief's. If any worker dies, the others would wait for it forever in their
collective ops, so all are stopped and the launcher fails; re-running the same
command resumes from the run's last backup.

This module does not import TensorFlow.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tfkit.cli import FAILURE, USAGE_ERROR


def free_ports(count):
    """`count` distinct TCP ports on 127.0.0.1 that are free right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses, index):
    """The `TF_CONFIG` JSON of worker `index` in a cluster of workers at `addresses`."""
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


# Exit statuses of a worker stopped cleanly by SIGINT or SIGTERM, and how long the
# others get to back up and stop by themselves before they are killed.
STOPPED_BY_SIGNAL = (130, 143)
GRACE_SECONDS = 60


def launch(workers, command, poll_seconds=0.2):
    """Runs `command` as `workers` local workers; returns the chief's exit status.

    Args:
        workers: how many processes (>= 1).
        command: the argv list each worker runs, e.g.
            `["python", "-m", "recipes.imdb_conv1d", "--strategy", "multi_worker"]`.

    Returns:
        The chief's exit status; if another worker fails first, that worker's status
        (or 1), after stopping the rest. If a worker cannot start, the ones started
        are stopped and the status is 2 when the command cannot run here (not found,
        not executable), else 1.
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    processes = []

    def stop_all(signum=None, frame=None):
        if signum is not None:
            # A clean stop: each worker backs up at the same step and exits by itself.
            # SIGTERM even for Ctrl-C, which the terminal has sent the workers already;
            # a second SIGINT would tell them to stop at once.
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            _wait(processes, GRACE_SECONDS)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if signum is not None:
            sys.exit(128 + signum)

    for index in range(workers):
        env = dict(os.environ, TF_CONFIG=tf_config(addresses, index))
        try:
            processes.append(_start(command, env, index))
        except OSError as error:
            stopped = "; the workers started were stopped" if processes else ""
            stop_all()  # they would wait for this one forever
            # Not found or not executable: the command is wrong, not the machine.
            usage = isinstance(error, (FileNotFoundError, PermissionError))
            way_out = "give a command that runs here" if usage else "try again"
            print(
                f"tfkit launch: cannot start worker {index} ({command[0]}: {error.strerror})"
                f"{stopped}; {way_out}",
                file=sys.stderr,
            )
            return USAGE_ERROR if usage else FAILURE

    previous = {
        number: signal.signal(number, stop_all) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        while True:
            statuses = [process.poll() for process in processes]
            failed = [
                (index, status) for index, status in enumerate(statuses) if status not in (None, 0)
            ]
            if failed:
                index, status = failed[0]
                if status in STOPPED_BY_SIGNAL:  # the others are stopping at the same step
                    _wait(processes, GRACE_SECONDS)
                    chief = processes[0].poll()
                    stop_all()
                    return chief if chief is not None else status
                stop_all()
                print(
                    f"tfkit launch: worker {index} exited with status {status}, so the others "
                    "were stopped; a recipe re-run with the same --run-dir resumes from its "
                    "last backup",
                    file=sys.stderr,
                )
                return status if status > 0 else 1
            if all(status == 0 for status in statuses):
                return 0
            time.sleep(poll_seconds)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start(command, env, index):
    """Starts worker `index`: the chief's output passes through, the others' is prefixed."""
    if index == 0:
        return subprocess.Popen(command, env=env)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    threading.Thread(target=_prefix_lines, args=(process, index), daemon=True).start()
    return process


def _wait(processes, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)


def _prefix_lines(process, index):
    for line in process.stdout:  # bytes, split at "\n" only
        # A progress bar redraws itself after carriage returns: keep its final state.
        final = line.decode(errors="replace").rstrip("\n").rsplit("\r", 1)[-1]
        sys.stderr.write(f"[worker {index}] {final}\n")
    process.stdout.close()
