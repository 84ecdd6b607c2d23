"""A full disk, a quota, a folder not writable: one line, exit 1, nothing half-written, and
the same command continues once the cause is gone.

The disk fills up by an `OSError(ENOSPC)` raised from the writer (`tfkit.files`), as a
full file system raises it.
"""

import errno
import os

import pandas as pd
import pytest

from recipes import text_ngrams
from test_predict import run_cli, topic_texts
from tfkit import cli, files
from tfkit.errors import RunStateError, WriteFailed
from tfkit.train.candidates import Outcome
from tfkit.train.command import _record
from tfkit.train.journal import Journal


def refuse_writes(monkeypatch, number, when=lambda path: True):
    """From now on, `tfkit.files` fails to flush any file `when(path)` accepts with `number`."""
    flush = files._sync

    def full(path):
        if when(path):
            raise OSError(number, os.strerror(number))
        flush(path)

    monkeypatch.setattr(files, "_sync", full)


def leftovers(folder):
    return [name for _, _, names in os.walk(folder) for name in names if name.startswith(".tmp-")]


def test_a_run_whose_disk_fills_up_stops_in_one_line_then_continues(
    tmp_path, quick_flags, monkeypatch, capsys
):
    flags = [*quick_flags, "--epochs", "3"]
    backups = []

    def second_backup(path):  # the first epoch's backup is written, the second's is not
        if f"{os.sep}backup{os.sep}" in path and "-weights-e" in path:  # its temporary name
            backups.append(path)
        return len(backups) > 1

    refuse_writes(monkeypatch, errno.ENOSPC, second_backup)
    with pytest.raises(SystemExit) as exit:
        cli.run(text_ngrams.main, flags)
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot write {tmp_path / 'run' / 'backup'}")
    assert "No space left on device. Nothing was half-written; free some space" in line
    assert "run the same command again" in line
    assert leftovers(tmp_path / "run") == []

    monkeypatch.undo()  # space freed
    cli.run(text_ngrams.main, flags)
    assert "resumed at epoch 1, step 0" in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [0, 1, 2]
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("number", [errno.EACCES, errno.EROFS, errno.EDQUOT])
def test_predict_and_report_cannot_write_is_one_line_and_exit_1(
    tmp_path, quick_flags, monkeypatch, capsys, number
):
    table = tmp_path / "texts.csv"
    topic_texts(6, seed=0).to_csv(table, index=False)
    cli.run(text_ngrams.main, [*quick_flags, "--data", "csv", "--data-dir", str(table)])
    capsys.readouterr()
    refuse_writes(monkeypatch, number)
    output = tmp_path / "labels.csv"
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(table),
                             "--output", str(output)], capsys)  # fmt: skip
    assert code == 1 and not output.exists() and leftovers(tmp_path) == []
    assert printed.err.strip() == f"python -m tfkit: error: {WriteFailed(str(output), os.strerror(number), number == errno.EDQUOT)}"
    code, printed = run_cli(["report", str(tmp_path / "run")], capsys)
    assert code == 1 and "cannot write" in printed.err and len(printed.err.splitlines()) == 1


def test_an_export_that_cannot_be_written_leaves_no_version(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    from tfkit.export import export_for_serving

    def full(self, folder, verbose=True):  # TensorFlow's writer says so only in words
        raise tf.errors.ResourceExhaustedError(None, None, f"{folder}: No space left on device")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", full)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(WriteFailed, match="cannot write .*export: No space left on device"):
        export_for_serving(str(tmp_path / "export"), model, [tf.TensorSpec([None, 2])], [model])
    assert os.listdir(tmp_path / "export") == []


def test_tfkit_train_stops_on_a_candidates_full_disk_and_retries_it_next_time(tmp_path):
    journal = Journal(str(tmp_path))
    journal.write("start", candidate="ngrams-16", spent_seconds=0.0)
    reason = ("exit status 1: error: cannot write runs/x/backup/weights.h5: No space left on "
              "device. Nothing was half-written; ...")  # fmt: skip
    with pytest.raises(RunStateError, match="^ngrams-16: cannot write runs/x/backup"):
        _record(journal, "ngrams-16", Outcome("failed", reason), str(tmp_path))
    assert journal.outcome("ngrams-16") is None  # not a failure of the candidate: tried again


def test_a_permission_refused_outside_a_write_is_not_called_a_full_disk():
    refused = files.write_failure(PermissionError(errno.EACCES, "Permission denied", "run/x.csv"))
    assert str(refused).startswith("cannot read or write run/x.csv: Permission denied; give ")
    read_only = files.write_failure(OSError(errno.EROFS, os.strerror(errno.EROFS), "run/x.csv"))
    assert str(read_only).startswith("cannot write run/x.csv: Read-only file system. Nothing")
    assert files.write_failure(FileNotFoundError(errno.ENOENT, "No such file")) is None
