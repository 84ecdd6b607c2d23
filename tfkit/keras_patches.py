"""The places tfkit changes private Keras code, for the Keras versions it was tested on.

1. `fit`, `evaluate` and `predict` under `MultiWorkerMirroredStrategy` fail in Keras
   3.15 (keras#20585, tensorflow#72388) with "Attempt to convert a value
   (PerReplica...)". Two bugs in `keras/src/backend/tensorflow/trainer.py`:
   `_maybe_symbolic_build` reduces a per-replica batch eagerly only to learn its
   shapes, and `reduce_per_replica` reduces scalar logs along axis 0.
2. Keras clips gradients in `Optimizer.apply`, on each replica before the all-reduce
   (tensorflow#33929), so under a strategy `clipnorm`, `clipvalue` and
   `global_clipnorm` clip each replica's share of the gradient. `clip_after_all_reduce`
   moves the clipping after the all-reduce, so it sees the global batch's gradient
   on every strategy, as on one device. `observe_gradients` uses the same place to
   let the gradient health monitor (`tfkit.diagnostics`) see that gradient, unclipped.
3. An Embedding's gradient is a `tf.IndexedSlices` with a row per token of the batch,
   a word seen twice twice. Keras 3.15's optimizers apply their non-linear steps to
   those rows one by one: RMSprop's and Adam's squared gradient of a word seen twice
   in a batch is g1² + g2², not (g1 + g2)² as for any dense weight, and for tf.keras 2
   (which summed the duplicates first), the documents' Keras; the same for a clipnorm.
   Densifying the rows once (`sum_duplicate_rows`) is that dense update, and faster:
   on the Conv1D recipe (128 reviews of 500 tokens into 10,000 x 128) RMSprop took
   43 ms on the rows and 3 ms on the dense gradient, which takes 14 ms to sum.

Each patch refuses to run on a Keras it was not tested on; `setup.cfg` pins the range.
"""

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

TESTED_KERAS = ("3.15.",)


def check_keras_version():
    """Raises RuntimeError unless the installed Keras is one these patches were tested on."""
    if not keras.__version__.startswith(TESTED_KERAS):
        raise RuntimeError(
            f"tfkit's Keras patches were tested on Keras {', '.join(TESTED_KERAS)}x, not "
            f"{keras.__version__}; install the versions setup.cfg pins (pip install -e .)"
        )


def fix_multi_worker_fit():
    """Makes `fit`/`evaluate`/`predict` work under MultiWorkerMirroredStrategy (keras#20585)."""
    check_keras_version()
    if getattr(tf_trainer, "_tfkit_patched", False):
        return
    original_reduce = tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                # Only the shapes are needed: take this worker's first replica's
                # values instead of a cross-worker reduce outside any collective.
                data_batch = tf.nest.map_structure(
                    lambda value: (
                        self.distribute_strategy.experimental_local_results(value)[0]
                        if isinstance(value, tf.distribute.DistributedValues)
                        else value
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            # Keras reduces with axis=0, which fails on the scalar logs (loss, metrics).
            def mean(value):
                rank = strategy.experimental_local_results(value)[0].shape.rank
                return strategy.reduce("MEAN", value, axis=0 if rank else None)

            return tf.nest.map_structure(mean, values)
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer._tfkit_patched = True


def clip_after_all_reduce(optimizer):
    """Makes `optimizer` clip the all-reduced gradient instead of each replica's share.

    Under the default strategy nothing changes: the all-reduce of one replica is the
    identity. Returns `optimizer`.
    """
    check_keras_version()
    clip = optimizer._clip_gradients
    # `apply` clips first and `_backend_update_step` all-reduces after: clip after.
    optimizer._clip_gradients = lambda grads: grads
    _after_all_reduce(optimizer).append(lambda grads_and_vars: clip([g for g, _ in grads_and_vars]))
    return optimizer


def sum_duplicate_rows(optimizer):
    """Makes `optimizer` sum an IndexedSlices gradient's rows into a dense gradient first.

    Installed before any clipping, so a clip sees the gradient a dense weight would
    have. Returns `optimizer`.
    """
    check_keras_version()
    steps = _after_all_reduce(optimizer)
    if _summed_rows not in steps:
        steps.insert(0, _summed_rows)
    return optimizer


def _summed_rows(grads_and_vars):
    return [tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad
            for grad, _ in grads_and_vars]  # fmt: skip


def observe_gradients(optimizer, observer):
    """Calls `observer(grads_and_vars)` with the all-reduced gradients of each step.

    An optimizer of `tfkit.optim.get_optimizer` gives it an Embedding's gradient summed
    into a dense one (`sum_duplicate_rows`); another, as an `IndexedSlices`.

    The observer sees the gradient of the global batch before any clipping, on one
    device as under any strategy, inside the compiled step; it must not change them.
    """
    check_keras_version()
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer  # it receives the unscaled gradients

    def observe(grads):
        observer(grads)
        return [grad for grad, _ in grads]

    # Before the clipping; after the rows are summed, where they are: the gradient the
    # optimizer applies, whose norm then costs no second summing.
    steps = _after_all_reduce(optimizer)
    steps.insert(1 if steps[:1] == [_summed_rows] else 0, observe)


def _after_all_reduce(optimizer):
    """The steps run on each step's all-reduced gradients, installed on first use.

    Each step takes the list of `(gradient, variable)` pairs and returns the gradients.
    """
    if "_tfkit_after_all_reduce" not in optimizer.__dict__:
        all_reduce = optimizer._all_reduce_sum_gradients
        steps = []

        def all_reduce_then(grads_and_vars):
            grads_and_vars = list(all_reduce(grads_and_vars))
            variables = [variable for _, variable in grads_and_vars]
            for step in steps:
                grads = step(list(grads_and_vars))
                grads_and_vars = list(zip(grads, variables))
            return grads_and_vars

        optimizer._all_reduce_sum_gradients = all_reduce_then
        object.__setattr__(optimizer, "_tfkit_after_all_reduce", steps)  # untracked
    return optimizer._tfkit_after_all_reduce
