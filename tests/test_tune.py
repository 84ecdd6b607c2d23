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
