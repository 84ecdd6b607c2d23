"""ExactBackupAndRestore in process: a stopped and resumed fit equals one never stopped."""

import json
import os
import signal
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import keras

from tfkit import signals
from tfkit.backup import PREVIOUS_STATE_FILE, STATE_FILE, ExactBackupAndRestore
from tfkit.callbacks import AtomicModelCheckpoint, HistoryCSV, ScheduledLearningRate
from tfkit.data.order import epoch_batches
from tfkit.diagnostics.gradients import GradientHealth
from tfkit.errors import RunStateError

EPOCHS = 4
SCHEDULE = SimpleNamespace(
    lr_schedule="exponential", warmup_epochs=0.5, lr_decay_epochs=1.0, lr_decay_factor=0.5,
    min_learning_rate=0.0, epochs=EPOCHS,
)  # fmt: skip


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = (x[:, :1] + 0.5 * rng.normal(size=(80, 1)) > 0).astype("float32")
    return x, y


def model():
    keras.backend.clear_session()  # the same layer names in every run, as in a new process
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dropout(0.3),  # its seed generator must resume, not restart
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    net.compile(keras.optimizers.RMSprop(0.05), "binary_crossentropy", metrics=["accuracy"])
    return net


class SignalAt(keras.callbacks.Callback):
    """Sends this process `signum` at the end of step `step` of epoch `epoch`."""

    def __init__(self, epoch, step, signum=signal.SIGTERM):
        super().__init__()
        self.at, self.signum = (epoch, step), signum

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), self.signum)


def train(folder, extra=(), backup_every=0):
    """One process's fit of the tiny model, with the callbacks whose state must resume."""
    x, y = data()
    train_data = epoch_batches((x, y), 16, seed=3)
    remembered = [
        keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=1),
        keras.callbacks.EarlyStopping("loss", patience=2, restore_best_weights=True),
        AtomicModelCheckpoint(str(folder / "best.keras"), monitor="loss", save_best_only=True),
        GradientHealth(str(folder / "gradients.csv"), every=1),  # its rows must resume too
    ]
    net = model()
    backup = ExactBackupAndRestore(
        str(folder / "backup"), train_data.epoch_order, remembered, backup_every=backup_every
    )
    # The LR follows a schedule of the optimizer's step: the resume must continue it.
    schedule = ScheduledLearningRate(SCHEDULE, [(net.optimizer, 0.05)])
    callbacks = [train_data.epoch_order, schedule, *remembered, *extra,
                 HistoryCSV(str(folder / "history.csv")), backup]  # fmt: skip
    signals.install()
    try:
        net.fit(train_data, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return net, backup


def test_a_run_stopped_mid_epoch_resumes_exactly(tmp_path):
    whole, _ = train(tmp_path / "whole")
    stopped = tmp_path / "stopped"
    with pytest.raises(signals.TrainingStopped, match="SIGTERM at epoch 1, step 3") as stop:
        train(stopped, extra=[SignalAt(1, 2)])
    assert stop.value.exit_status == 143
    state = json.loads((stopped / "backup" / STATE_FILE).read_text())
    assert (state["epoch"], state["step"]) == (1, 3)
    assert state["callbacks"][1]["best_epoch"] == 0  # early stopping's state is kept

    resumed, backup = train(stopped)
    assert backup.resumed == [{"epoch": 1, "step": 3}]
    expected, got = pd.read_csv(tmp_path / "whole" / "history.csv"), pd.read_csv(stopped / "history.csv")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)  # the epoch 1 averages too
    assert "grad_norm" in got
    pd.testing.assert_frame_equal(
        pd.read_csv(stopped / "gradients.csv"),
        pd.read_csv(tmp_path / "whole" / "gradients.csv"),
        check_exact=True,
    )
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The best checkpoint is the best epoch of the whole run, not of the resumed part.
    best = keras.models.load_model(stopped / "best.keras")
    np.testing.assert_array_equal(
        best.get_weights()[0], keras.models.load_model(tmp_path / "whole" / "best.keras").get_weights()[0]
    )


def test_backups_every_n_steps_keep_two_consistent_sets_of_files(tmp_path):
    train(tmp_path, backup_every=2)
    files = sorted(os.listdir(tmp_path / "backup"))
    state = json.loads((tmp_path / "backup" / STATE_FILE).read_text())
    previous = json.loads((tmp_path / "backup" / PREVIOUS_STATE_FILE).read_text())
    assert state["finished"] and state["epoch"] == EPOCHS
    assert (previous["epoch"], previous["step"], previous["finished"]) == (EPOCHS, 0, False)
    # The generation before is kept, the older ones removed.
    assert files == sorted(
        [STATE_FILE, PREVIOUS_STATE_FILE, *state["files"].values(), *previous["files"].values()]
    )


def damage(backup, how):
    """Damages the newest backup in `backup` as a disk error or a partial copy would."""
    state = json.loads((backup / STATE_FILE).read_text())
    weights, arrays = backup / state["files"]["weights"], backup / state["files"]["arrays"]
    if how == "weights cut short":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "weights zeroed":
        weights.write_bytes(bytes(weights.stat().st_size))
    elif how == "arrays missing":
        arrays.unlink()
    elif how == "state cut short":
        (backup / STATE_FILE).write_text((backup / STATE_FILE).read_text()[:40])
    elif how == "state not an object":
        (backup / STATE_FILE).write_text("null")


@pytest.mark.parametrize(
    "how",
    ["weights cut short", "weights zeroed", "arrays missing", "state cut short", "state not an object"],
)
def test_a_damaged_backup_is_set_aside_and_the_one_before_resumes_exactly(tmp_path, capsys, how):
    whole, _ = train(tmp_path / "whole", backup_every=2)
    stopped = tmp_path / "stopped"
    with pytest.raises(signals.TrainingStopped, match="SIGTERM at epoch 2, step 1"):
        train(stopped, extra=[SignalAt(2, 0)], backup_every=2)
    previous = json.loads((stopped / "backup" / PREVIOUS_STATE_FILE).read_text())
    assert (previous["epoch"], previous["step"]) == (2, 0)
    damage(stopped / "backup", how)
    capsys.readouterr()

    resumed, backup = train(stopped, backup_every=2)
    printed = capsys.readouterr().out
    assert "the last backup cannot be read (state.json or a file it names: " in printed
    assert printed.index("cannot be read") < printed.index("resumed at epoch 2, step 0")
    assert backup.resumed == [{"epoch": 2, "step": 0}]  # the one before
    aside = [name for name in os.listdir(stopped) if name.startswith("backup-unreadable-")]
    assert len(aside) == 1 and STATE_FILE in os.listdir(stopped / aside[0])  # moved, not deleted
    assert f"set aside in {stopped / aside[0]}; resuming from the one before it" in printed
    for name in ("history.csv", "gradients.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(stopped / name),
                                      pd.read_csv(tmp_path / "whole" / name), check_exact=True)  # fmt: skip
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_when_no_backup_can_be_read_the_run_stops_and_says_so(tmp_path):
    with pytest.raises(signals.TrainingStopped):
        train(tmp_path, extra=[SignalAt(2, 0)], backup_every=2)
    damage(tmp_path / "backup", "arrays missing")
    (tmp_path / "backup" / PREVIOUS_STATE_FILE).write_text("{")
    with pytest.raises(RunStateError, match="cannot be read .*state.previous.json or a file it "
                                            "names: .*Move that "
                                            "folder away"):  # fmt: skip
        train(tmp_path)
    assert not [name for name in os.listdir(tmp_path) if "unreadable" in name]


def test_a_corrupt_backup_is_named_and_left_alone(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "w.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (backup / "a.npz").write_bytes(b"")
    state = {"epoch": 1, "step": 0, "files": {"weights": "w.weights.h5", "arrays": "a.npz"},
             "callbacks": []}  # fmt: skip
    (backup / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(RunStateError, match="cannot be read.*Move that folder away"):
        train(tmp_path)
    assert (backup / "w.weights.h5").read_bytes().endswith(b"truncated")


def test_a_run_killed_after_training_resumes_with_nothing_left_to_train(tmp_path):
    # The backup outlives fit until the run's metrics are written: killed while
    # evaluating or exporting, a re-run must not train again (early stopping has
    # already put the best weights back).
    trained, _ = train(tmp_path)
    rows = len(pd.read_csv(tmp_path / "history.csv"))
    # What the callbacks found stays in the finished backup (the diagnosis reads it).
    state = json.loads((tmp_path / "backup" / STATE_FILE).read_text())
    assert state["finished"] and len(state["callbacks"]) == 4
    again, backup = train(tmp_path)
    assert backup.resumed == [{"epoch": EPOCHS, "step": 0}]
    assert len(json.loads((tmp_path / "backup" / STATE_FILE).read_text())["callbacks"]) == 4
    assert len(pd.read_csv(tmp_path / "history.csv")) == rows
    for a, b in zip(trained.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_backup_of_other_data_is_refused(tmp_path):
    with pytest.raises(signals.TrainingStopped):
        train(tmp_path, extra=[SignalAt(1, 1)])
    state_file = tmp_path / "backup" / STATE_FILE
    state = json.loads(state_file.read_text())
    state["steps_per_epoch"] += 1  # as if the data folder had gained examples since
    state_file.write_text(json.dumps(state))
    with pytest.raises(RunStateError, match="6 steps per epoch and this data gives 5"):
        train(tmp_path)


class KilledAtTrainEnd(keras.callbacks.Callback):
    """A kill after the last epoch's backup and before the final one (fit's end)."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt("killed")


def early_stopped_training(folder, extra=()):
    """A fit whose early stopping (patience 1, a learning rate too large) stops it early."""
    x, y = data()
    train_data = epoch_batches((x, y), 16, seed=3)
    net = model()
    net.optimizer.learning_rate.assign(5.0)  # the loss climbs from the first epoch on
    stopping = keras.callbacks.EarlyStopping("loss", patience=1, restore_best_weights=True)
    backup = ExactBackupAndRestore(str(folder / "backup"), train_data.epoch_order, [stopping])
    callbacks = [train_data.epoch_order, stopping, *extra,
                 HistoryCSV(str(folder / "history.csv")), backup]  # fmt: skip
    net.fit(train_data, epochs=EPOCHS + 4, verbose=0, callbacks=callbacks)
    return net, stopping


def test_an_early_stop_decided_before_a_kill_is_kept_on_resume(tmp_path):
    whole, stopping = early_stopped_training(tmp_path / "whole")
    epochs = len(pd.read_csv(tmp_path / "whole" / "history.csv"))
    assert stopping.stopped_epoch == epochs - 1 < EPOCHS + 3  # it did stop early

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        early_stopped_training(killed, extra=[KilledAtTrainEnd()])
    resumed, _ = early_stopped_training(killed)
    assert len(pd.read_csv(killed / "history.csv")) == epochs  # not one more epoch
    for a, b in zip(whole.get_weights(), resumed.get_weights()):  # the best epoch's
        np.testing.assert_array_equal(a, b)
