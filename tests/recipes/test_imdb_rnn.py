import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, kill_after_epochs, python_env
from recipes import imdb_rnn


@pytest.mark.parametrize("cell", imdb_rnn.CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_builds_to_a_probability(cell, bidirectional):
    config = imdb_rnn.Config(cell=cell, bidirectional=bidirectional, max_len=60)
    model = imdb_rnn.build_model(config)
    assert model.output_shape == (None, 1)
    recurrent = [layer for layer in model.layers if "rnn" in layer.name or "lstm" in layer.name
                 or "gru" in layer.name or "bidirectional" in layer.name]
    assert recurrent, [layer.name for layer in model.layers]


def test_document_simple_rnn_parameter_count():
    model = imdb_rnn.build_model(imdb_rnn.Config())
    # 002 §3.6: Embedding(10000, 32) -> SimpleRNN(32) -> Dense(1, sigmoid)
    assert model.count_params() == 10000 * 32 + (32 * 32 + 32 * 32 + 32) + 33


@pytest.mark.parametrize("cell", ["lstm", "cnn_lstm"])
def test_quick_run(cell, quick_flags, tmp_path):
    imdb_rnn.main(quick_flags + ["--cell", cell, "--bidirectional", "--global-clipnorm", "5"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == "synthetic" and 0 <= metrics["test"]["accuracy"] <= 1
    assert os.listdir(tmp_path / "export") == ["1"]


@pytest.mark.slow
def test_a_killed_run_resumes_at_the_right_epoch(tmp_path):
    epochs = 6
    command = [
        sys.executable, "-m", "recipes.imdb_rnn", "--cell", "simple_rnn", "--data", "synthetic",
        "--max-examples", "512", "--batch-size", "32", "--epochs", str(epochs), "--max-len", "224",
        "--early-stopping-patience", "99", "--run-dir", str(tmp_path / "run"), "--no-export",
        "--no-baseline",
    ]
    history = tmp_path / "run" / "history.csv"
    rows_at_kill = kill_after_epochs(command, history, 2, epochs)

    result = subprocess.run(command, env=python_env(), cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    first_epoch = int(re.search(r"Epoch (\d+)/%d" % epochs, result.stdout).group(1)) - 1
    assert first_epoch in (rows_at_kill - 1, rows_at_kill)  # resumed, not restarted
    assert list(pd.read_csv(history)["epoch"]) == list(range(epochs))
