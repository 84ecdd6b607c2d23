"""Distribution strategies: one device, several GPUs (or logical CPUs), several machines.

`get_strategy` always returns a `tf.distribute.Strategy`, so a recipe writes
`with strategy.scope():` on every path. `--batch-size` is the global batch: each of
the `strategy.num_replicas_in_sync` replicas gets `batch_size / replicas` examples.
"""

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
            default strategy), "default" or "mirrored".
        logical_cpus: if > 1, split the CPU into that many devices first; "mirrored"
            then mirrors over them.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if logical_cpus > 1:
        split_cpu(logical_cpus)
    gpus = tf.config.list_logical_devices("GPU")
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
    raise UsageError(f"--strategy {name} is not available yet; use auto, default or mirrored")


def describe(strategy, batch_size):
    """{"replicas", "per_replica_batch"} for logs and metrics.json."""
    replicas = strategy.num_replicas_in_sync
    return {"replicas": replicas, "per_replica_batch": batch_size / replicas}
