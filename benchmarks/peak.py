"""The recipes' training steps as a fraction of this machine's peak: ceilings, FLOPs, kernels.

In one process and one run:

1. **Ceilings**: `tf.matmul` of two 2048x2048 matrices and a 3x3 convolution of 64 to 64
   channels on 32 maps of 56x56 (the shapes of a ResNet's stage), in float32 and in
   bfloat16, best of `--repeats`.
2. **Each recipe's default model** (its `build_model` with default flags, at its default
   batch, on random inputs of its shapes): the training step's FLOPs counted from the
   layer shapes, and its achieved FLOP/s over the median of `--steps` steps after
   `--warmup` (`model.fit` with the recipe's compile: optimizer, metrics, precision, XLA).
3. **Which kernels ran**: the same step again in a child process under `ONEDNN_VERBOSE=1`,
   oneDNN's log of every primitive executed (matmul, convolution, inner product), its
   implementation (`brg_matmul:avx10_1_512_amx`, `brgconv:avx512_core_amx`, `gemm:jit`...)
   and data type. A case meant to run in bfloat16 whose matmuls and convolutions ran no
   bfloat16 kernel fails the benchmark (exit status 1), loudly.

The FLOPs formula: a layer of M multiply-adds an example costs 2M FLOPs forward, 2M for
the gradient of its weights and 2M for the gradient of its input (left out where no
gradient flows into the input: the first layer on the data, or after an Embedding's
lookup, which is a gather). Dense: inputs x units; ConvND: output positions x kernel
size x input channels x filters; Conv2DTranspose: input positions x kernel size x
input x output channels; SimpleRNN/GRU/LSTM: steps x gates (1, 3, 4) x (input + units)
x units. Elementwise work (activations, batch normalisation, pooling, the optimizer's
update) is left out: it is memory-bound, and it is what a "fraction of peak" pays for.
`--check-flops` compares the count with TensorFlow's profiler (`tf.compat.v1.profiler`,
the MatMul and Conv* ops of the step's graph).

One JSON line per ceiling and per case: `case` (the recipe's name), `precision`,
`flops_per_example`, `achieved_gflops`, `fraction_of_bf16_matmul`,
`fraction_of_fp32_matmul`, `kernels`, and more.

    python benchmarks/peak.py                            # every recipe, its auto precision
    python benchmarks/peak.py --cases imdb_conv1d --precisions float32,mixed_bfloat16
    python benchmarks/peak.py --onednn-caps ALL,AVX512_CORE_BF16   # with AMX, then without
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfkit.quiet  # noqa: F401,E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfkit.hardware import bf16_faster_here, cpu_bf16, onednn_isa_cap, set_mixed_precision  # noqa: E402

# case -> (recipe module, its config's overrides); the recipe's defaults otherwise.
CASES = {
    "imdb_conv1d": ("imdb_conv1d", {}),
    "imdb_rnn": ("imdb_rnn", {}),
    "imdb_rnn --cell lstm": ("imdb_rnn", {"cell": "lstm"}),
    "imdb_rnn --cell gru": ("imdb_rnn", {"cell": "gru"}),
    "imdb_rnn --cell cnn_lstm": ("imdb_rnn", {"cell": "cnn_lstm"}),
    "cifar10_resnet": ("cifar10_resnet", {"class_names": tuple(str(i) for i in range(10))}),
    "dcgan_cifar10": ("dcgan_cifar10", {}),
    "text_ngrams": ("text_ngrams", {}),
}
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
# oneDNN primitives that do the multiply-adds; the rest (reorders, eltwise) move memory.
MATH_PRIMITIVES = ("matmul", "convolution", "inner_product", "deconvolution", "rnn")


# --- 1. Ceilings -------------------------------------------------------------------------


def best_seconds(function, repeats):
    function()  # traced, and oneDNN's primitive created
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def ceilings(repeats):
    """GFLOP/s of a large matmul and a large convolution in float32 and bfloat16 (None where
    the CPU, or its oneDNN cap, has no bfloat16 kernel: oneDNN aborts the process there)."""
    rows = {}
    n = 2048
    for dtype in ("float32", "bfloat16") if cpu_bf16() else ("float32",):
        a = tf.random.uniform((n, n), dtype="float32")
        a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[0, :1], "float32")))
        rows[f"matmul_{dtype}"] = 2 * n**3 / best_seconds(matmul, repeats) / 1e9
        x = tf.cast(tf.random.uniform((32, 56, 56, 64)), dtype)
        w = tf.cast(tf.random.uniform((3, 3, 64, 64)), dtype)
        conv = tf.function(lambda: tf.reduce_sum(tf.cast(
            tf.nn.conv2d(x, w, 1, "SAME")[0, 0, 0, :1], "float32")))  # fmt: skip
        rows[f"conv2d_{dtype}"] = 2 * 32 * 56 * 56 * 9 * 64 * 64 / best_seconds(conv, repeats) / 1e9
    return {"matmul_bfloat16": None, "conv2d_bfloat16": None, **rows}


# --- 2. FLOPs from the layer shapes ------------------------------------------------------


def layer_macs(layer):
    """Multiply-adds of one forward pass of `layer`, per example."""
    kind = type(layer).__name__
    if kind == "Bidirectional":
        return layer_macs(layer.forward_layer) + layer_macs(layer.backward_layer)
    if kind == "Dense":
        inputs = layer.input.shape
        return int(np.prod(inputs[1:-1] or [1])) * inputs[-1] * layer.units
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        positions = int(np.prod(layer.output.shape[1:-1]))
        return positions * int(np.prod(layer.kernel_size)) * layer.input.shape[-1] * layer.filters // layer.groups
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        positions = int(np.prod(layer.input.shape[1:-1]))
        return positions * int(np.prod(layer.kernel_size)) * layer.input.shape[-1] * layer.filters
    if kind in GATES:
        steps, features = layer.input.shape[1], layer.input.shape[-1]
        return steps * GATES[kind] * (features + layer.units) * layer.units
    return 0


def network_macs(model):
    """`[(layer name, macs, input needs a gradient)]` of a functional or sequential model."""
    rows, after_data = [], True
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        macs = layer_macs(layer)
        rows.append((layer.name, macs, not after_data))
        # Until the first layer with weights, no gradient flows back to the data.
        if macs or kind == "Embedding" or layer.trainable_weights:
            after_data = False
    return rows


def training_flops(rows, forward=1.0, weight_gradient=1.0, input_gradient=1.0, all_inputs=False):
    """FLOPs of a step over `rows` of `network_macs`, per example, each pass weighted."""
    total = 0.0
    for _, macs, needs_input in rows:
        total += 2 * macs * (forward + weight_gradient + (input_gradient if needs_input or all_inputs else 0))
    return total


def step_flops(case, model):
    """Training FLOPs per example of `case`'s step (per real image for the DCGAN)."""
    if case == "dcgan_cifar10":
        generator, discriminator = network_macs(model.generator), network_macs(model.discriminator)
        # D's step: G forward; D forward and both gradients on fakes and reals (2 a batch).
        d_step = training_flops(generator, 1, 0, 0) + 2 * training_flops(discriminator)
        # G's step: G forward and both gradients; D forward and its input's gradient
        # (every layer's, down to the fake pictures), never its weights'.
        g_step = training_flops(generator) + training_flops(discriminator, 1, 0, 1, all_inputs=True)
        return d_step + g_step
    return training_flops(network_macs(model))


# --- 3. The recipes' steps ---------------------------------------------------------------


def build_case(case, precision):
    """The recipe's compiled default model under `precision`, its batch and random inputs."""
    import importlib

    module_name, overrides = CASES[case]
    recipe = importlib.import_module(f"recipes.{module_name}")
    config = recipe.Config(**overrides)
    keras.utils.set_random_seed(0)
    helps = getattr(recipe, "BF16_HELPS_ON_CPU", False)
    if isinstance(helps, dict):
        helps = helps[config.cell]
    if precision == "auto":
        policy = set_mixed_precision("auto", helps)
    else:
        keras.mixed_precision.set_global_policy(precision)
        policy = precision
    model = recipe.build_model(config)
    batch = config.batch_size
    rng = np.random.default_rng(0)
    if module_name == "dcgan_cifar10":
        x = rng.uniform(-1, 1, (batch, 32, 32, 3)).astype("float32")
        data = tf.data.Dataset.from_tensors(x)
    else:
        shape = model.input_shape[1:]
        if model.inputs[0].dtype.startswith("int"):
            x = rng.integers(1, config.max_features, (batch, *shape)).astype("int32")
        else:
            scale = 255 if module_name == "cifar10_resnet" else 1
            x = (rng.uniform(0, scale, (batch, *shape))).astype("float32")
        classes = len(config.class_names)
        y = rng.integers(0, classes, (batch,))
        y = y.astype("float32")[:, None] if classes == 2 else y.astype("int32")  # as the recipes' losses read them
        data = tf.data.Dataset.from_tensors((x, y))
    return model, data.repeat().prefetch(2), batch, policy


class StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def time_steps(model, data, warmup, steps):
    """Median seconds of a training step after `warmup` steps."""
    times = StepTimes()
    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[times])
    gaps = np.diff(times.ends[warmup - 1:])
    return float(statistics.median(gaps)), len(gaps)


def kernels_of(case, precision, steps=6):
    """oneDNN's log of `steps` training steps of `case`, in a child process:
    `({"primitive implementation dtype": executions}, {"math": ms, "other": ms})`, the
    milliseconds a step spent in oneDNN's multiply-add primitives and in its others."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    command = [sys.executable, __file__, "--child", case, "--precision", precision, "--steps", str(steps)]
    log = subprocess.run(command, env=env, capture_output=True, text=True).stdout
    counts, milliseconds = collections.Counter(), collections.Counter()
    for line in log.splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        primitive, implementation = fields[at + 2], fields[at + 3]
        try:
            milliseconds["math" if primitive in MATH_PRIMITIVES else "other"] += float(fields[-1]) / steps
        except ValueError:
            pass  # the log's header line
        if primitive not in MATH_PRIMITIVES:
            continue
        memory = next((f for f in fields if f.startswith("src") or " src" in f), "")
        dtype = memory.split(":")[1] if memory.count(":") >= 1 else "?"
        counts[f"{primitive} {implementation} {dtype}"] += 1
    return dict(counts.most_common()), {k: round(v, 2) for k, v in milliseconds.items()}


def check_with_profiler(case, model, batch):
    """The MatMul and Conv* FLOPs TensorFlow's profiler counts in a forward + gradient graph
    of `case` (not the DCGAN's two-network step), per example."""

    spec = tf.TensorSpec((batch, *model.input_shape[1:]), model.inputs[0].dtype)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(model(x, training=True), "float32"))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    counted = sum(node.total_float_ops for node in profile.children
                  if node.name.startswith(("MatMul", "BatchMatMul", "Conv")))  # fmt: skip
    return counted / batch


def run_case(case, precision, ceiling, warmup, steps, with_kernels, check_flops):
    keras.backend.clear_session()
    model, data, batch, policy = build_case(case, precision)
    seconds, measured = time_steps(model, data, warmup, steps)
    flops = step_flops(case, model)
    achieved = flops * batch / seconds / 1e9
    row = {
        "case": case,
        "precision": policy,
        "batch_size": batch,
        "flops_per_example": round(flops),
        "step_seconds_median": round(seconds, 5),
        "steps_measured": measured,
        "examples_per_second": round(batch / seconds, 1),
        "achieved_gflops": round(achieved, 2),
        "fraction_of_bf16_matmul": (
            round(achieved / ceiling["matmul_bfloat16"], 3) if ceiling["matmul_bfloat16"] else None
        ),
        "fraction_of_fp32_matmul": round(achieved / ceiling["matmul_float32"], 3),
        "jit_compile": bool(model.jit_compile),
    }
    # The profiler sees no op inside a while loop (an RNN's steps), nor the DCGAN's two networks.
    recurrent = any(type(layer).__name__ in (*GATES, "Bidirectional") for layer in getattr(model, "layers", []))
    if check_flops and case != "dcgan_cifar10" and not recurrent:
        row["profiler_flops_per_example"] = round(check_with_profiler(case, model, batch))
    if with_kernels:
        row["kernels"], onednn = kernels_of(case, precision)
        # Where the step's time goes: oneDNN's multiply-adds, its other primitives
        # (reorders, pooling), and the rest (TensorFlow's own ops, the optimizer, metrics).
        row["step_ms_in_onednn_math"] = onednn.get("math", 0.0)
        row["step_ms_in_onednn_other"] = onednn.get("other", 0.0)
        bf16 = any(k.split()[0] in ("matmul", "convolution", "inner_product", "deconvolution")
                   and k.endswith("bf16") for k in row["kernels"])  # fmt: skip
        row["bf16_kernels_ran"] = bf16
        row["amx_kernels_ran"] = any("amx" in kernel for kernel in row["kernels"])
    keras.mixed_precision.set_global_policy("float32")
    return row


def child(case, precision, steps):
    """Runs `steps` steps of `case` (under ONEDNN_VERBOSE, set by the parent)."""
    model, data, _, _ = build_case(case, precision)
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of " + ", ".join(CASES))
    parser.add_argument("--precisions", default="auto",
                        help="comma list of auto, float32, mixed_bfloat16")  # fmt: skip
    parser.add_argument("--steps", type=int, default=50, help="steps timed, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=8, help="of each ceiling, the best counts")
    parser.add_argument("--no-kernels", action="store_true", help="skip oneDNN's log")
    parser.add_argument("--check-flops", action="store_true", help="the count against TF's profiler")
    parser.add_argument("--onednn-caps", help="comma list of ONEDNN_MAX_CPU_ISA values: the "
                        "benchmark again under each, e.g. ALL,AVX512_CORE_BF16 (with and without AMX)")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.precision, args.steps)
    if args.onednn_caps:  # oneDNN reads the cap once, at its start: a process for each
        same = ["--cases", args.cases, "--precisions", args.precisions, "--steps", str(args.steps),
                "--warmup", str(args.warmup), "--repeats", str(args.repeats),
                *(["--no-kernels"] if args.no_kernels else []),
                *(["--check-flops"] if args.check_flops else [])]  # fmt: skip
        return max(
            subprocess.run([sys.executable, os.path.abspath(__file__), *same],
                           env={**os.environ, "ONEDNN_MAX_CPU_ISA": cap}).returncode  # fmt: skip
            for cap in args.onednn_caps.split(",")
        )

    ceiling = ceilings(args.repeats)
    machine = {
        "cpu_bf16": cpu_bf16(),  # "amx", "avx512_bf16" or None, under any ONEDNN_MAX_CPU_ISA cap
        "onednn_max_cpu_isa": onednn_isa_cap(),
        "auto_picks_bf16": bf16_faster_here(),
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    for name, gflops in ceiling.items():
        gflops = None if gflops is None else round(gflops, 1)
        print(json.dumps({"case": f"ceiling:{name}", "achieved_gflops": gflops, **machine}), flush=True)
    failed = []
    for case in args.cases.split(","):
        for precision in args.precisions.split(","):
            row = run_case(case, precision, ceiling, args.warmup, args.steps,
                           not args.no_kernels, args.check_flops)  # fmt: skip
            row["onednn_max_cpu_isa"] = machine["onednn_max_cpu_isa"]
            print(json.dumps(row), flush=True)
            if row["precision"] == "mixed_bfloat16" and row.get("bf16_kernels_ran") is False:
                failed.append(f"{case} ({precision})")
    if failed:
        print(f"error: no bfloat16 matmul or convolution kernel ran for {', '.join(failed)}, "
              "though meant to run in bfloat16: see the kernels above", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
