"""Training regimes (issue 11): resampling, initial bias, k-fold; the schedules are in test_schedules."""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest

from recipes import imdb_conv1d
from test_provocations import write_reviews
from tfkit.callbacks import InitialBias, trained_counts
from tfkit.data.order import Balance, EpochOrder, balanced_indices
from tfkit.data.splits import Splits, kfold_splits
from tfkit.data.text import text_fit_arguments

LABELS = np.array([0] * 30 + [1] * 3)


def test_oversampling_repeats_the_minority_until_the_classes_are_equal():
    indices = balanced_indices(LABELS, "over", np.random.default_rng(0))
    assert np.bincount(LABELS[indices]).tolist() == [30, 30]
    assert set(indices[LABELS[indices] == 0]) == set(range(30))  # every majority example once
    assert np.bincount(indices[LABELS[indices] == 1]).tolist()[30:] == [10, 10, 10]


def test_undersampling_sees_another_part_of_the_majority_each_epoch():
    order = EpochOrder(len(LABELS), 2, seed=5, balance=Balance(LABELS, "under"))
    epochs = [order.indices(epoch) for epoch in range(3)]
    for indices in epochs:
        assert np.bincount(LABELS[indices]).tolist() == [3, 3]
    assert len({tuple(sorted(indices)) for indices in epochs}) == 3
    assert order.num_examples == 6 and order.steps_per_epoch == 3
    # A function of (seed, epoch), as a resumed run needs.
    again = EpochOrder(len(LABELS), 2, seed=5, balance=Balance(LABELS, "under"))
    assert np.array_equal(again.indices(2), epochs[2])


def test_the_text_pipeline_oversamples_in_balanced_batches():
    config = imdb_conv1d.Config(data="synthetic", batch_size=20, oversample=True)
    ids = np.arange(33 * 4, dtype="int32").reshape(33, 4)
    splits = Splits((ids, LABELS), (ids[:2], LABELS[:2]), (ids[:2], LABELS[:2]), "synthetic")
    train = text_fit_arguments(config, splits)["x"]
    labels = np.concatenate([batch_labels.numpy().ravel() for _, batch_labels in train])
    assert len(labels) == 60 and labels.mean() == 0.5


def test_class_weights_and_resampling_are_refused_together():
    with pytest.raises(ValueError, match="class weights and resampling"):
        imdb_conv1d.Config(class_weight="balanced", oversample=True)
    with pytest.raises(ValueError, match="choose one"):
        imdb_conv1d.Config(oversample=True, undersample=True)


def test_the_initial_bias_is_the_log_prior_of_the_classes_trained_on():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    bias = InitialBias({"neg": 100, "pos": 10})
    bias.set_model(model)
    bias.on_train_begin()
    assert model.layers[-1].bias.numpy() == pytest.approx([np.log(10 / 100)])
    first = model.predict(np.zeros((1, 3)), verbose=0)[0, 0]
    assert first == pytest.approx(10 / 110)
    # Oversampled, the classes trained on are balanced: the bias goes back to 0.
    assert trained_counts({"neg": 100, "pos": 10}, "over") == {"neg": 100, "pos": 100}
    assert trained_counts({"neg": 100, "pos": 10}, "under") == {"neg": 10, "pos": 10}


def test_an_initial_bias_makes_the_first_loss_the_prior_entropy(tmp_path):
    data = write_reviews(tmp_path, 330, 110, positive_share=1 / 11)
    run = tmp_path / "run"
    imdb_conv1d.main(
        ["--data", "dir", "--data-dir", data, "--run-dir", str(run), "--no-export"]
        + ["--epochs", "1", "--batch-size", "32", "--initial-bias", "auto"]
    )
    first = json.loads((run / "metrics.json").read_text())["diagnosis"]["first_loss"]
    assert first["expected"] == pytest.approx(first["prior_loss"])  # 0.305 at 10:1, not ln 2
    assert first["ok"] and first["value"] < 0.45


def test_kfold_splits_are_disjoint_stratified_and_cover_the_training_data():
    ids = np.arange(100)
    labels = np.array([0] * 70 + [1] * 30)
    splits = Splits((ids[:80], labels[:80]), (ids[80:], labels[80:]), (ids[:5], labels[:5]), "x")
    folds = kfold_splits(splits, 3, seed=1)
    validated = np.concatenate([fold.val[0] for fold in folds])
    assert sorted(validated) == list(range(100))  # each example validated exactly once
    for fold in folds:
        assert not set(fold.train[0]) & set(fold.val[0])
        assert len(fold.train[0]) + len(fold.val[0]) == 100
        assert abs(fold.val[1].mean() - 0.3) < 0.02  # the class mix of the whole
        assert fold.test[0] is splits.test[0]
    again = kfold_splits(splits, 3, seed=1)
    assert all(np.array_equal(a.val[0], b.val[0]) for a, b in zip(folds, again))


def test_kfold_trains_each_fold_then_the_final_model_and_resumes_fold_by_fold(tmp_path):
    run = tmp_path / "run"
    command = [
        "--data", "synthetic", "--max-examples", "48", "--epochs", "2", "--batch-size", "16",
        "--run-dir", str(run), "--export-dir", str(tmp_path / "export"), "--kfold", "3",
    ]  # fmt: skip
    imdb_conv1d.main(command)
    table = pd.read_csv(run / "kfold.csv")
    assert table["fold"].tolist() == ["1", "2", "3", "mean", "std"]
    assert (table["train_examples"][:3] + table["val_examples"][:3] == 96).all()
    assert table.loc[3, "val_loss"] == pytest.approx(table["val_loss"][:3].mean())
    metrics = json.loads((run / "metrics.json").read_text())
    mean_best = table.loc[3, "best_epoch"]
    assert metrics["kfold"]["final_epochs"] == round(mean_best) + 1
    assert len(pd.read_csv(run / "history.csv")) <= metrics["kfold"]["final_epochs"]
    assert metrics["train_examples"] == 96 and "accuracy" in metrics["test"]
    assert os.listdir(tmp_path / "export")  # the final model is exported

    # A k-fold stopped in its third fold resumes there: the first two are not retrained.
    finished = (run / "fold-1" / "history.csv").stat().st_mtime_ns
    for path in (run / "fold-3" / "metrics.json", run / "metrics.json"):
        path.unlink()
    imdb_conv1d.main(command)
    assert (run / "fold-1" / "history.csv").stat().st_mtime_ns == finished
    assert pd.read_csv(run / "kfold.csv").equals(table)


def test_kfold_without_a_final_model_records_the_folds_only(tmp_path):
    run = tmp_path / "run"
    imdb_conv1d.main(
        ["--data", "synthetic", "--max-examples", "32", "--epochs", "1", "--batch-size", "16"]
        + ["--run-dir", str(run), "--no-export", "--kfold", "2", "--no-final"]
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["kfold"]["folds"] == 2 and metrics["kfold"]["final_epochs"] is None
    assert "test" not in metrics and not (run / "best.keras").exists()
    assert (run / "fold-2" / "best.keras").exists()
