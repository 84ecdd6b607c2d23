"""The errors tfkit raises for problems a user can fix.

`ValueError` from the config and `UsageError` mean a bad setting (exit status 2 at the
command line); `DataError` and
`RunStateError` mean the data or a run's saved state could not be had or read
(exit status 1). The command line prints either as
one line; anything else is a bug and keeps its traceback.
"""


class UsageError(ValueError):
    """A setting found wrong after the flags parsed (e.g. a search folder it must not resume)."""


class DataError(RuntimeError):
    """The dataset is missing, unreachable or malformed. The message says the way out."""


class RunStateError(RuntimeError):
    """A run's saved state (backup, checkpoint) cannot be used. The message says the way out."""


class RunComplete(Exception):
    """The run folder holds a finished run of the same command: nothing to do (exit 0)."""
