"""DCGAN training steps/s: the recipe's compiled step against the document's loop.

The document's loop (002 §6, as the source book runs it): `generator.predict` on
normal latents, `discriminator.train_on_batch` on generated + real images with 0.05
label noise, then `gan.train_on_batch` of the combined model with D frozen. tfkit is
the recipe's `DCGAN.train_step` under `fit()`, with what `--mixed-precision auto`
picks here. Same networks, same batch size, same real images; the two sides alternate
round by round and each reports its best round after the first (tracing). With
`--quality-epochs N` it also trains the recipe on synthetic frogs under float32 and
under the auto policy and reports both pixel_kid scores. One JSON line per result.

    python benchmarks/dcgan_throughput.py --batch-size 20 --steps 4 --rounds 3
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfkit.quiet  # noqa: F401,E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from recipes import dcgan_cifar10  # noqa: E402
from tfkit.data.cifar10 import synthetic_images  # noqa: E402
from tfkit.hardware import set_mixed_precision  # noqa: E402
from tfkit.optim import get_optimizer  # noqa: E402


def document_loop(config, images, steps, rng):
    """The document's networks and training loop, float32; returns a function running `steps`."""
    keras.mixed_precision.set_global_policy("float32")
    generator = dcgan_cifar10.build_generator(config)
    discriminator = dcgan_cifar10.build_discriminator(config)
    discriminator.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.0008, clipvalue=1.0),
        loss="binary_crossentropy",
    )
    batch = config.batch_size
    # Keras 3 fixes a model's trainable weights when it first trains: train D once
    # before freezing it inside the combined model, as Keras 2 scripts assumed.
    discriminator.train_on_batch(images[: 2 * batch], np.zeros((2 * batch, 1)))
    discriminator.trainable = False
    gan_input = keras.Input(shape=(config.latent_dim,))
    gan = keras.Model(gan_input, discriminator(generator(gan_input)))
    gan.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.0004, clipvalue=1.0),
        loss="binary_crossentropy",
    )

    def run(first_step):
        for step in range(first_step, first_step + steps):
            latent = rng.normal(size=(batch, config.latent_dim))
            generated = generator.predict(latent, verbose=0)
            start = (step * batch) % (len(images) - batch)
            real = images[start : start + batch]
            combined = np.concatenate([generated, real])
            labels = np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))])
            labels += 0.05 * rng.random(labels.shape)
            discriminator.train_on_batch(combined, labels)
            latent = rng.normal(size=(batch, config.latent_dim))
            gan.train_on_batch(latent, np.zeros((batch, 1)))

    return run, discriminator


def tfkit_step(config, images, steps):
    """The recipe's DCGAN under the auto policy; returns a function running `steps` via fit."""
    policy = set_mixed_precision(config.mixed_precision, bf16_helps_on_cpu=True)
    gan = dcgan_cifar10.DCGAN(
        dcgan_cifar10.build_generator(config), dcgan_cifar10.build_discriminator(config), config
    )
    gan.compile(
        d_optimizer=get_optimizer("rmsprop", config.learning_rate, clipvalue=config.clipvalue),
        g_optimizer=get_optimizer("rmsprop", config.generator_learning_rate, clipvalue=1.0),
    )
    keras.mixed_precision.set_global_policy("float32")  # the built networks keep theirs
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(
        config.batch_size, drop_remainder=True
    )
    dataset = dataset.take(steps).cache().prefetch(tf.data.AUTOTUNE)

    def run(first_step):
        gan.fit(dataset, epochs=1, verbose=0)

    return run, policy


def throughput(args):
    config = dcgan_cifar10.Config(batch_size=args.batch_size, mixed_precision=args.mixed_precision)
    images = synthetic_images(np.full(args.batch_size * (args.steps + 2), 6), seed=0)
    images = images.astype("float32") / 127.5 - 1.0
    plain, discriminator = document_loop(config, images, args.steps, np.random.default_rng(0))
    fused, policy = tfkit_step(config, images, args.steps)
    before = [w.copy() for w in discriminator.get_weights()]
    plain_seconds, tfkit_seconds = [], []
    for round_index in range(args.rounds):
        start = time.perf_counter()
        plain(round_index * args.steps)
        plain_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        fused(round_index * args.steps)
        tfkit_seconds.append(time.perf_counter() - start)
    trained = any(not np.array_equal(a, b) for a, b in zip(before, discriminator.get_weights()))
    plain_rate = args.steps / min(plain_seconds[1:])
    tfkit_rate = args.steps / min(tfkit_seconds[1:])
    return {
        "benchmark": "dcgan_steps_per_second",
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "plain_steps_per_second": round(plain_rate, 3),
        "tfkit_steps_per_second": round(tfkit_rate, 3),
        "ratio": round(tfkit_rate / plain_rate, 2),
        "tfkit_policy": policy,
        "plain_discriminator_trained": trained,
        "data": "synthetic",
    }


def quality(args, precision, seed):
    # The recipe's own log goes to stderr: stdout carries only the JSON lines.
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(sys.stderr):
        dcgan_cifar10.main(
            [
                "--data", "synthetic", "--max-examples", str(args.quality_examples),
                "--epochs", str(args.quality_epochs), "--mixed-precision", precision,
                "--generator-filters", str(args.quality_filters),
                "--discriminator-filters", str(args.quality_filters),
                "--seed", str(seed), "--run-dir", run_dir, "--no-export",
            ]
        )  # fmt: skip
        with open(os.path.join(run_dir, "metrics.json")) as file:
            metrics = json.load(file)
    keras.mixed_precision.set_global_policy("float32")
    return {
        "benchmark": "dcgan_pixel_kid",
        "mixed_precision_flag": precision,
        "seed": seed,
        "policy": metrics["mixed_precision"],
        "epochs": args.quality_epochs,
        "examples": args.quality_examples,
        "filters": args.quality_filters,
        "final_pixel_kid": round(metrics["final_pixel_kid"], 4),
        "best_pixel_kid": round(metrics["best_pixel_kid"], 4),
        "data": "synthetic",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=20, help="002 §6's loop uses 20")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per side; the first is dropped"
    )
    parser.add_argument(
        "--mixed-precision", default="auto", choices=["auto", "off", "bf16", "fp16"]
    )
    parser.add_argument("--quality-epochs", type=int, default=0, help="0 skips the quality check")
    parser.add_argument("--quality-examples", type=int, default=400)
    parser.add_argument("--quality-filters", type=int, default=32)
    parser.add_argument("--quality-seeds", type=int, default=3, help="runs per precision")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        print(json.dumps(throughput(args)), flush=True)
    if args.quality_epochs:
        for precision in ("off", args.mixed_precision):
            runs = [quality(args, precision, seed) for seed in range(args.quality_seeds)]
            for run in runs:
                print(json.dumps(run), flush=True)
            finals = [run["final_pixel_kid"] for run in runs]
            summary = {"benchmark": "dcgan_pixel_kid_mean", "mixed_precision_flag": precision}
            summary.update(mean_final=round(float(np.mean(finals)), 4), finals=finals)
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
