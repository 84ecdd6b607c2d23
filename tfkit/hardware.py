"""What the hardware makes fast: mixed precision and XLA, chosen per recipe.

`--mixed-precision auto` and `--jit-compile auto` follow what the benchmarks measured:
a recipe says which of them helped its model, and this module applies that to the
hardware it finds. Explicit values are obeyed as given.
"""

import os

import tensorflow as tf
import keras

_POLICIES = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


# oneDNN's instruction-set caps (`ONEDNN_MAX_CPU_ISA`, or `DNNL_MAX_CPU_ISA`): a value it
# does not know it ignores, running with all the CPU has.
_CAPS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
         "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX",
         "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16"}  # fmt: skip
_CAPS_WITH_BF16 = {"AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16"}


def onednn_isa_cap():
    """The instruction-set cap oneDNN runs under: `ONEDNN_MAX_CPU_ISA` (or the older
    `DNNL_MAX_CPU_ISA`) as oneDNN reads it, "ALL" where none applies."""
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(variable, "")
        if value:
            return value.upper() if value.upper() in _CAPS else "ALL"
    return "ALL"


def cpu_bf16():
    """What does this CPU's bfloat16 matrix math, as oneDNN may use it: "amx", "avx512_bf16"
    or None (Linux's /proc/cpuinfo, under `onednn_isa_cap`)."""
    flags = set(_cpuinfo_field("flags").split())
    cap = onednn_isa_cap()
    amx_allowed = cap == "ALL" or "AMX" in cap
    if "amx_bf16" in flags and amx_allowed:
        return "amx"
    if "avx512_bf16" in flags and (amx_allowed or cap in _CAPS_WITH_BF16):
        return "avx512_bf16"
    return None


def bf16_faster_here():
    """Whether bfloat16 convolutions and matmuls beat float32 on this CPU.

    `benchmarks/peak.py` (2048x2048 matmul, bfloat16 against float32): AMX 1,228 against
    295 GFLOP/s; the same Intel cores capped at AVX512-BF16 (`ONEDNN_MAX_CPU_ISA=
    AVX512_CORE_BF16`, as on Intel CPUs without AMX) 181 against 286, where every recipe
    trained slower in bfloat16 (0.62-0.81x). On AMD's AVX512-BF16 (the EPYC machines,
    2026-11) bfloat16 made the recipes that pick it faster (the Conv1D 1.28-1.37x the
    plain script, against about 1.0x in float32; the GAN's step twice as fast).
    """
    kind = cpu_bf16()
    amd = _cpuinfo_field("vendor_id") == "AuthenticAMD"
    return kind == "amx" or (kind == "avx512_bf16" and amd)


def _cpuinfo_field(name):
    """The first `name : value` of /proc/cpuinfo, "" where there is none."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def num_gpus():
    """How many GPUs TensorFlow sees."""
    return len(tf.config.list_physical_devices("GPU"))


def set_mixed_precision(setting, bf16_helps_on_cpu=False):
    """Sets Keras's global dtype policy from `--mixed-precision` and returns its name.

    Args:
        setting: "auto", "off", "bf16" or "fp16".
        bf16_helps_on_cpu: whether this recipe measured faster under mixed_bfloat16
            on a CPU with native bfloat16, without losing accuracy.

    With "auto": mixed_float16 on GPUs; mixed_bfloat16 on a CPU where bfloat16 is faster
    (`bf16_faster_here`: AMX, or AMD's AVX512-BF16) and the recipe says it helps;
    float32 otherwise. Call it before building the model; keep
    the output layer in float32 (`dtype="float32"`).
    """
    if setting == "auto":
        if num_gpus():
            setting = "fp16"
        elif bf16_helps_on_cpu and bf16_faster_here():
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
