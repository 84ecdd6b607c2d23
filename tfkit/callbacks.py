"""The documents' training know-how as Keras callbacks, and the two Keras lacks.

`standard_callbacks` returns Keras's own EarlyStopping, ReduceLROnPlateau,
TerminateOnNaN, ModelCheckpoint, BackupAndRestore and TensorBoard, set up as the
documents advise, plus `EpochStats` (learning rate, epoch seconds, examples per
second) and `HistoryCSV`, a CSV log that stays right when a killed run is resumed.
"""

import json
import os
import time

import numpy as np
import pandas as pd
import tensorflow as tf
import keras

from tfkit.errors import RunStateError
from tfkit.runs import write_atomic


class EpochStats(keras.callbacks.Callback):
    """Adds `lr`, `epoch_seconds` and `examples_per_second` to each epoch's logs.

    `examples_per_second` counts training examples over the training part of the
    epoch only; validation is excluded. Put it before the callbacks that read logs.
    """

    def __init__(self, train_examples):
        super().__init__()
        self.train_examples = train_examples

    def on_epoch_begin(self, epoch, logs=None):
        self._learning_rate = float(np.asarray(self.model.optimizer.learning_rate))
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        # fit() runs validation through evaluate(), which calls this: training is over.
        self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        train_end = self._train_end or time.perf_counter()
        train_seconds = max(train_end - self._epoch_start, 1e-9)
        logs["lr"] = self._learning_rate
        logs["epoch_seconds"] = time.perf_counter() - self._epoch_start
        logs["examples_per_second"] = self.train_examples / train_seconds


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves under a temporary name and renames it into place.

    A run killed while saving then never leaves a half-written `best.keras`.
    """

    def __init__(self, filepath, **kwargs):
        self.final_path = filepath
        super().__init__(filepath[: -len(".keras")] + ".partial.keras", **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if os.path.exists(self.filepath):
            os.replace(self.filepath, self.final_path)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose backup is replaced atomically, and says so when unreadable.

    Keras writes the backup in place, so a SIGKILL while saving leaves a truncated
    HDF5 file that the resumed run cannot open. Here the weights and the epoch
    counter are written under temporary names and renamed into place, weights first:
    a kill between the two renames makes the resumed run repeat one epoch, never skip
    one. (Relies on Keras 3.15's private backup paths; setup.cfg pins Keras 3.15.)

    `restore_dir` (default: `backup_dir`) is where a resumed run reads its backup:
    the other workers of a multi-worker run write their own backups to temporary
    folders but must resume from the chief's, at the same epoch.
    """

    def __init__(self, backup_dir, restore_dir=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.restore_dir = restore_dir or backup_dir

    def on_train_begin(self, logs=None):
        written = self._weights_path, self._training_metadata_path
        self._weights_path, self._training_metadata_path = (
            os.path.join(self.restore_dir, os.path.basename(path)) for path in written
        )
        try:
            super().on_train_begin(logs)
        except (OSError, json.JSONDecodeError, KeyError) as error:
            raise RunStateError(
                f"the backup in {self.restore_dir} cannot be read ({error}). Move that folder "
                "away to restart the run from epoch 0, or use another --run-dir"
            ) from error
        finally:
            self._weights_path, self._training_metadata_path = written
        self._check_workers_agree()

    def _check_workers_agree(self):
        """Fails if the workers of a multi-worker run would resume at different epochs.

        They would then run different numbers of steps and wait for each other forever.
        """
        strategy = self.model.distribute_strategy
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return
        epoch = tf.constant([getattr(self.model, "_initial_epoch", None) or 0])
        epochs = strategy.gather(
            strategy.experimental_distribute_values_from_function(lambda _: epoch), axis=0
        )
        epochs = sorted(set(epochs.numpy().tolist()))
        if len(epochs) > 1:
            raise RunStateError(
                f"the workers would resume at different epochs {epochs}: every worker must "
                f"read the chief's backup in {self.restore_dir}. Put --run-dir on storage that "
                "every host sees"
            )

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        partial_weights = os.path.join(self.backup_dir, ".partial.weights.h5")
        self.model.save_weights(partial_weights, overwrite=True)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        os.replace(partial_weights, self._weights_path)
        write_atomic(self._training_metadata_path, json.dumps(metadata))


class HistoryCSV(keras.callbacks.Callback):
    """Writes `history.csv` (column `epoch` from 0, then every log) after each epoch.

    Unlike `keras.callbacks.CSVLogger`, a resumed run replaces the rows of the epochs
    it runs again, so the file ends with every epoch exactly once. Each write goes to
    a temporary file renamed into place, so a kill never leaves half a file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        self._rows = []
        if os.path.exists(self.path):
            self._rows = pd.read_csv(self.path).to_dict("records")

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        # ReduceLROnPlateau logs `learning_rate` for the *next* epoch; `lr` is this one's.
        row.update(
            {key: _scalar(value) for key, value in (logs or {}).items() if key != "learning_rate"}
        )
        self._rows = [old for old in self._rows if old["epoch"] < epoch] + [row]
        write_atomic(self.path, pd.DataFrame(self._rows).to_csv(index=False))


def standard_callbacks(config, run_dir, train_examples, monitor="val_loss"):
    """The callbacks every recipe trains with, in the order they must run.

    Args:
        config: a `ClassifierConfig` (patience, LR factor).
        run_dir: the run folder; `best.keras`, `history.csv`, `logs/` and `backup/`
            go there.
        train_examples: training examples per epoch, for `examples_per_second`.
        monitor: the validation quantity early stopping and the LR cut watch.

    Returns:
        A list of `keras.callbacks.Callback` for `model.fit(callbacks=...)`.
    """
    return [
        EpochStats(train_examples),
        keras.callbacks.TerminateOnNaN(),
        # 002 §1.22: "divide the LR by 2 or 5 when validation stops improving".
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            verbose=1,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=config.early_stopping_patience,
            restore_best_weights=True,
            verbose=1,
        ),
        AtomicModelCheckpoint(
            os.path.join(run_dir, "best.keras"), monitor=monitor, save_best_only=True
        ),
        HistoryCSV(os.path.join(run_dir, "history.csv")),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        # Last, so an epoch is backed up only once everything above has seen it.
        backup_and_restore(config, run_dir),
    ]


def backup_and_restore(config, run_dir):
    """The run's backup callback: written to `run_dir/backup`, resumed from `--run-dir`'s.

    On the chief (or a single process) the two are the same folder; another worker of
    a multi-worker run writes to its temporary `run_dir` and resumes from the chief's.
    """
    restore_from = os.path.join(config.run_dir or run_dir, "backup")
    return AtomicBackupAndRestore(os.path.join(run_dir, "backup"), restore_dir=restore_from)


def _scalar(value):
    return float(np.asarray(value).squeeze())
