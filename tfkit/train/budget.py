"""The time budget: `90s`, `10m`, `1h` parsed, and a clock that survives a kill.

The time a train run has spent is written to `clock.json` every few seconds, so a run
killed and started again counts what its earlier processes spent (up to the last few
seconds before the kill) against the same budget.
"""

import json
import os
import re
import time

from tfkit.files import write_json

CLOCK_FILE = "clock.json"
UNITS = {"s": 1, "m": 60, "h": 3600}
SAVE_EVERY = 2.0  # seconds between two writes of clock.json


def parse_duration(text):
    """Seconds in `text`: `90`, `90s`, `10m`, `1.5h`, `1h30m`."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 10m, 1h or 1h30m")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def describe(seconds):
    """`1h02m`, `4m10s`, `35s`."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Clock:
    """The budget of a train run folder and the time spent on it, this process included."""

    def __init__(self, folder, budget, journal_events=()):
        self.path = os.path.join(folder, CLOCK_FILE)
        self.budget = budget
        # clock.json lags by up to SAVE_EVERY after a kill; a journal line may be newer.
        noted = [line["spent_seconds"] for line in journal_events if "spent_seconds" in line]
        self.spent_before = max([_read(self.path), *noted[-1:]])
        self.started = time.monotonic()
        self._saved = 0.0

    def spent(self):
        return self.spent_before + time.monotonic() - self.started

    def left(self):
        return self.budget - self.spent()

    def tick(self, force=False):
        """Writes the time spent, at most every `SAVE_EVERY` seconds unless `force`."""
        now = time.monotonic()
        if force or now - self._saved >= SAVE_EVERY:
            write_json(self.path, {"spent_seconds": round(self.spent(), 3), "budget_seconds": self.budget})
            self._saved = now


def _read(path):
    try:
        with open(path) as file:
            return float(json.load(file)["spent_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
