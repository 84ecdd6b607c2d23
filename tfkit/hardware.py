"""What the hardware makes fast: mixed precision and XLA, chosen per recipe.

`--mixed-precision auto` and `--jit-compile auto` follow what the benchmarks measured:
a recipe says which of them helped its model, and this module applies that to the
hardware it finds. Explicit values are obeyed as given.
"""

import tensorflow as tf
import keras

_POLICIES = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def cpu_has_bf16():
    """Whether this CPU has native bfloat16 math (AVX512-BF16 or AMX), on Linux."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def num_gpus():
    """How many GPUs TensorFlow sees."""
    return len(tf.config.list_physical_devices("GPU"))


def set_mixed_precision(setting, bf16_helps_on_cpu=False):
    """Sets Keras's global dtype policy from `--mixed-precision` and returns its name.

    Args:
        setting: "auto", "off", "bf16" or "fp16".
        bf16_helps_on_cpu: whether this recipe measured faster under mixed_bfloat16
            on a CPU with native bfloat16, without losing accuracy.

    With "auto": mixed_float16 on GPUs; mixed_bfloat16 on a bf16-capable CPU where the
    recipe says it helps; float32 otherwise. Call it before building the model; keep
    the output layer in float32 (`dtype="float32"`).
    """
    if setting == "auto":
        if num_gpus():
            setting = "fp16"
        elif bf16_helps_on_cpu and cpu_has_bf16():
            setting = "bf16"
        else:
            setting = "off"
    policy = _POLICIES[setting]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def use_jit_compile(setting, helps_on_cpu=False):
    """`model.compile(jit_compile=...)` from `--jit-compile`.

    With "auto": XLA where the recipe measured it faster on CPU and the policy is not
    mixed_bfloat16 (SimpleRNN under bf16 *and* XLA collapsed to 100 examples/s here);
    on GPUs, Keras's own "auto"; off under a distribution strategy, as Keras does.
    """
    if setting != "auto":
        return setting == "on"
    if tf.distribute.has_strategy():  # inside a non-default strategy's scope
        return False
    if num_gpus():
        return "auto"
    return helps_on_cpu and keras.mixed_precision.global_policy().name != "mixed_bfloat16"
