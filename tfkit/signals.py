"""A clean stop on SIGTERM or SIGINT: a preempted machine, a scheduler's stop, Ctrl-C.

While `fit` trains, a signal only asks for a stop: `ExactBackupAndRestore` finishes
the current step, backs up, and raises `TrainingStopped`. Outside training (loading
data, evaluating, exporting) there is nothing to finish, and the signal raises
`TrainingStopped` at once. The command line exits with 128 + the signal's number
(143 for SIGTERM, 130 for SIGINT), as a shell does.
"""

import signal

_state = {"requested": 0, "training": False}


class TrainingStopped(Exception):
    """The run stopped on a signal; its message says how to resume."""

    def __init__(self, signal_number, message):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_status = 128 + signal_number


def name(signal_number):
    """ "SIGTERM" for 15."""
    return signal.Signals(signal_number).name


def install():
    """Handles SIGTERM and SIGINT for the rest of this process (main thread only)."""
    _state["requested"] = 0
    _state["training"] = False
    try:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _handle)
    except ValueError:  # not the main thread: leave Python's default handling
        pass


def requested():
    """The signal number asked for a stop, or 0."""
    return _state["requested"]


def set_training(training):
    """Whether `fit` is running: a signal then waits for the end of the step."""
    _state["training"] = training


def _handle(signal_number, frame):
    if _state["requested"] == signal_number:  # a second Ctrl-C: stop now
        _state["training"] = False
    _state["requested"] = signal_number
    if not _state["training"]:
        raise TrainingStopped(
            signal_number,
            f"stopped by {name(signal_number)} outside training; re-run the same command to "
            "resume from the last backup",
        )
