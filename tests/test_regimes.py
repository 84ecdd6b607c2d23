"""Training regimes: resampling, initial bias, k-fold, fine-tuning (schedules: test_schedules)."""

import json
import os
import signal

import keras
import numpy as np
import pandas as pd
import pytest

from recipes import imdb_conv1d
from test_backup import SignalAt, data, model
from test_provocations import write_reviews
from tfkit import signals
from tfkit.backup import ExactBackupAndRestore
from tfkit.callbacks import (
    EpochStats,
    HistoryCSV,
    InitialBias,
    learning_rate_schedule,
    trained_counts,
)
from tfkit.config import ClassifierConfig
from tfkit.data.order import Balance, EpochOrder, balanced_indices, epoch_batches
from tfkit.data.splits import Splits, kfold_splits
from tfkit.data.text import text_fit_arguments
from tfkit.errors import UsageError
from tfkit.finetune import fine_tuning
from tfkit.report import write_report

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
        "--no-baseline", "--run-dir", str(run), "--export-dir", str(tmp_path / "export"), "--kfold", "3",
    ]  # fmt: skip
    imdb_conv1d.main(command)
    table = pd.read_csv(run / "kfold.csv")
    assert table["fold"].tolist() == ["1", "2", "3", "mean", "std"]
    assert (table["train_examples"][:3] + table["val_examples"][:3] == 96).all()
    assert table.loc[3, "val_loss"] == pytest.approx(table["val_loss"][:3].mean())
    metrics = json.loads((run / "metrics.json").read_text())
    mean_best = table.loc[3, "best_epoch"]
    assert metrics["kfold"]["final_epochs"] == int(np.floor(mean_best + 0.5)) + 1
    assert len(pd.read_csv(run / "history.csv")) <= metrics["kfold"]["final_epochs"]
    assert metrics["train_examples"] == 96 and "accuracy" in metrics["test"]
    assert os.listdir(tmp_path / "export")  # the final model is exported
    assert "<h2>Cross-validation</h2>" in open(write_report(str(run))).read()

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
        + ["--run-dir", str(run), "--no-export", "--kfold", "2", "--no-final", "--no-baseline"]
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["kfold"]["folds"] == 2 and metrics["kfold"]["final_epochs"] is None
    assert "test" not in metrics and not (run / "best.keras").exists()
    assert (run / "fold-2" / "best.keras").exists()


def _source_run(tmp_path):
    """A finished Conv1D run to fine-tune from (learnt a little: 3 epochs at 3e-3)."""
    source = tmp_path / "source"
    imdb_conv1d.main(FINE_TUNE_FLAGS + ["--epochs", "3", "--run-dir", str(source)])
    return source


FINE_TUNE_FLAGS = [
    "--data", "synthetic", "--max-examples", "200", "--batch-size", "32", "--no-export",
    "--learning-rate", "3e-3", "--no-baseline",
]  # fmt: skip


def test_fine_tuning_starts_from_the_source_and_keeps_a_frozen_embedding(tmp_path):
    source = _source_run(tmp_path)
    source_best = pd.read_csv(source / "history.csv")["val_loss"].min()
    tuned = tmp_path / "tuned"
    imdb_conv1d.main(
        FINE_TUNE_FLAGS
        + ["--epochs", "2", "--run-dir", str(tuned), "--init-from", str(source)]
        + ["--freeze", "embedding"]
    )
    history = pd.read_csv(tuned / "history.csv")
    # It starts where the source ended, not from scratch (ln 2 = 0.693).
    assert history["val_loss"][0] < source_best + 0.05
    source_model = keras.saving.load_model(source / "best.keras")
    tuned_model = keras.saving.load_model(tuned / "best.keras")
    embedding = [
        layer.get_weights()[0] for layer in (source_model.layers[0], tuned_model.layers[0])
    ]
    assert np.array_equal(*embedding)  # frozen: bit for bit
    conv = [model.layers[1].get_weights()[0] for model in (source_model, tuned_model)]
    assert not np.array_equal(*conv)  # the rest trained
    # The vocabulary came with the model.
    assert (tuned / "vocabulary.txt").read_text() == (source / "vocabulary.txt").read_text()


def test_unfreezing_trains_the_embedding_at_a_tenth_of_the_learning_rate(tmp_path):
    source = _source_run(tmp_path)
    tuned = tmp_path / "tuned"
    imdb_conv1d.main(
        FINE_TUNE_FLAGS
        + ["--epochs", "2", "--run-dir", str(tuned), "--init-from", str(source / "best.keras")]
        + ["--freeze", "embedding", "--unfreeze-after-epochs", "1"]
    )
    assert pd.read_csv(tuned / "history.csv")["lr"].tolist() == pytest.approx([3e-3, 3e-4])
    source_model = keras.saving.load_model(source / "best.keras")
    tuned_model = keras.saving.load_model(tuned / "best.keras")
    assert not np.array_equal(
        source_model.layers[0].get_weights()[0], tuned_model.layers[0].get_weights()[0]
    )


def test_fine_tuning_refuses_another_architecture_and_unknown_layers(tmp_path):
    source = _source_run(tmp_path)
    common = FINE_TUNE_FLAGS + ["--epochs", "1", "--init-from", str(source)]
    with pytest.raises(UsageError, match=r"architecture does not match.*\(7, 128, 16\)"):
        imdb_conv1d.main(common + ["--filters", "16", "--run-dir", str(tmp_path / "a")])
    with pytest.raises(UsageError, match="no such layer.*'embedding'"):
        imdb_conv1d.main(common + ["--freeze", "conv", "--run-dir", str(tmp_path / "b")])
    lone_model = tmp_path / "elsewhere" / "model.keras"
    lone_model.parent.mkdir()
    lone_model.write_bytes((source / "best.keras").read_bytes())
    with pytest.raises(UsageError, match="no vocabulary.txt beside the model"):
        imdb_conv1d.main(
            FINE_TUNE_FLAGS + ["--init-from", str(lone_model), "--run-dir", str(tmp_path / "c")]
        )


def _fine_tune(folder, extra=(), **schedule):
    """The tiny model of test_backup, first layer frozen for 2 epochs, then unfrozen.

    `schedule`: config fields such as `lr_schedule="step"`, for the LR schedule too,
    with the callbacks in the order `standard_callbacks` gives them.
    """
    x, y = data()
    train = epoch_batches((x, y), 16, seed=3)
    net = model()
    config = ClassifierConfig(
        freeze="dense", unfreeze_after_epochs=2, fine_tune_lr_factor=10, learning_rate=0.05,
        epochs=4, **schedule,
    )  # fmt: skip
    fine_tune = fine_tuning(config)
    backup = ExactBackupAndRestore(str(folder / "backup"), train.epoch_order, fine_tune)
    callbacks = [train.epoch_order, *fine_tune, *learning_rate_schedule(config), EpochStats(80)]
    callbacks += extra
    callbacks += [HistoryCSV(str(folder / "history.csv")), backup]
    signals.install()
    try:
        net.fit(train, epochs=4, verbose=0, callbacks=callbacks)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return net


def test_a_fine_tuning_stopped_after_unfreezing_resumes_exactly(tmp_path):
    whole = _fine_tune(tmp_path / "whole")
    history = pd.read_csv(tmp_path / "whole" / "history.csv")
    assert history["lr"].tolist() == pytest.approx([0.05, 0.05, 0.005, 0.005])
    with pytest.raises(signals.TrainingStopped):
        _fine_tune(tmp_path / "stopped", extra=[SignalAt(2, 1)])
    resumed = _fine_tune(tmp_path / "stopped")
    got = pd.read_csv(tmp_path / "stopped" / "history.csv")
    columns = ["loss", "accuracy", "lr"]
    pd.testing.assert_frame_equal(got[columns], history[columns], check_exact=True)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_scheduled_fine_tuning_divides_the_schedule_after_unfreezing_and_resumes_exactly(
    tmp_path,
):
    # The schedule sets the LR before every step: it must divide it itself after the
    # unfreeze, not overwrite FineTune's division.
    schedule = {"lr_schedule": "step", "lr_decay_epochs": 1.0}  # halved every epoch
    whole = _fine_tune(tmp_path / "whole", **schedule)
    history = pd.read_csv(tmp_path / "whole" / "history.csv")
    assert history["lr"].tolist() == pytest.approx([0.05, 0.025, 0.00125, 0.000625])
    assert float(whole.optimizer.learning_rate) == pytest.approx(0.000625)  # its last step's
    with pytest.raises(signals.TrainingStopped):
        _fine_tune(tmp_path / "stopped", extra=[SignalAt(2, 1)], **schedule)
    resumed = _fine_tune(tmp_path / "stopped", **schedule)
    got = pd.read_csv(tmp_path / "stopped" / "history.csv")
    columns = ["loss", "accuracy", "lr"]
    pd.testing.assert_frame_equal(got[columns], history[columns], check_exact=True)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_fine_tuning_search_keeps_the_sources_architecture(tmp_path):
    from tfkit.tune import pinned_to_the_source

    config = imdb_conv1d.Config(init_from=str(tmp_path), max_features=100, max_len=50)
    pinned = pinned_to_the_source(config, imdb_conv1d.search_space, imdb_conv1d.build_model)
    assert pinned.values == {"filters": 32}  # the LR, optimizer, dropout... are searched


def test_under_class_weights_the_prior_is_the_weighted_mix():
    from tfkit.diagnostics.verdict import prior_loss

    counts = {"neg": 100, "pos": 10}
    balanced = {0: 110 / 200, 1: 110 / 20}
    assert prior_loss(counts, balanced) == pytest.approx(np.log(2))  # balanced weights: ln 2
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    bias = InitialBias(counts, balanced)
    bias.set_model(model)
    bias.on_train_begin()
    assert model.layers[-1].bias.numpy() == pytest.approx([0.0], abs=1e-6)
