"""The decision journal: `journal.jsonl`, one JSON line per decision, appended and synced.

Each line has an `event` (`read`, `split`, `plan`, `start`, `finish`, `stop`, `pick`,
`refit`, `export`, `done`) and, for a candidate's events, its `candidate` name. A train
run killed at any moment continues from what its journal holds: a line is written
whole or not at all (a torn last line, from a kill mid-write, is dropped on reading).
"""

import json
import os

from tfkit.files import writing

JOURNAL_FILE = "journal.jsonl"
EVENTS = ("read", "split", "plan", "start", "finish", "stop", "pick", "refit", "export", "done")


class Journal:
    """The journal of a train run folder: its events so far, and the next to append."""

    def __init__(self, folder, clock=None):
        self.path = os.path.join(folder, JOURNAL_FILE)
        self.events = _read(self.path)
        self.clock = clock  # a `Clock`: each line then says when, in seconds of the budget

    def write(self, event, **fields):
        """Appends one decision; returns it."""
        assert event in EVENTS, event
        line = {"event": event, **fields}
        if self.clock is not None:
            line["spent_seconds"] = round(self.clock.spent(), 1)
        with writing(self.path), open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.events.append(line)
        return line

    def last(self, event, candidate=None):
        """The newest `event` line (for `candidate`, when given), or None."""
        for line in reversed(self.events):
            if line["event"] == event and (candidate is None or line.get("candidate") == candidate):
                return line
        return None

    def outcome(self, candidate):
        """The `finish` or `stop` line of `candidate`, or None while it has neither."""
        for line in reversed(self.events):
            if line.get("candidate") == candidate and line["event"] in ("finish", "stop"):
                return line
        return None


def _read(path):
    """The journal's lines; a last line cut by a kill mid-write is cut off the file too."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as file:
        data = file.read()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) < len(data):
        with open(path, "r+b") as file:
            file.truncate(len(whole))
    return [json.loads(line) for line in whole.decode("utf-8").splitlines()]
