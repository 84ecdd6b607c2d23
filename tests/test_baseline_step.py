"""The linear baseline is a step of a training run: trained where the run trains, never for a
mode that trains no model of its own (`--lr-find`, `--overfit-batches`, `--tune`)."""

import json

import pytest

from recipes import imdb_conv1d


@pytest.mark.parametrize("mode", [["--lr-find"], ["--overfit-batches", "1"]])
def test_no_baseline_for_a_mode_that_trains_no_model(tmp_path, quick_flags, mode, capsys):
    imdb_conv1d.main(quick_flags + mode + ["--baseline"])
    assert not (tmp_path / "run" / "baseline.json").exists()
    assert "baseline (" not in capsys.readouterr().out


def test_a_training_run_trains_its_baseline_once_and_says_what_kind(tmp_path, quick_flags, capsys):
    imdb_conv1d.main(quick_flags + ["--baseline"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["baseline"]["kind"] == "text" and metrics["baseline"]["test"]
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("baseline (TF-IDF") for line in lines) == 1  # trained once
