"""The documents' training know-how as Keras callbacks, and the two Keras lacks.

`standard_callbacks` returns Keras's own EarlyStopping, ReduceLROnPlateau,
TerminateOnNaN, ModelCheckpoint and TensorBoard (`TensorBoard`, without a per-step cost), set up as the documents advise,
plus `EpochStats` (learning rate, epoch seconds, examples per second), `HistoryCSV`,
a CSV log that stays right when a killed run is resumed, and the backup that makes a
resume exact (`tfkit.backup`).
"""

import os
import time

import numpy as np
import pandas as pd
import keras

from tfkit.backup import ExactBackupAndRestore
from tfkit.data.order import balanced_count
from tfkit.diagnostics.gradients import GradientHealth
from tfkit.finetune import fine_tuning
from tfkit.diagnostics.verdict import (
    FirstLossCheck,
    expected_first_loss,
    prior_loss,
    validation_first_loss,
    weights_in_label_order,
)
from tfkit.optim import class_weight_from_labels, scheduled_learning_rate
from tfkit.files import atomic_path, write_text


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
        self._steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._steps = batch + 1  # a batch-begin hook: Keras need not wait for each step

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
        # A resumed epoch runs only the steps after the backup.
        steps_per_epoch = (self.params or {}).get("steps")
        fraction = self._steps / steps_per_epoch if self._steps and steps_per_epoch else 1.0
        examples = self.train_examples * min(1.0, fraction)
        logs["examples_per_second"] = examples / train_seconds


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, without a cost at every step when it writes once an epoch.

    Keras 3.15's `on_train_batch_end` calls `tf.summary.scalar` for each of a batch's
    logs at every step even under `update_freq="epoch"`, when no writer is set to take
    them: nothing is written, but it took 1 ms a step, a fifth of a `text_ngrams` step.
    """

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, None if self.update_freq == "epoch" else logs)


class TimeLimit(keras.callbacks.Callback):
    """`--time-limit`: stops training once `seconds` have passed since `fit` began.

    Checked after every step: the epoch under way ends there, is validated and logged,
    and EarlyStopping (`restore_best_weights`) puts back the best epoch's weights, so
    the run evaluates and exports as one that stopped early. `stopped` says if it fired.
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.stopped = False

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if not self.stopped and time.monotonic() - self._start > self.seconds:
            self.stopped = True
            self.model.stop_training = True
            print(f"\ntime limit: {self.seconds:g} s of training reached; stopping here")


class ScheduledLearningRate(keras.callbacks.Callback):
    """Sets the learning rate before every step from `--lr-schedule` (`scheduled_learning_rate`).

    The step is the optimizer's own count, which a backup restores, so a resumed run
    continues the schedule where it was. Put it before `EpochStats`, which logs `lr`.

    Args:
        config: the run's `TrainConfig`.
        optimizers: (optimizer, base learning rate) pairs; by default the model's
            optimizer at `config.learning_rate` (the GAN passes both of its own).
    """

    def __init__(self, config, optimizers=None):
        super().__init__()
        self.config = config
        self.optimizers = optimizers

    def on_train_begin(self, logs=None):
        self._pairs = self.optimizers or [(self.model.optimizer, self.config.learning_rate)]
        self._steps_per_epoch = self.params["steps"]

    def on_epoch_begin(self, epoch, logs=None):
        self._set()

    def on_train_batch_begin(self, batch, logs=None):
        self._set()

    def _set(self):
        step = int(self._pairs[0][0].iterations.numpy())
        for optimizer, base in self._pairs:
            optimizer.learning_rate = scheduled_learning_rate(
                self.config, step, self._steps_per_epoch, base
            )


def learning_rate_schedule(config, optimizers=None):
    """`[ScheduledLearningRate]` when the config schedules the learning rate, else `[]`."""
    return [ScheduledLearningRate(config, optimizers)] if config.scheduled else []


class InitialBias(keras.callbacks.Callback):
    """Starts the output layer's bias at the log prior of the classes (`--initial-bias auto`).

    A sigmoid output starts at ln(pos/neg), a softmax one at the log of each class's
    share: the first predictions are the class mix and the first loss is the prior's
    entropy, not ln K, so the first epochs are not spent learning the mix (TF's
    imbalanced-data tutorial). The mix is the one trained on: resampled classes are
    balanced, and class weights count too, so with either the bias is 0. A resumed
    run's backup is restored after this, so it keeps the trained bias.
    """

    def __init__(self, class_counts, class_weight=None):
        super().__init__()
        self.class_counts = class_counts
        self.class_weight = class_weight

    def on_train_begin(self, logs=None):
        output = self.model.layers[-1]
        counts = np.array(list(self.class_counts.values()), dtype="float64")
        weights = weights_in_label_order(self.class_weight, len(counts))
        mass = np.maximum(counts * weights, 1e-12)
        shares = mass / mass.sum()
        bias = np.log(shares[1] / shares[0]) if output.units == 1 else np.log(shares)
        output.bias.assign(np.reshape(bias, output.bias.shape).astype(output.bias.dtype))


def initial_bias(config, class_counts, class_weight=None):
    """`[InitialBias]` under `--initial-bias auto`, else `[]`.

    Args:
        config: a `ClassifierConfig`.
        class_counts: {class name: count} of the classes as trained on (`trained_counts`).
        class_weight: `fit`'s class weights, or None.
    """
    return [InitialBias(class_counts, class_weight)] if config.initial_bias == "auto" else []


def trained_counts(class_counts, resample):
    """The class counts one epoch trains on: the split's, or equal ones when resampled."""
    if not resample:
        return class_counts
    per_class = balanced_count([count for count in class_counts.values() if count], resample)
    return {name: per_class if count else 0 for name, count in class_counts.items()}


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that writes through `tfkit.files.atomic_path`.

    A run killed while saving leaves the previous `best.keras` whole (and at most a
    temporary file, which the next save never mistakes for a checkpoint).
    """

    def _save_model(self, epoch, batch, logs):
        if self._should_save_model(epoch, batch, logs, self.filepath):
            with atomic_path(self.filepath) as temporary:
                if self.save_weights_only:
                    self.model.save_weights(temporary, overwrite=True)
                else:
                    self.model.save(temporary, overwrite=True)


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
        write_text(self.path, pd.DataFrame(self._rows).to_csv(index=False))


def standard_callbacks(config, run, train, splits):
    """The callbacks every classifier recipe trains with, in the order they must run.

    Args:
        config: a `ClassifierConfig` (patience, LR factor, class weights).
        run: the `Run` from `start_run`; `best.keras`, `history.csv`, `gradients.csv`,
            `logs/` and `backup/` go into its folder.
        train: the training pipeline from `tfkit.data` (its `EpochOrder` comes first).
        splits: the `Splits` trained on: early stopping and the LR cut watch
            `val_loss` (`loss` when there is no validation split); the class counts
            give the first loss's expected value.

    Returns:
        A list of `keras.callbacks.Callback` for `model.fit(callbacks=...)`.
    """
    monitor = "val_loss" if len(splits.val[1]) else "loss"
    class_weight = class_weight_from_labels(splits.train[1], config.class_weight)
    counts = trained_counts(splits.class_counts()["train"], config.resample)
    # A model starting from the prior (--initial-bias auto) should first score its entropy.
    if config.initial_bias == "auto":
        expected = prior_loss(counts, class_weight)
    else:
        expected = expected_first_loss(counts, class_weight)
    # 002 §1.22: "divide the LR by 2 or 5 when validation stops improving"; a schedule
    # sets the LR itself instead.
    plateau_cut = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor,
        factor=config.reduce_lr_factor,
        patience=config.reduce_lr_patience,
        verbose=1,
    )
    remembered = [
        FirstLossCheck(
            run.checks,
            expected,
            prior_loss(counts, class_weight),
            # Keras's val_loss has no class weights: validation starts unweighted.
            validation_first_loss(
                splits.class_counts()["train"], counts, class_weight, config.initial_bias == "auto"
            ),
        ),
        *([] if config.scheduled else [plateau_cut]),
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=config.early_stopping_patience,
            restore_best_weights=True,
            verbose=1,
        ),
        AtomicModelCheckpoint(
            os.path.join(run.dir, "best.keras"), monitor=monitor, save_best_only=True
        ),
    ]
    remembered += gradient_health(config, run)
    starting_point = fine_tuning(config)
    return [
        train.epoch_order,  # first: the data order of each epoch, and where a resume starts
        # The starting weights, before the backup, which restores a resumed run's own.
        *starting_point,
        *initial_bias(config, counts, class_weight),
        *learning_rate_schedule(config),
        EpochStats(train.epoch_order.num_examples),
        keras.callbacks.TerminateOnNaN(),
        *([TimeLimit(config.time_limit)] if config.time_limit else []),
        *remembered,  # the gradient monitor last: its logs go to history.csv
        HistoryCSV(os.path.join(run.dir, "history.csv")),
        TensorBoard(os.path.join(run.dir, "logs")),
        # Last, so an epoch is backed up only once everything above has seen it.
        backup_and_restore(config, run, train, starting_point + remembered),
    ]


def gradient_health(config, run, watch=None):
    """`[GradientHealth]` writing `gradients.csv` into the run folder; `[]` if turned off."""
    if not config.grad_norm_every:
        return []
    return [
        GradientHealth(
            os.path.join(run.dir, "gradients.csv"),
            every=config.grad_norm_every,
            watch=watch,
            tensorboard_dir=os.path.join(run.dir, "logs", "gradients"),
        )
    ]


def backup_and_restore(config, run, train, callbacks=()):
    """The run's `ExactBackupAndRestore`: written to `run.dir/backup`, resumed from `--run-dir`'s.

    On the chief (or a single process) the two are the same folder; another worker of
    a multi-worker run writes to its temporary folder and resumes from the chief's.
    `callbacks` are those whose state the backup keeps (early stopping and the like).
    """
    return ExactBackupAndRestore(
        os.path.join(run.dir, "backup"),
        train.epoch_order,
        callbacks,
        restore_dir=os.path.join(config.run_dir or run.dir, "backup"),
        backup_every=config.backup_every,
        resumed=run.resumed,
    )


def _scalar(value):
    return float(np.asarray(value).squeeze())
