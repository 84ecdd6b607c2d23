"""What gradient health costs: a recipe's training step with and without `GradientHealth`.

Two copies of the recipe's model (same seed) train on the same synthetic batches in
one process, taking turns one `fit` of 2 epochs at a time, so both meet the same CPU
load; each reports its best epoch after its first `fit` (which traces). Both have
TerminateOnNaN, which the recipes always run (it already reads every step's logs).
Prints one JSON line per recipe. Timings on shared cores swing; compare the ratio.

    python benchmarks/gradient_health.py [--rounds 4] [--every 10] [--recipe imdb_conv1d]
"""

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfkit.quiet  # noqa: E402,F401

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from recipes import dcgan_cifar10, imdb_conv1d, imdb_rnn  # noqa: E402
from tfkit.diagnostics.gradients import GradientHealth  # noqa: E402
from tfkit.hardware import set_mixed_precision  # noqa: E402
from text_throughput import EpochTimes  # noqa: E402


def text_case(module, batch_size, **overrides):
    config = module.Config(data="synthetic", jit_compile="off", batch_size=batch_size, **overrides)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.max_features, size=(batch_size * 16, config.max_len))
    labels = rng.integers(0, 2, size=(len(ids), 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((ids.astype("int32"), labels))
    return config, data.batch(batch_size).cache(), None


def gan_case():
    config = dcgan_cifar10.Config(data="synthetic", jit_compile="off")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(config.batch_size * 8, 32, 32, 3)).astype("float32")
    return config, tf.data.Dataset.from_tensor_slices(images).batch(config.batch_size).cache(), True


def measure(name, module, config, data, gan, rounds, every, folder):
    helps = getattr(module, "BF16_HELPS_ON_CPU", True)  # the GAN: bf16 helps (its benchmark)
    helps = helps[config.cell] if isinstance(helps, dict) else helps
    set_mixed_precision(config.mixed_precision, helps)
    models, callbacks, times = {}, {}, {}
    for setting in ("off", "on"):
        keras.utils.set_random_seed(0)
        model = module.build_model(config)
        times[setting] = EpochTimes()
        callbacks[setting] = [times[setting], keras.callbacks.TerminateOnNaN()]
        if setting == "on":
            watch = None
            if gan:
                watch = {
                    "discriminator": (model.d_optimizer, model.discriminator),
                    "generator": (model.g_optimizer, model.generator),
                }
            path = os.path.join(folder, f"{name}.csv")
            callbacks[setting].append(GradientHealth(path, every=every, watch=watch))
        models[setting] = model
    best = {}
    for round_ in range(rounds + 1):
        for setting in ("off", "on"):
            times[setting].seconds = []
            models[setting].fit(data, epochs=2, verbose=0, callbacks=callbacks[setting])
            if round_:  # the first round traces
                best[setting] = min(best.get(setting, np.inf), *times[setting].seconds)
    steps = int(data.cardinality())
    print(
        json.dumps(
            {
                "recipe": name,
                "every": every,
                "step_ms_without": round(1000 * best["off"] / steps, 2),
                "step_ms_with": round(1000 * best["on"] / steps, 2),
                "cost": round(best["on"] / best["off"] - 1, 4),
            }
        )
    )
    keras.mixed_precision.set_global_policy("float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="turns each setting takes")
    parser.add_argument("--every", type=int, default=10, help="--grad-norm-every")
    parser.add_argument("--recipe", default=None, help="measure only this one, e.g. imdb_conv1d")
    args = parser.parse_args()
    cases = {
        "imdb_conv1d": (imdb_conv1d, *text_case(imdb_conv1d, 128)),
        "imdb_rnn --cell lstm": (imdb_rnn, *text_case(imdb_rnn, 512, cell="lstm")),
        "dcgan_cifar10": (dcgan_cifar10, *gan_case()),
    }
    with tempfile.TemporaryDirectory() as folder:
        for name, (module, config, data, gan) in cases.items():
            if args.recipe and not name.startswith(args.recipe):
                continue
            measure(name, module, config, data, gan, args.rounds, args.every, folder)


if __name__ == "__main__":
    main()
