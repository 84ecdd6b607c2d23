import json

import pandas as pd
import pytest

from recipes import imdb_conv1d


def test_document_model_shapes():
    config = imdb_conv1d.Config()
    model = imdb_conv1d.build_model(config)
    # The layer table of 002 §2.2.
    shapes = [layer.output.shape for layer in model.layers]
    assert shapes[:5] == [(None, 500, 128), (None, 494, 32), (None, 98, 32), (None, 92, 32), (None, 32)]
    assert model.count_params() == 1280000 + 28704 + 7200 + 33


def test_a_quick_run_writes_the_run_folder_and_an_export(quick_flags, tmp_path):
    imdb_conv1d.main(quick_flags + ["--epochs", "2", "--class-weight", "balanced", "--clipnorm", "1"])
    run = tmp_path / "run"
    assert {"config.json", "history.csv", "metrics.json", "best.keras", "curves.png", "logs"} <= {
        p.name for p in run.iterdir()
    }
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "imdb_conv1d" and config["clipnorm"] == 1.0
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    for column in ("loss", "val_loss", "accuracy", "val_auc", "f1", "precision", "recall",
                   "lr", "epoch_seconds", "examples_per_second"):
        assert column in history
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"] == "synthetic"
    assert set(metrics["test"]) >= {"loss", "accuracy", "auc", "precision", "recall", "f1"}
    assert metrics["train_examples"] == 64 and metrics["test_examples"] == 64
    counts = metrics["class_counts"]
    assert set(counts) == {"train", "val", "test"} and sum(counts["train"].values()) == 64
    assert set(counts["test"]) == {"neg", "pos"} and metrics["resumed"] == []
    assert (tmp_path / "export" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_learns_synthetic_reviews(tmp_path):
    imdb_conv1d.main([
        "--data", "synthetic", "--max-examples", "2000", "--epochs", "4", "--max-len", "224",
        "--learning-rate", "1e-3", "--run-dir", str(tmp_path / "run"), "--no-export", "--no-baseline",
    ])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
