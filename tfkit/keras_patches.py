"""The two places tfkit changes private Keras code, for the Keras versions it was tested on.

1. `fit`, `evaluate` and `predict` under `MultiWorkerMirroredStrategy` fail in Keras
   3.15 (keras#20585, tensorflow#72388) with "Attempt to convert a value
   (PerReplica...)". Two bugs in `keras/src/backend/tensorflow/trainer.py`:
   `_maybe_symbolic_build` reduces a per-replica batch eagerly only to learn its
   shapes, and `reduce_per_replica` reduces scalar logs along axis 0.
2. Keras clips gradients in `Optimizer.apply`, on each replica before the all-reduce
   (tensorflow#33929), so under a strategy `clipnorm`, `clipvalue` and
   `global_clipnorm` clip each replica's share of the gradient. `clip_after_all_reduce`
   moves the clipping after the all-reduce, so it sees the global batch's gradient
   on every strategy, as on one device.

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
    all_reduce = optimizer._all_reduce_sum_gradients

    def all_reduce_then_clip(grads_and_vars):
        grads_and_vars = all_reduce(grads_and_vars)
        grads = clip([grad for grad, _ in grads_and_vars])
        return [(grad, var) for grad, (_, var) in zip(grads, grads_and_vars)]

    # `apply` clips first and `_backend_update_step` all-reduces after: swap the two.
    optimizer._clip_gradients = lambda grads: grads
    optimizer._all_reduce_sum_gradients = all_reduce_then_clip
    return optimizer
