import json
import os

import keras_tuner
import pandas as pd
import pytest

from recipes import imdb_conv1d
from tfkit.cli import run


def search_flags(folder, *more):
    return [
        "--tune", "--data", "synthetic", "--max-examples", "32", "--epochs", "1",
        "--run-dir", str(folder), *more,
    ]  # fmt: skip


def exit_status(argv):
    with pytest.raises(SystemExit) as exit_info:
        run(imdb_conv1d.main, argv)
    return exit_info.value.code


def folder_state(folder):
    return {
        os.path.join(root, name): os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
    }


def test_search_writes_the_table_and_best_then_resumes(tmp_path):
    imdb_conv1d.main(search_flags(tmp_path, "--max-trials", "2"))
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"COMPLETED"}
    for column in ("trial_id", "learning_rate", "batch_size", "optimizer", "dropout", "l2",
                   "filters", "val_loss", "epochs", "best_epoch", "seconds"):
        assert column in trials
    assert trials["val_loss"].is_monotonic_increasing  # ranked, best first
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["objective"] == "val_loss" and best["score"] == trials["val_loss"].iloc[0]
    record = json.loads((tmp_path / "search.json").read_text())
    assert record["keras_tuner"] == keras_tuner.__version__ and record["tuner"] == "random"

    # Re-running with a larger budget runs only the new trial.
    imdb_conv1d.main(search_flags(tmp_path, "--max-trials", "3"))
    resumed = pd.read_csv(tmp_path / "trials.csv").set_index("trial_id")
    assert len(resumed) == 3
    for _, row in trials.iterrows():
        assert resumed.loc[row["trial_id"], "seconds"] == row["seconds"]  # not run again


def test_a_search_of_another_kind_or_version_is_not_resumed(tmp_path):
    imdb_conv1d.main(search_flags(tmp_path, "--max-trials", "1"))
    before = folder_state(tmp_path)
    assert exit_status(search_flags(tmp_path, "--tuner", "bayesian")) == 2
    record = json.loads((tmp_path / "search.json").read_text())
    record["keras_tuner"] = "1.0.0"
    (tmp_path / "search.json").write_text(json.dumps(record))
    assert exit_status(search_flags(tmp_path, "--max-trials", "1")) == 2
    after = folder_state(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith("search.json")} == {
        k: v for k, v in before.items() if not k.endswith("search.json")
    }


def test_grid_search_resume_is_refused_in_one_line(tmp_path, capsys):
    imdb_conv1d.main(search_flags(tmp_path, "--tuner", "grid", "--max-trials", "1"))
    before = folder_state(tmp_path)
    assert exit_status(search_flags(tmp_path, "--tuner", "grid", "--max-trials", "2")) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "keras-tuner#1055" in error and "--overwrite" in error
    assert folder_state(tmp_path) == before
    # --overwrite starts afresh.
    imdb_conv1d.main(search_flags(tmp_path, "--tuner", "grid", "--max-trials", "2", "--overwrite"))
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--max-trials", "0"], "max_trials must be >= 1"),
        (["--objective", "val_sharpness"], "objective must be one this model logs"),
        (["--tuner", "annealing"], "invalid choice"),
    ],
)
def test_bad_search_settings_exit_2(tmp_path, capsys, flags, words):
    with pytest.raises(SystemExit) as exit_info:
        imdb_conv1d.main(search_flags(tmp_path, *flags))
    assert exit_info.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "search").exists()


def test_hyperband_spends_epochs_and_maximises_auc(tmp_path):
    imdb_conv1d.main(search_flags(tmp_path, "--tuner", "hyperband", "--epochs", "2",
                                  "--objective", "val_auc"))
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) >= 2 and trials["val_auc"].is_monotonic_decreasing
    assert json.loads((tmp_path / "best.json").read_text())["objective"] == "val_auc"


def test_report_ranks_and_plots_and_the_best_retrains_to_an_export(tmp_path, capsys):
    from tfkit.__main__ import main as tfkit_main

    search_dir = tmp_path / "search"
    imdb_conv1d.main(search_flags(search_dir, "--max-trials", "2", "--epochs", "2"))
    capsys.readouterr()  # the search's own log
    tfkit_main(["tune-report", str(search_dir)])
    out = capsys.readouterr().out
    best = json.loads((search_dir / "best.json").read_text())
    assert out.splitlines()[1].split()[0] == best["trial_id"]  # best first
    assert (search_dir / "objective.png").stat().st_size > 1000

    imdb_conv1d.main([
        "--retrain-best", str(search_dir), "--data", "synthetic", "--max-examples", "32",
        "--run-dir", str(tmp_path / "final"), "--export-dir", str(tmp_path / "export"),
    ])  # fmt: skip
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["epochs"] == best["best_epoch"] + 1
    for name, value in best["hyperparameters"].items():
        assert config[name] == value
    metrics = json.loads((tmp_path / "final" / "metrics.json").read_text())
    assert metrics["train_examples"] == 64 and metrics["val_examples"] == 0  # validation folded in
    assert (tmp_path / "export" / "1" / "saved_model.pb").exists()


def test_retrain_best_takes_only_the_search_space_from_a_hyperband_trial(tmp_path):
    from tfkit.tune import best_config

    # What Hyperband's best trial holds: the search space, then its own bookkeeping.
    hp = keras_tuner.HyperParameters()
    imdb_conv1d.search_space(hp)
    for name, value in [("tuner/epochs", 3), ("tuner/initial_epoch", 1), ("tuner/bracket", 1),
                        ("tuner/round", 1), ("tuner/trial_id", "0002")]:  # fmt: skip
        hp.Fixed(name, value)
    (tmp_path / "search.json").write_text(json.dumps({"recipe": "imdb_conv1d"}))
    best = {"trial_id": "0004", "objective": "val_loss", "score": 0.4, "best_epoch": 2,
            "hyperparameters": hp.values}  # fmt: skip
    (tmp_path / "best.json").write_text(json.dumps(best))
    config = imdb_conv1d.Config(retrain_best=str(tmp_path), data="synthetic")
    retrained = best_config("imdb_conv1d", config)
    assert retrained.epochs == 3
    for name in imdb_conv1d.search_space(keras_tuner.HyperParameters()):
        assert getattr(retrained, name) == hp.values[name]


def test_retrain_best_refuses_another_recipes_search(tmp_path):
    from recipes import imdb_rnn
    from tfkit.errors import UsageError

    imdb_conv1d.main(search_flags(tmp_path, "--max-trials", "1"))
    with pytest.raises(UsageError, match="is a search of imdb_conv1d, not imdb_rnn"):
        imdb_rnn.main(["--retrain-best", str(tmp_path), "--data", "synthetic", "--max-examples", "32"])


@pytest.mark.slow
def test_distributed_search_with_a_chief_and_two_workers(tmp_path):
    import socket
    import subprocess
    import sys

    from conftest import ROOT, python_env

    with socket.socket() as probe:  # a free port; the oracle binds 127.0.0.1 only
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "recipes.imdb_conv1d",
               *search_flags(tmp_path, "--max-trials", "4")]  # fmt: skip
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = python_env()
        env.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=str(port))  # fmt: skip
        processes[tuner_id] = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    outputs = {name: process.communicate(timeout=300)[0] for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, (name, outputs[name][-2000:])
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"COMPLETED"}
    logs = sorted(p.name for p in (tmp_path / "search").glob("trial_log_*.json"))
    assert logs == ["trial_log_tuner0.json", "trial_log_tuner1.json"]  # both workers trained
    assert trials["seconds"].notna().all()


@pytest.mark.slow
def test_a_killed_search_finishes_its_trials_when_run_again(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, python_env

    command = [sys.executable, "-m", "recipes.imdb_conv1d",
               *search_flags(tmp_path, "--max-trials", "3", "--epochs", "3")]  # fmt: skip
    process = subprocess.Popen(command, env=python_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    table = tmp_path / "trials.csv"
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        if table.exists() and len(pd.read_csv(table)) >= 1:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # into the next trial
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = pd.read_csv(table)
    assert 1 <= len(finished_before) < 3, "the search ended before it could be killed"

    result = subprocess.run(command, env=python_env(), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    trials = pd.read_csv(table)
    assert (trials["status"] == "COMPLETED").sum() == 3
    kept = trials.set_index("trial_id").loc[finished_before["trial_id"], "seconds"]
    assert list(kept) == list(finished_before["seconds"])  # finished trials were not rerun
