"""Run folders belong to the config that made them, and to one process at a time."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, python_env
from recipes import imdb_conv1d
from tfkit.cli import run
from tfkit.errors import DataError
from tfkit.runs import LOCK_FILE, training_differences

HOLD_LOCK = """
import sys, time
from tfkit.runs import FolderLock
FolderLock(sys.argv[1], *sys.argv[2:]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def exit_status(argv):
    with pytest.raises(SystemExit) as exit_info:
        run(imdb_conv1d.main, argv)
    return exit_info.value.code


def folder_state(folder):
    """{path: (modification time, content hash)} of every file under `folder`."""
    state = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                state[path] = (os.path.getmtime(path), hashlib.md5(file.read()).hexdigest())
    return state


@pytest.fixture
def finished_run(quick_flags, tmp_path):
    imdb_conv1d.main(quick_flags)
    return tmp_path / "run"


def test_the_same_command_on_a_finished_run_says_so_and_changes_nothing(
    finished_run, quick_flags, capsys
):
    before = folder_state(finished_run)
    assert LOCK_FILE not in os.listdir(finished_run)  # let go at the end
    capsys.readouterr()
    assert exit_status(quick_flags) == 0
    out = capsys.readouterr().out
    assert "complete" in out and str(finished_run / "metrics.json") in out
    assert folder_state(finished_run) == before
    # Flags that do not change training may differ.
    assert exit_status(quick_flags + ["--no-export", "--backup-every", "3"]) == 0


def test_other_training_flags_are_refused_naming_them(finished_run, quick_flags, capsys):
    before = folder_state(finished_run)
    assert exit_status(quick_flags + ["--max-examples", "40", "--dropout", "0.2"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert "--max-examples 40 (the run's: 64)" in error and "--dropout 0.2 (the run's: 0.0)" in error
    assert "--overwrite" in error
    assert exit_status(quick_flags + ["--epochs", "3"]) == 2  # more epochs: refused too
    assert folder_state(finished_run) == before


def test_overwrite_trains_afresh_in_the_folder(finished_run, quick_flags):
    (finished_run / "notes.txt").write_text("old")
    imdb_conv1d.main(quick_flags + ["--overwrite", "--epochs", "2"])
    assert not (finished_run / "notes.txt").exists()
    assert json.loads((finished_run / "config.json").read_text())["epochs"] == 2
    assert list(pd.read_csv(finished_run / "history.csv")["epoch"]) == [0, 1]


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, quick_flags, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("mine")
    assert exit_status(quick_flags) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert os.listdir(tmp_path / "run") == ["thesis.tex"]


def hold_lock(folder, *name):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), *name],
        env=python_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_folder_in_use_is_refused_at_once_naming_the_process(tmp_path, quick_flags, capsys):
    holder = hold_lock(tmp_path / "run")
    try:
        start = time.perf_counter()
        assert exit_status(quick_flags) == 2
        assert time.perf_counter() - start < 10
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert os.listdir(tmp_path / "run") == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # Killed, it leaves its lock file behind: stale, and taken over.
    assert (tmp_path / "run" / LOCK_FILE).read_text().startswith(str(holder.pid))
    imdb_conv1d.main(quick_flags)
    assert (tmp_path / "run" / "metrics.json").exists()


def test_a_search_folder_in_use_is_refused(tmp_path, quick_flags, capsys):
    holder = hold_lock(tmp_path / "search")
    try:
        flags = quick_flags + ["--tune", "--max-trials", "1", "--run-dir", str(tmp_path / "search")]
        assert exit_status(flags) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_only_training_flags_count_as_differences():
    saved = {"recipe": "r", "epochs": 3, "run_dir": "a", "strategy": "auto", "seed": 1}
    now = {"recipe": "r", "epochs": 3, "run_dir": "b", "strategy": "mirrored", "seed": 2}
    assert training_differences(saved, now) == {"seed": (1, 2)}


def test_a_search_with_other_training_flags_is_refused(tmp_path, quick_flags, capsys):
    flags = quick_flags + ["--tune", "--max-trials", "1", "--run-dir", str(tmp_path / "search")]
    imdb_conv1d.main(flags)
    before = folder_state(tmp_path / "search")
    assert exit_status(flags + ["--max-examples", "32"]) == 2
    assert "holds a search made with other training flags: --max-examples 32" in capsys.readouterr().err
    assert folder_state(tmp_path / "search") == before


@pytest.mark.slow
def test_a_signal_outside_training_stops_at_once_and_lets_go_of_the_folder(tmp_path):
    import signal

    command = [sys.executable, "-m", "recipes.imdb_conv1d", "--data", "synthetic",
               "--run-dir", str(tmp_path / "run"), "--no-export"]  # fmt: skip
    process = subprocess.Popen(command, env=python_env(), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in process.stdout:  # generating 25,000 reviews takes seconds
        if "run folder" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "stopped by SIGTERM outside training" in err.strip().splitlines()[-1]
    assert LOCK_FILE not in os.listdir(tmp_path / "run")


def test_paths_compare_as_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    rows = [f"{'fine good great' if i % 2 else 'dull bad awful'} film {i},{i % 2}" for i in range(60)]
    (tmp_path / "d" / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    flags = ["--data", "csv", "--epochs", "1", "--batch-size", "16", "--run-dir", "run",
             "--no-export", "--no-baseline"]  # fmt: skip
    imdb_conv1d.main(flags + ["--data-dir", "d"])
    assert "baseline" not in json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert not (tmp_path / "run" / "baseline.json").exists()
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["data_dir"]
    assert recorded == str(tmp_path / "d")  # absolute, so a run elsewhere compares right
    before = folder_state(tmp_path / "run")
    capsys.readouterr()
    for spelling in ("./d", str(tmp_path / "d"), "link", "d/"):
        assert exit_status(flags + ["--data-dir", spelling]) == 0, spelling
        assert "complete" in capsys.readouterr().out
    assert folder_state(tmp_path / "run") == before


def test_a_run_dir_that_cannot_be_written_is_one_line(tmp_path, quick_flags, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert exit_status(quick_flags + ["--run-dir", str(tmp_path / "file" / "run")]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "cannot be written" in error and "Traceback" not in error


def test_overwrite_never_empties_another_recipes_run_or_a_search(
    finished_run, quick_flags, tmp_path, capsys
):
    from recipes import imdb_rnn

    before = folder_state(finished_run)
    with pytest.raises(SystemExit) as exit_info:
        run(imdb_rnn.main, quick_flags + ["--overwrite"])
    assert exit_info.value.code == 2
    assert "holds a run of imdb_conv1d, not a run of imdb_rnn" in capsys.readouterr().err
    assert exit_status(quick_flags + ["--overwrite", "--tune"]) == 2  # a search onto a run
    assert "not a search of imdb_conv1d" in capsys.readouterr().err
    assert folder_state(finished_run) == before


@pytest.mark.slow
def test_tune_overwrite_rewrites_config_so_the_next_resume_works(tmp_path, quick_flags, capsys):
    flags = quick_flags + ["--tune", "--max-trials", "1", "--run-dir", str(tmp_path / "search")]
    imdb_conv1d.main(flags)
    imdb_conv1d.main(flags + ["--dropout", "0.2", "--overwrite"])
    assert json.loads((tmp_path / "search" / "config.json").read_text())["dropout"] == 0.2
    imdb_conv1d.main(flags + ["--dropout", "0.2"])  # resumes: not refused


def test_a_model_safe_mode_refuses_is_one_line(tmp_path):
    import keras

    from tfkit.errors import RunStateError
    from tfkit.finetune import copy_weights_from

    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(RunStateError, match=r"--init-from .*lambda.keras cannot be loaded: .*Lambda"):
        copy_weights_from(model, str(tmp_path / "lambda.keras"))


def test_a_resumed_run_removes_what_a_killed_writer_left(finished_run, quick_flags):
    (finished_run / "metrics.json").unlink()  # as if killed after training, before the end
    (finished_run / ".tmp-1a2b3c4d-best.keras").write_bytes(b"PK half a model")
    imdb_conv1d.main(quick_flags)
    assert not [name for name in os.listdir(finished_run) if name.startswith(".tmp-")]
    assert (finished_run / "metrics.json").exists()


def test_a_corrupt_config_json_is_one_line(tmp_path, quick_flags, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    assert exit_status(quick_flags + ["--overwrite"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "config.json cannot be read" in error
    assert (tmp_path / "run" / "config.json").read_text() == "{not json"


def test_an_export_dir_that_cannot_be_written_is_one_line(tmp_path, quick_flags, capsys):
    (tmp_path / "afile").write_text("")
    assert exit_status(quick_flags + ["--export-dir", str(tmp_path / "afile")]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--export-dir" in error and "cannot be written" in error


def test_a_command_that_failed_before_training_leaves_the_folder_usable(tmp_path, quick_flags,
                                                                        capsys):  # fmt: skip
    # A table that is not there fails once the folder is claimed; the corrected command
    # must not be refused for "other training flags".
    missing = ["--data", "csv", "--data-dir", str(tmp_path / "no-such.csv")]
    with pytest.raises(DataError):  # exit 1 (cli.run leaves by os._exit: not in a test)
        imdb_conv1d.main(quick_flags + missing + ["--no-baseline"])
    assert (tmp_path / "run" / "config.json").exists()
    imdb_conv1d.main(quick_flags + ["--no-baseline"])
    assert "never started training" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == "synthetic" and (tmp_path / "run" / "metrics.json").exists()
    # A run that did train keeps its protection.
    assert exit_status(quick_flags + ["--no-baseline", "--epochs", "2"]) == 2
