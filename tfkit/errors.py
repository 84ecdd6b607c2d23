"""The errors tfkit raises for problems a user can fix.

`ValueError` from the config and `UsageError` mean a bad setting (exit status 2 at the
command line); `DataError` and
`RunStateError` mean the data or a run's saved state could not be had or read
(exit status 1). The command line prints either as
one line; anything else is a bug and keeps its traceback.
"""

import os


class UsageError(ValueError):
    """A setting found wrong after the flags parsed (e.g. a search folder it must not resume)."""


class DataError(RuntimeError):
    """The dataset is missing, unreachable or malformed. The message says the way out."""


class RunStateError(RuntimeError):
    """A run's saved state (backup, checkpoint) cannot be used. The message says the way out."""


class WriteFailed(RunStateError):
    """A file could not be written for want of space or permission; nothing half-written."""

    PREFIX = "cannot write "  # how its line begins: `tfkit train` reads it in a candidate's log

    def __init__(self, path, reason, full_disk, reading_too=False):
        folder = os.path.dirname(os.path.abspath(path)) if path else "the output folders"
        if reading_too:  # a permission refused where a file may have been read, not written
            super().__init__(
                f"cannot read or write {path or 'a file'}: {reason}; give yourself the "
                "permission, or choose another folder, then run the same command again"
            )
            return
        fix = (f"free some space on the disk of {folder}" if full_disk else
               f"make {folder} writable or choose another folder")  # fmt: skip
        super().__init__(
            f"{self.PREFIX}{path or 'a file'}: {reason}. Nothing was half-written; {fix}, "
            "then run the same command again (a training run continues from its last backup)"
        )


class RunComplete(Exception):
    """The run folder holds a finished run of the same command: nothing to do (exit 0)."""
