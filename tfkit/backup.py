"""Exact resume: a backup that holds everything a run needs to go on as if it never stopped.

Keras's `BackupAndRestore` keeps the weights, the optimizer and the epoch. A run
resumed from that alone trains on other batches (the data order restarts), draws
other dropout masks (the seed generators restart), forgets what early stopping,
the LR cut and the best checkpoint had seen, and restarts an epoch from its first
batch. `ExactBackupAndRestore` also keeps, in `backup/`:

- the position: epoch and step (`EpochOrder` replays the data from there);
- the random state (`model.variables` beyond the weights: the seed generators);
- the state of early stopping, ReduceLROnPlateau and the best checkpoint,
  early stopping's best weights included, and of any callback with
  `backup_state()` / `restore_state(state)` (JSON-able), such as the gradient monitor;
- in the middle of an epoch, the running metrics, so the epoch logs what it would have.

`state.json` is written last and names the files it belongs to, so a kill at any
moment leaves the previous backup or the new one, never a mix. The backup before it is
kept too (`state.previous.json` and its files) until the next one is complete: a
backup that cannot be read (a disk error, a partial copy) is set aside, moved whole
into `backup-unreadable-<time>/` beside `backup/`, and the run resumes from the one
before it.

It also stops a run cleanly: on SIGTERM or SIGINT (`tfkit.signals`) it backs up at
the end of the current step and raises `TrainingStopped`.
"""

import errno
import json
import math
import os
import shutil
import time
import zipfile

import numpy as np
import tensorflow as tf
import keras

from tfkit import signals
from tfkit.errors import RunStateError
from tfkit.files import atomic_path, write_json, write_text

STATE_FILE = "state.json"
PREVIOUS_STATE_FILE = "state.previous.json"  # the generation before, kept as a fallback
SET_ASIDE = "-unreadable-"  # backup-unreadable-<time>/: where a backup not read is moved
# What reading a damaged backup raises: h5py and files (OSError), JSON and Keras
# (ValueError), a state missing a field or of another shape (KeyError, TypeError,
# AttributeError), NumPy's zip (BadZipFile, EOFError).
UNREADABLE = (
    OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile
)
# What each Keras callback keeps in memory between epochs (Keras 3.15), restored on resume.
CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.ModelCheckpoint: ("best",),
}
AUTO_BACKUP_SECONDS = 300


class ExactBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that resumes exactly where the run stopped, and stops on a signal.

    Put it last in the callback list, so each backup follows every other callback's
    epoch end; `epoch_order` (the pipeline's `EpochOrder`) goes first.

    Args:
        backup_dir: where this process writes its backup.
        epoch_order: the training pipeline's `EpochOrder`.
        callbacks: the callbacks whose state is backed up (see `CALLBACK_STATE`), and
            any with `backup_state()` and `restore_state(state)` methods.
        restore_dir: where a resumed run reads its backup (default `backup_dir`); the
            other workers of a multi-worker run read the chief's.
        backup_every: also back up every N steps; 0 backs up every epoch and, within
            an epoch, when `AUTO_BACKUP_SECONDS` of training have passed since the last.
        resumed: a list to which each resume appends `{"epoch": E, "step": S}`.
    """

    def __init__(
        self, backup_dir, epoch_order, callbacks=(), restore_dir=None, backup_every=0, resumed=None
    ):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.epoch_order = epoch_order
        self.tracked = [c for c in callbacks if _state_names(c) or hasattr(c, "backup_state")]
        self.restore_dir = restore_dir or backup_dir
        self.backup_every = backup_every
        self.resumed = [] if resumed is None else resumed
        self._metrics_to_restore = None

    # Restore.
    def on_train_begin(self, logs=None):
        signals.set_training(True)
        self._last_backup_time = time.monotonic()
        self._steps_since_backup = 0
        state = self._restore_newest_readable()
        _check_workers_agree(self.model, state["epoch"] if state else 0, self.restore_dir)

    def _restore_newest_readable(self):
        """Restores the newest backup that can be read and returns its state (None: none).

        A newer one that cannot be read is set aside, saying so, when an older one can.
        """
        newest, previous = (os.path.join(self.restore_dir, name)
                            for name in (STATE_FILE, PREVIOUS_STATE_FILE))  # fmt: skip
        paths = [path for path in (newest, previous) if os.path.exists(path)]
        failures = []
        for path in paths:
            try:
                with open(path) as file:
                    state = json.load(file)
                if not isinstance(state, dict):
                    raise ValueError(f"not a backup's state: {str(state)[:40]}")
                self._restore(state)
            except RunStateError:
                raise  # the data changed: an older backup would not suit it either
            except UNREADABLE as error:
                reason = (str(error) or type(error).__name__).splitlines()[0]
                failures.append(f"{os.path.basename(path)} or a file it names: {reason}")
                continue
            if failures:
                self._set_aside(state, failures)
            elif path == previous:  # a kill after a backup was set aside, or one deleted
                print(f"{newest} is missing; resuming from the backup before it")
            print(f"resumed at epoch {state['epoch']}, step {state['step']} (counted from 0, "
                  "as in history.csv)")  # fmt: skip
            return state
        if failures:
            raise RunStateError(
                f"the backup in {self.restore_dir} cannot be read ({'; '.join(failures)}). Move "
                "that folder away to restart the run from epoch 0, or use another --run-dir"
            )
        return None

    def _set_aside(self, state, failures):
        """Moves what the readable `state` does not name into `backup-unreadable-<time>/`
        beside the backup, kept when a finished run removes its backup (only by the process
        that writes the backup: other workers read the chief's)."""
        kept = {PREVIOUS_STATE_FILE, *state["files"].values()}
        aside = f"{os.path.normpath(self.restore_dir)}{SET_ASIDE}{time.strftime('%Y%m%d-%H%M%S')}"
        if self.restore_dir == self.backup_dir:
            os.makedirs(aside, exist_ok=True)
            for name in os.listdir(self.restore_dir):
                path = os.path.join(self.restore_dir, name)
                if name not in kept and os.path.isfile(path):
                    shutil.move(path, os.path.join(aside, name))
        print(f"the last backup cannot be read ({'; '.join(failures)}); set aside in {aside}; "
              f"resuming from the one before it")

    def _restore(self, state):
        self._metrics_to_restore = None  # what a backup tried before and not read may have set
        for callback in self.tracked:
            if getattr(callback, "restore_best_weights", False):
                callback.best_weights = None
        saved_steps = state.get("steps_per_epoch", self.epoch_order.steps_per_epoch)
        if saved_steps != self.epoch_order.steps_per_epoch:
            raise RunStateError(
                f"the backup in {self.restore_dir} was made with {saved_steps} steps per epoch "
                f"and this data gives {self.epoch_order.steps_per_epoch}: the data has changed "
                "since. Restore it, or use --overwrite or another --run-dir"
            )
        files = {
            name: os.path.join(self.restore_dir, file) for name, file in state["files"].items()
        }
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(files["weights"])
        with np.load(files["arrays"]) as arrays:
            for index, variable in enumerate(random_state_variables(self.model)):
                variable.assign(arrays[f"random_{index}"])
            for callback, saved in zip(self.tracked, state["callbacks"]):
                if hasattr(callback, "restore_state"):
                    callback.restore_state(saved)
                    continue
                for name, value in saved.items():
                    setattr(callback, name, value)
                if getattr(callback, "restore_best_weights", False) and "best_weights" in files:
                    with np.load(files["best_weights"]) as best:
                        callback.best_weights = [best[f"w{i}"] for i in range(len(best.files))]
            if state["step"]:
                # Keras builds compiled metrics in the first step; they are needed now,
                # to take the running sums of the steps before the backup.
                with self.model.distribute_strategy.scope():
                    self.model._symbolic_build(data_batch=self.epoch_order.element_spec)
                self._metrics_to_restore = _load_metric_values(arrays, self.model)
        epoch, step = state["epoch"], state["step"]
        if state.get("finished") or state.get("stop_training"):
            # Nothing left to train. After a stop decided but not yet carried out,
            # early stopping (restored above) puts the best weights back at the end.
            epoch = self.params.get("epochs", epoch)
        self.model._initial_epoch = epoch
        self.epoch_order.epoch, self.epoch_order.first_step = epoch, step
        self.resumed[:] = state.get("resumed", []) + [{"epoch": state["epoch"], "step": step}]

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        if self._metrics_to_restore is not None:  # Keras has just reset them for this epoch
            _assign_metric_values(self.model, self._metrics_to_restore)
            self._metrics_to_restore = None

    # Back up, and stop when asked to: before each step, once the last one is done (a
    # batch-end hook would make Keras wait for every step's logs).
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            return  # the epoch's start: the last backup holds it
        self._steps_since_backup += 1
        step = self.epoch_order.step
        stop_signal, due = self._agree(signals.requested(), self._backup_due())
        if due or stop_signal:
            self._save(self._current_epoch, step)
        if stop_signal:
            self._stop(stop_signal, self._current_epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        # Early stopping (or TerminateOnNaN) may have just decided to stop: that decision
        # is part of the backup, so a run killed before it ends does not train on.
        self._save(epoch + 1, 0, stop_training=bool(self.model.stop_training))
        stop_signal, _ = self._agree(signals.requested(), False)
        if stop_signal and not self.model.stop_training:  # else training ends anyway
            self._stop(stop_signal, epoch + 1, 0)

    def on_train_end(self, logs=None):
        # After early stopping restored the best weights: a run killed while it is
        # evaluated or exported resumes with nothing left to train.
        signals.set_training(False)
        epochs = self.params.get("epochs", 0)
        self._save(epochs, 0, finished=True)
        stop_signal, _ = self._agree(signals.requested(), False)
        if stop_signal:
            self._stop(stop_signal, epochs, 0)

    def _backup_due(self):
        if self.backup_every:
            return self._steps_since_backup >= self.backup_every
        return time.monotonic() - self._last_backup_time >= AUTO_BACKUP_SECONDS

    def _agree(self, stop_signal, due):
        """The largest signal and whether any process wants a backup, across workers."""
        every = _gather_from_workers(self.model, [stop_signal, int(due)])
        if every is None:
            return stop_signal, due
        largest = every.max(axis=0)
        return int(largest[0]), bool(largest[1])

    def _stop(self, stop_signal, epoch, step):
        signals.set_training(False)
        raise signals.TrainingStopped(
            stop_signal,
            f"stopped by {signals.name(stop_signal)} at epoch {epoch}, step {step}, with a "
            f"backup in {self.backup_dir}; re-run the same command to resume from there",
        )

    def _save(self, epoch, step, finished=False, stop_training=False):
        os.makedirs(self.backup_dir, exist_ok=True)
        tag = f"e{epoch}-s{step}{'-end' if finished else ''}-{time.time_ns()}"
        files = {"weights": f"weights-{tag}.weights.h5", "arrays": f"arrays-{tag}.npz"}
        with atomic_path(os.path.join(self.backup_dir, files["weights"])) as path:
            _check_space(self.backup_dir, self.model)
            self.model.save_weights(path)
        arrays = {
            f"random_{i}": keras.ops.convert_to_numpy(v)
            for i, v in enumerate(random_state_variables(self.model))
        }
        if step:
            arrays.update(_metric_values(self.model))
        with atomic_path(os.path.join(self.backup_dir, files["arrays"])) as path:
            np.savez(path, **arrays)
        best_weights = [getattr(c, "best_weights", None) for c in self.tracked]
        best_weights = next((w for w in best_weights if w is not None), None)
        if best_weights is not None and not finished:
            files["best_weights"] = f"best-{tag}.npz"
            with atomic_path(os.path.join(self.backup_dir, files["best_weights"])) as path:
                np.savez(path, **{f"w{i}": w for i, w in enumerate(best_weights)})
        state = {
            "epoch": epoch,
            "step": step,
            "finished": finished,
            "stop_training": stop_training,
            "steps_per_epoch": self.epoch_order.steps_per_epoch,
            "files": files,
            # Kept when finished too: a run killed while it is evaluated or exported keeps
            # what the callbacks found (the first-loss check) for its diagnosis.
            "callbacks": [_callback_state(c) for c in self.tracked],
            "resumed": self.resumed,
        }
        # The last backup becomes the previous one, then the new one is committed; a kill
        # between the two leaves both generations the same, each whole.
        newest = os.path.join(self.backup_dir, STATE_FILE)
        previous = os.path.join(self.backup_dir, PREVIOUS_STATE_FILE)
        if os.path.exists(newest):
            with open(newest) as file:
                write_text(previous, file.read())
        write_json(newest, state)  # the commit point
        kept = {STATE_FILE, PREVIOUS_STATE_FILE, *files.values(), *_files_named(previous)}
        for name in os.listdir(self.backup_dir):
            path = os.path.join(self.backup_dir, name)
            if name not in kept and os.path.isfile(path):
                os.remove(path)
        self._last_backup_time = time.monotonic()
        self._steps_since_backup = 0


def _check_space(folder, model):
    """Raises ENOSPC before h5py writes the weights to a disk without room for them: h5py,
    failing mid-write, leaves objects that crash the interpreter as it exits. Room for the
    weights three times over (with an optimizer's two slots each) and a megabyte."""
    weights = sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in model.weights)
    if shutil.disk_usage(folder).free < 3 * weights + 2**20:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), folder)


def _files_named(state_path):
    """The files a backup's state file names ([] if it has none or cannot be read)."""
    try:
        with open(state_path) as file:
            return list(json.load(file)["files"].values())
    except (OSError, ValueError, KeyError, TypeError):
        return []


def random_state_variables(model):
    """The model's random state: `model.variables` that are not weights (seed generators)."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _state_names(callback):
    for kind, names in CALLBACK_STATE.items():
        if isinstance(callback, kind):
            return names
    return ()


def _callback_state(callback):
    if hasattr(callback, "backup_state"):
        return callback.backup_state()
    state = {}
    for name in _state_names(callback):
        value = getattr(callback, name, None)
        state[name] = None if value is None else np.asarray(value).item()
    return state


def _local_metric_variables(model):
    """Each metric variable's per-replica parts, on this process (one each on one device)."""
    strategy = model.distribute_strategy
    return [strategy.experimental_local_results(v.value) for v in model.metrics_variables]


def _metric_values(model):
    """The running metrics: each replica's part, or across workers their aggregate."""
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Every worker resumes from the chief's backup, which cannot hold the other
        # workers' parts: keep the sum over all replicas (a collective read).
        return {
            f"metric_{i}_total": keras.ops.convert_to_numpy(variable)
            for i, variable in enumerate(model.metrics_variables)
        }
    values = {}
    for i, parts in enumerate(_local_metric_variables(model)):
        for r, part in enumerate(parts):
            values[f"metric_{i}_{r}"] = keras.ops.convert_to_numpy(part)
    return values


def _load_metric_values(arrays, model):
    """Per-replica values to assign; across workers the chief's first replica holds the sum."""
    strategy = model.distribute_strategy
    values = []
    for i, parts in enumerate(_local_metric_variables(model)):
        if f"metric_{i}_total" in arrays:
            total = arrays[f"metric_{i}_total"]
            first = total if strategy.extended.should_checkpoint else np.zeros_like(total)
            values.append([first] + [np.zeros_like(total)] * (len(parts) - 1))
        else:
            values.append([arrays[f"metric_{i}_{r}"] for r in range(len(parts))])
    return values


def _assign_metric_values(model, values):
    for parts, saved in zip(_local_metric_variables(model), values):
        for part, value in zip(parts, saved):
            part.assign(value)


def _check_workers_agree(model, epoch, restore_dir):
    """Fails if the workers of a multi-worker run would resume at different epochs.

    They would then run different numbers of steps and wait for each other forever.
    """
    every = _gather_from_workers(model, [epoch])
    epochs = [] if every is None else sorted(set(every[:, 0].tolist()))
    if len(epochs) > 1:
        raise RunStateError(
            f"the workers would resume at different epochs {epochs}: every worker must "
            f"read the chief's backup in {restore_dir}. Put --run-dir on storage that "
            "every host sees"
        )


def _gather_from_workers(model, row):
    """Every replica's copy of `row` as a numpy array (one row each), or None off multi-worker.

    A collective: every worker must call it at the same point.
    """
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    mine = tf.constant([row])
    every = strategy.gather(
        strategy.experimental_distribute_values_from_function(lambda _: mine), axis=0
    )
    return every.numpy()
