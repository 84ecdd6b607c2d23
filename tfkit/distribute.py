"""Distribution strategies: one device, several GPUs (or logical CPUs), several machines.

`get_strategy` always returns a `tf.distribute.Strategy`, so a recipe writes
`with strategy.scope():` on every path. `--batch-size` is the global batch: each of
the `strategy.num_replicas_in_sync` replicas gets `batch_size / replicas` examples.
"""

import atexit
import json
import os
import shutil
import tempfile

import tensorflow as tf

from tfkit.errors import UsageError


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices, to try MirroredStrategy without GPUs.

    Must run before TensorFlow creates its devices (before the first op).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as error:
        raise UsageError(
            "--logical-cpus must be applied before TensorFlow starts its devices; pass it "
            f"on the command line of a fresh process ({error})"
        ) from None


def get_strategy(name="auto", logical_cpus=0):
    """The `tf.distribute.Strategy` for `--strategy`.

    Args:
        name: "auto" (MirroredStrategy when more than one GPU is visible, else the
            default strategy), "default", "mirrored", or "multi_worker"
            (MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG`).
        logical_cpus: if > 1, split the CPU into that many devices first; "mirrored"
            then mirrors over them.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if logical_cpus > 1:
        split_cpu(logical_cpus)
    # Physical, not logical: listing logical devices starts the runtime, and
    # MultiWorkerMirroredStrategy must configure its collectives before that.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only; on CPUs the replicas' gradients meet on one device.
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multi_worker":
        return multi_worker_strategy(gpus)
    raise UsageError(f"unknown --strategy {name}; use auto, default, mirrored or multi_worker")


def multi_worker_strategy(gpus):
    """MultiWorkerMirroredStrategy over the cluster that `TF_CONFIG` describes."""
    from tfkit.keras_patches import fix_multi_worker_fit

    try:
        json.loads(os.environ["TF_CONFIG"])["cluster"]
    except (KeyError, ValueError, TypeError):
        raise UsageError(
            "--strategy multi_worker needs TF_CONFIG with a cluster and this task (see "
            "docs/distribution.md); on one machine: python -m tfkit launch --workers 2 -- <this command>"
        ) from None
    fix_multi_worker_fit()  # keras#20585
    implementation = tf.distribute.experimental.CommunicationImplementation
    # NCCL is GPU-only; RING (gRPC) is the collective for CPUs.
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.AUTO if gpus else implementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    return strategy.extended.should_checkpoint


def chief_or_temporary(path, strategy):
    """`path` on the chief; on other workers, a temporary folder removed at exit.

    Every worker must run the same saving code (it can hold collective ops), but only
    the chief's files are kept, as in TensorFlow's multi-worker guide.
    """
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    temporary = tempfile.mkdtemp(prefix=f"tfkit-{resolver.task_type}{resolver.task_id}-")
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return os.path.join(temporary, os.path.basename(os.path.normpath(path)) or "out")


def describe(strategy, batch_size):
    """{"strategy", "replicas", "per_replica_batch"} for logs and metrics.json."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "multi_worker"
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        name = "mirrored"
    else:
        name = "default"
    replicas = strategy.num_replicas_in_sync
    return {"strategy": name, "replicas": replicas, "per_replica_batch": batch_size / replicas}
