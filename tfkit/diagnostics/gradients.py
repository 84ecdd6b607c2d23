"""Gradient health: the norm of every layer's gradient at each step, and what it says.

Keras callbacks never see gradients. `GradientHealth` asks the optimizer
(`tfkit.keras_patches.observe_gradients`) to put each variable's squared gradient
norm into a variable inside the compiled step: the gradient of the global batch,
before clipping. After each step the callback reads those few numbers:

- a NaN or Inf gradient stops training at that step, naming its layer;
- every `every` steps a row goes to `gradients.csv` (the global norm and each
  layer's) and to TensorBoard;
- each epoch's logs (so `history.csv`) gain `grad_norm`, `grad_norm_max_layer` and
  `grad_norm_min_layer`: the epoch's mean global norm and its largest and smallest
  mean layer norm.

`verdict()` turns the rows into "ok", "exploding", "vanishing" or "non-finite",
with the documents' remedies (000 §30-33).
"""

import math
import os

import numpy as np
import pandas as pd
import tensorflow as tf
import keras

from tfkit.keras_patches import observe_gradients
from tfkit.files import write_text

# Exploding: an epoch's mean norm this many times the first steps' (orders of magnitude).
EXPLODING_GROWTH = 100.0
# Vanishing (AUTOTRAINER's thresholds): the first layer's norm below this fraction of
# the last layer's, and below VANISHING_NORM.
VANISHING_RATIO = 1e-3
VANISHING_NORM = 1e-4
REFERENCE_ROWS = 5  # the first rows of a run: what "its first steps" means

REMEDIES = {
    "exploding": [
        "clip the gradient: --global-clipnorm 1.0 (000: clipnorm=1.0 or clipvalue=0.5; "
        "002 §1.22: clip an RNN's gradient norm to 5-15)",
        "lower the learning rate (try --lr-find)",
        "use ReLU in hidden layers, and LSTM/GRU instead of SimpleRNN (000 §33)",
        "use fewer layers or a smaller batch; add batch normalisation or L2 (--l2) (000 §33)",
    ],
    "vanishing": [
        "use ReLU instead of sigmoid/tanh in hidden layers (001)",
        "use LSTM/GRU instead of SimpleRNN, or a shorter sequence (--max-len) (002 §3.5)",
        "add batch normalisation; use fewer layers; He initialisation for ReLU (004)",
    ],
    "non-finite": [
        "lower the learning rate (try --lr-find) and clip the gradient: --global-clipnorm 1.0 "
        "(000 §33)",
        "check the data for NaN or infinite values",
    ],
}


class GradientHealth(keras.callbacks.Callback):
    """Records gradient norms during `fit`; writes `gradients.csv`; stops on a NaN gradient.

    Args:
        path: the `gradients.csv` to write (rows of earlier epochs are kept on resume).
        every: write a row every this many steps (NaN is checked at every step).
        watch: {label: (optimizer, model)} to observe; by default the model's own
            optimizer and the model. Labels prefix the layer names (the GAN's
            "discriminator" and "generator").
        tensorboard_dir: also write the rows as TensorBoard scalars there.
    """

    def __init__(self, path, every=10, watch=None, tensorboard_dir=None):
        super().__init__()
        self.path = path
        self.every = max(1, int(every))
        self.watch = watch
        self.tensorboard_dir = tensorboard_dir
        self.rows = []  # this run's rows, earlier epochs included
        self.nonfinite = None  # {"epoch", "step", "layer"} of the first NaN/Inf gradient
        self._epoch = 0
        self._writer = None

    # What a backup keeps (`tfkit.backup`): this epoch's rows, so a resumed run writes
    # the rows and epoch means a never-stopped run writes.
    def backup_state(self):
        return {"epoch": self._epoch, "rows": [row for row in self.rows if row["epoch"] == self._epoch]}

    def restore_state(self, state):
        if "epoch" in state:  # rows of the epochs after it (resumed from an older backup) go
            kept = [row for row in self.rows if row["epoch"] < state["epoch"]]
        else:  # a backup of tfkit before 2026-12-07
            first_step = state["rows"][0]["step"] if state["rows"] else math.inf
            kept = [row for row in self.rows if row["step"] < first_step]
        self.rows = kept + state["rows"]

    def on_train_begin(self, logs=None):
        watch = self.watch or {"": (self.model.optimizer, self.model)}
        if getattr(self, "_watched", None) != watch:  # once per model: fit may run again
            self._watched = watch
            self._groups = [self._observe(label, *pair) for label, pair in watch.items()]
        self.layers = list(dict.fromkeys(name for group in self._groups for name in group[0]))
        self.rows = []
        if os.path.exists(self.path):  # a resume: keep what was written
            self.rows = pd.read_csv(self.path).to_dict("records")
        self._epoch = 0
        if self.tensorboard_dir:
            self._writer = tf.summary.create_file_writer(self.tensorboard_dir)

    def _observe(self, label, optimizer, model):
        """Has `optimizer` record its gradient norms for `model`'s layers; returns the group."""
        named = [
            (f"{label}/{layer.name}" if label else layer.name, variable)
            for layer in model.layers
            for variable in layer.trainable_variables
        ]
        with self.model.distribute_strategy.scope():
            squares = tf.Variable(
                tf.zeros([len(named)]),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        variables = [variable for _, variable in named]
        observe_gradients(optimizer, _recorder(variables, squares, optimizer, self.every))
        return [name for name, _ in named], squares, optimizer

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        # A resumed epoch starts again after its backup: rows after that are redone.
        step = self._groups[0][2].iterations.numpy()
        self.rows = [row for row in self.rows if row["step"] < step]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self._groups[0][2].iterations.numpy()) - 1  # the step just run
        norms = self._layer_norms()
        if self.nonfinite is None and not all(map(math.isfinite, norms.values())):
            layer = next(name for name, norm in norms.items() if not math.isfinite(norm))
            self.nonfinite = {"epoch": self._epoch, "step": step, "layer": layer}
            print(
                f"gradient health: the gradient of layer {layer} is NaN or Inf at epoch "
                f"{self._epoch}, step {step}; training stops. " + "; ".join(REMEDIES["non-finite"])
            )
            self.model.stop_training = True
        if step % self.every == 0 or self.nonfinite and self.nonfinite["step"] == step:
            total = math.sqrt(sum(norm**2 for norm in norms.values()))
            row = {"epoch": self._epoch, "step": step, "grad_norm": total, **norms}
            self.rows.append(row)
            if self._writer:
                with self._writer.as_default(step=step):
                    for name, value in row.items():
                        if name not in ("epoch", "step"):
                            tf.summary.scalar(f"gradients/{name}", value)

    def on_epoch_end(self, epoch, logs=None):
        rows = pd.DataFrame([row for row in self.rows if row["epoch"] == epoch])
        if logs is not None and len(rows):
            layer_means = rows.reindex(columns=self.layers).mean()  # a layer a row lacks is skipped
            logs["grad_norm"] = float(rows["grad_norm"].mean())
            logs["grad_norm_max_layer"] = float(layer_means.max())
            logs["grad_norm_min_layer"] = float(layer_means.min())
        self._write()

    def on_train_end(self, logs=None):
        self._write()
        if self._writer:
            self._writer.flush()

    def _layer_norms(self):
        """{layer: norm of its gradient} at the last step: the root of its variables' sum.

        A layer whose sparse gradient was not measured at this step is left out.
        """
        sums, unmeasured = {}, set()
        for layers, squares, _ in self._groups:
            for layer, square in zip(layers, squares.numpy()):
                if square == -1.0:
                    unmeasured.add(layer)
                sums[layer] = sums.get(layer, 0.0) + float(square)
        return {
            layer: math.sqrt(total) if total >= 0 else math.nan
            for layer, total in sums.items()
            if layer not in unmeasured
        }

    def _write(self):
        if self.rows:
            write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


def _recorder(variables, squares, optimizer, every):
    """The in-graph observer: writes each watched variable's squared gradient norm.

    A dense gradient's norm costs little and is taken every step. A sparse one (an
    embedding's, from an optimizer that does not sum its rows first as tfkit's do: its
    rows may repeat, so it must be summed into the dense gradient first) cost 23% of a
    Conv1D step, so it is taken every `every` steps, and at any step where a dense
    gradient is not finite (to name where a NaN starts).
    """
    positions = {_key(variable): index for index, variable in enumerate(variables)}

    def squared_norm(grad):
        return tf.reduce_sum(tf.square(tf.cast(tf.convert_to_tensor(grad), tf.float32)))

    def record(grads_and_vars):
        dense, sparse = [], []
        for grad, variable in grads_and_vars:
            index = positions.get(_key(variable))
            if grad is not None and index is not None:
                (sparse if isinstance(grad, tf.IndexedSlices) else dense).append((index, grad))
        values = [squared_norm(grad) for _, grad in dense]
        indices = [[index] for index, _ in dense]
        if sparse:
            finite = tf.reduce_all(tf.math.is_finite(tf.stack(values))) if values else True
            due = tf.logical_or(tf.equal(optimizer.iterations % every, 0), tf.logical_not(finite))
            sparse_values = tf.cond(
                due,
                lambda: tf.stack([squared_norm(grad) for _, grad in sparse]),
                lambda: tf.fill([len(sparse)], -1.0),  # -1: not measured at this step
            )
            values += tf.unstack(sparse_values)
            indices += [[index] for index, _ in sparse]
        squares.assign(tf.scatter_nd(indices, tf.stack(values), squares.shape))

    return record


def _key(variable):
    """The same key for a Keras variable and the TensorFlow variable the optimizer sees."""
    return id(variable.value if isinstance(variable, keras.Variable) else variable)


def verdict(rows):
    """What the rows of `gradients.csv` say: (status, detail, remedies).

    status is "ok", "exploding" (an epoch's mean norm `EXPLODING_GROWTH` times the
    first steps'), "vanishing" (the first layer's norm below `VANISHING_RATIO` of the
    last's and below `VANISHING_NORM`, AUTOTRAINER's thresholds) or "non-finite".
    """
    rows = pd.DataFrame(rows)
    if rows.empty:
        return "ok", "no gradient recorded", []
    if not np.isfinite(rows["grad_norm"]).all():
        where = rows[~np.isfinite(rows["grad_norm"])].iloc[0]
        return (
            "non-finite",
            f"NaN/Inf gradient at step {int(where['step'])}",
            REMEDIES["non-finite"],
        )
    reference = float(rows["grad_norm"].head(REFERENCE_ROWS).median())
    by_epoch = rows.groupby("epoch")["grad_norm"].mean()
    if reference > 0 and by_epoch.max() >= EXPLODING_GROWTH * reference:
        epoch = int(by_epoch.idxmax())
        return (
            "exploding",
            f"mean gradient norm {by_epoch.max():.3g} in epoch {epoch}, "
            f"{by_epoch.max() / reference:.0f}x its first steps' {reference:.3g}",
            REMEDIES["exploding"],
        )
    layers = [c for c in rows.columns if c not in ("epoch", "step", "grad_norm")]
    last_epoch = rows[rows["epoch"] == rows["epoch"].max()]
    # Per network (the GAN has two, "discriminator/..." and "generator/..."): the layer
    # farthest from the loss against the nearest.
    networks = {}
    for layer in layers:
        networks.setdefault(layer.split("/")[0] if "/" in layer else "", []).append(layer)
    for network in networks.values():
        first, last = float(last_epoch[network[0]].mean()), float(last_epoch[network[-1]].mean())
        if first < VANISHING_NORM and last > 0 and first / last < VANISHING_RATIO:
            return (
                "vanishing",
                f"first layer {network[0]}'s gradient norm {first:.2g} is {first / last:.1g} of "
                f"the last layer {network[-1]}'s {last:.2g}",
                REMEDIES["vanishing"],
            )
    return (
        "ok",
        f"gradient norm {reference:.3g} at the start, {by_epoch.iloc[-1]:.3g} at the end",
        [],
    )
