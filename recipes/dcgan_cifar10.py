"""
Title: DCGAN on CIFAR-10 frogs
Source: 002 §6 (GAN: 6.1 生成器, 6.2 判别器, 6.3 训练技巧)
Description: The document's generator and discriminator, trained in one compiled step per batch; image grids per epoch.
Data: CIFAR-10 (tfds, its binary copy, synthetic); yours: --data images --data-dir FOLDER (any pictures)
Run: python -m recipes.dcgan_cifar10 --data synthetic --epochs 2 --max-examples 200

The document trains with a Python loop of `train_on_batch`. Here the two updates (the
discriminator on real and generated images with noisy labels, then the generator
through the frozen discriminator) are one `train_step` of a `keras.Model`, so `fit()`,
callbacks, checkpoints and strategies work as for any Keras model. The document's
labels are kept: generated = 1, real = 0, plus 0.05 uniform noise on D's labels.
Images are scaled to [-1, 1] to match the generator's tanh (002 §6.3 ①; the source
book scaled to [0, 1]).
"""

import tfkit.quiet  # noqa: F401  (first: hides TensorFlow's C++ start-up lines)

import os
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import pandas as pd
import tensorflow as tf
import keras
from keras import layers

from tfkit import cli
from tfkit.callbacks import (
    EpochStats,
    HistoryCSV,
    TensorBoard,
    backup_and_restore,
    gradient_health,
    learning_rate_schedule,
)
from tfkit.config import DATA_SOURCES, TrainConfig, check_above, check_at_least, flag
from tfkit.data.cifar10 import CLASS_NAMES, load_cifar10, parse_class
from tfkit.data.order import epoch_batches
from tfkit.data.pictures import load_pictures
from tfkit.data.splits import class_counts, describe_class_counts
from tfkit.distribute import chief_or_temporary, get_strategy
from tfkit.export import export_for_serving
from tfkit.hardware import set_mixed_precision, use_jit_compile
from tfkit.images import save_grid
from tfkit.modes import run_mode
from tfkit.optim import optimizer_from_config
from tfkit.errors import DataError
from tfkit.finetune import fine_tuning
from tfkit.files import atomic_path
from tfkit.runs import finish_run, start_run
from tfkit.session import computed_policy
from tfkit.tune import best_config

RECIPE = "dcgan_cifar10"
NETWORKS = {"generator": "generator.keras", "discriminator": "discriminator.keras"}
# What --mixed-precision auto and --jit-compile auto pick on a CPU (tfkit.hardware):
# mixed_bfloat16 made a step 1.96x faster (benchmarks/dcgan_throughput.py).
BF16_HELPS_ON_CPU = True
XLA_HELPS_ON_CPU = False


@dataclass
class Config(TrainConfig):
    OBJECTIVES: ClassVar[tuple] = ("pixel_kid", "d_loss", "g_loss", "loss")
    # The LR range test sweeps the discriminator's LR; the generator keeps its own.
    LR_FIND_LOSS: ClassVar[str] = "d_loss"

    data: str = flag(
        "tfds",
        "CIFAR-10 from tfds, dir (its binary copy) or synthetic; images: every picture "
        "under --data-dir",
        (*DATA_SOURCES, "images"),
    )
    image_class: str = flag(
        "frog", "CIFAR-10 class to learn: a name, an id 0-9, or all (002 §6: frogs)", name="--class"
    )
    latent_dim: int = flag(32, "size of the latent vector (002 §6.1: latent_dim = 32)")
    generator_filters: int = flag(256, "filters of the generator's convolutions (002 §6.1: 256)")
    discriminator_filters: int = flag(
        128, "filters of the discriminator's convolutions (002 §6.2: 128)"
    )
    dropout: float = flag(0.4, "dropout before D's output (002 §6.2: 'a very important trick')")
    learning_rate: float | str = flag(
        0.0008, "discriminator learning rate (002 §6.2: RMSprop lr=0.0008); auto: --lr-find's"
    )
    generator_learning_rate: float = flag(
        0.0004, "generator learning rate (the source book: 0.0004)"
    )
    clipvalue: float | None = flag(
        1.0, "clip gradient values, both networks (002 §6.2: clipvalue=1.0)"
    )
    label_noise: float = flag(0.05, "uniform noise added to D's labels (the document's loop: 0.05)")
    label_smoothing: float = flag(
        0.0, "one-sided smoothing: real labels become this, not 0 (002 §6.3 ③)"
    )
    flip_labels: float = flag(0.0, "fraction of D's labels flipped each step (002 §6.3 ③)")
    batch_size: int = flag(20, "the document's loop: batch_size = 20")
    epochs: int = flag(40, "passes over the 5000 frogs (the document: 10000 steps of 20 = 40)")
    num_samples: int = flag(16, "images in each epoch's grid, from the same fixed latents")
    quality_samples: int = flag(200, "real and generated images compared for pixel_kid each epoch")

    def __post_init__(self):
        super().__post_init__()
        parse_class(self.image_class)
        check_at_least(
            self, 1, "latent_dim", "generator_filters", "discriminator_filters", "num_samples"
        )
        check_above(self, 0, "generator_learning_rate")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.quality_samples < 2:
            raise ValueError(f"quality_samples must be >= 2. Received: {self.quality_samples}")
        for name in ("label_noise", "label_smoothing", "flip_labels"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(
                    f"{name} must be in [0, 0.5). Received: {name}={getattr(self, name)}"
                )


def build_generator(config):
    """002 §6.1: latent vector -> 32x32x3 image in [-1, 1]."""
    filters = config.generator_filters
    generator_input = keras.Input(shape=(config.latent_dim,))
    x = layers.Dense(128 * 16 * 16)(generator_input)  # a 16x16 map of 128 channels
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((16, 16, 128))(x)
    x = layers.Conv2D(filters, 5, padding="same")(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same")(x)  # up to 32x32
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(filters, 5, padding="same")(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(filters, 5, padding="same")(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(3, 7, activation="tanh", padding="same", dtype="float32")(x)
    return keras.Model(generator_input, x, name="generator")


def build_discriminator(config):
    """002 §6.2: image -> probability that it was generated."""
    filters = config.discriminator_filters
    discriminator_input = layers.Input(shape=(32, 32, 3))
    x = layers.Conv2D(filters, 3)(discriminator_input)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(filters, 4, strides=2)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(filters, 4, strides=2)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Conv2D(filters, 4, strides=2)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(config.dropout)(x)  # "a very important trick"
    x = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    return keras.Model(discriminator_input, x, name="discriminator")


class SumOfMetrics(keras.metrics.Metric):
    """A metric whose result is the sum of other metrics' results; it has no state."""

    def __init__(self, name, *metrics):
        super().__init__(name=name)
        self.total = lambda: sum(metric.result() for metric in metrics)  # a closure: untracked

    def update_state(self, *args, **kwargs):
        pass

    def result(self):
        return self.total()

    def reset_state(self):
        pass


class DCGAN(keras.Model):
    """Both networks and one training step that updates D, then G (keras-io DCGAN)."""

    def __init__(self, generator, discriminator, config):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.config = config
        self.seed_generator = keras.random.SeedGenerator(config.seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake")
        }
        # "loss" exists so TerminateOnNaN, which reads only that key, guards both losses.
        # Derived from the two means rather than tracked on its own: a separately
        # tracked sum came out one float32 ulp apart between processes under mirrored.
        self.trackers["loss"] = SumOfMetrics(
            "loss", self.trackers["d_loss"], self.trackers["g_loss"]
        )
        self.built = True  # both networks are built functional models

    def compile(self, d_optimizer, g_optimizer, jit_compile=False):
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            # fit() wraps only the model's own optimizer; these two need it by hand.
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
            g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
        # D's optimizer doubles as the model's, so LR logging and callbacks find one.
        super().compile(optimizer=d_optimizer, jit_compile=jit_compile)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built now, so a backup restores both optimizers' state (keras-io#729 lost it).
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)
        self.bce = keras.losses.BinaryCrossentropy(reduction=None)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, latent, training=False):
        return self.generator(latent, training=training)

    def replica_seed(self):
        """A fresh random seed of this replica's own.

        The replicas share one SeedGenerator, so with its seeds alone every replica
        would draw the same latents and label noise. Replica 0 (the only one on one
        device) draws what `keras.random` would.
        """
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = self.seed_generator.next()
        seed += tf.cast(tf.stack([0, replica]), seed.dtype)
        return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)  # int32 for XLA

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        latent = tf.random.stateless_normal(
            (batch_size, self.config.latent_dim), self.replica_seed()
        )
        fake_images = tf.cast(self.generator(latent, training=True), tf.float32)
        images = tf.concat([fake_images, tf.cast(real_images, tf.float32)], axis=0)
        # The document's labels: generated = 1, real = 0 (or label_smoothing), plus noise.
        labels = tf.concat(
            [tf.ones((batch_size, 1)), tf.fill((batch_size, 1), self.config.label_smoothing)],
            axis=0,
        )
        flip = tf.random.stateless_uniform(tf.shape(labels), self.replica_seed())
        labels = tf.where(flip < self.config.flip_labels, 1.0 - labels, labels)
        labels += self.config.label_noise * tf.random.stateless_uniform(
            tf.shape(labels), self.replica_seed()
        )

        with tf.GradientTape() as tape:
            predictions = self.discriminator(images, training=True)
            d_losses = self.bce(labels, predictions)
            # Divided by the global batch, so replicas' gradients sum to the mean under
            # any tf.distribute strategy (a plain mean on one device).
            d_loss = tf.nn.compute_average_loss(d_losses)
            # The identity unless the optimizer is a LossScaleOptimizer (fp16).
            scaled = self.d_optimizer.scale_loss(d_loss)
        gradients = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_variables))

        # The generator learns to make D say "real" (0); D's weights stay fixed here.
        latent = tf.random.stateless_normal(
            (batch_size, self.config.latent_dim), self.replica_seed()
        )
        with tf.GradientTape() as tape:
            judged = self.discriminator(self.generator(latent, training=True), training=True)
            g_losses = self.bce(tf.zeros((batch_size, 1)), judged)
            g_loss = tf.nn.compute_average_loss(g_losses)
            scaled = self.g_optimizer.scale_loss(g_loss)
        gradients = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(gradients, self.generator.trainable_variables))

        values = {
            "d_loss": tf.reduce_mean(d_losses),
            "g_loss": tf.reduce_mean(g_losses),
            "d_accuracy_real": tf.reduce_mean(tf.cast(predictions[batch_size:] < 0.5, tf.float32)),
            "d_accuracy_fake": tf.reduce_mean(tf.cast(predictions[:batch_size] >= 0.5, tf.float32)),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)  # "loss" follows d_loss and g_loss
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def to_uint8(images):
    """Generator output in [-1, 1] -> uint8 pixels."""
    return tf.cast(tf.clip_by_value((images + 1.0) * 127.5, 0.0, 255.0), tf.uint8)


class ImageGrid(keras.callbacks.Callback):
    """Saves `samples/epoch_NNN.png` from the same latent vectors at every epoch."""

    def __init__(self, folder, latent):
        super().__init__()
        self.folder = folder
        self.latent = latent

    def on_epoch_end(self, epoch, logs=None):
        images = to_uint8(self.model.generator(self.latent, training=False)).numpy()
        path = os.path.join(self.folder, f"epoch_{epoch:03d}.png")
        save_grid(path, images, title=f"epoch {epoch}")


class SaveNetworks(keras.callbacks.Callback):
    """Saves each network as `<name>.keras` after every epoch: what `--init-from RUN_DIR` reads."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        for network, file in NETWORKS.items():
            with atomic_path(os.path.join(self.folder, file)) as path:
                getattr(self.model, network).save(path)


def pixel_features(images):
    """8x8 average-pooled pixels in [-1, 1], flattened: 192 numbers per image."""
    images = np.asarray(images, dtype="float32")
    return images.reshape(len(images), 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(len(images), -1)


def kernel_distance(features_a, features_b):
    """Unbiased squared MMD with KID's cubic polynomial kernel (Binkowski et al., 2018)."""

    def kernel(a, b):
        return (a @ b.T / a.shape[1] + 1.0) ** 3

    m, n = len(features_a), len(features_b)
    k_aa, k_bb = kernel(features_a, features_a), kernel(features_b, features_b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * kernel(features_a, features_b).mean())


class PixelKID(keras.callbacks.Callback):
    """Logs `pixel_kid` each epoch: generated vs real images, lower is closer.

    A kernel inception distance computed on 8x8 pixel features instead of Inception
    features, so it needs no download; it sees colour and layout, not texture. It
    compares epochs of a run, and runs on the same data and --quality-samples.
    """

    def __init__(self, real_images, latent):
        super().__init__()
        self.real_features = pixel_features(real_images)
        self.latent = latent

    def on_epoch_end(self, epoch, logs=None):
        generated = self.model.generator.predict(self.latent, batch_size=100, verbose=0)
        if logs is not None:
            logs["pixel_kid"] = kernel_distance(self.real_features, pixel_features(generated))


def build_model(config):
    """The DCGAN of `config`, compiled with its two optimizers."""
    gan = DCGAN(build_generator(config), build_discriminator(config), config)
    gan.compile(
        d_optimizer=optimizer_from_config(config),
        g_optimizer=optimizer_from_config(config, config.generator_learning_rate),
        jit_compile=use_jit_compile(config.jit_compile, XLA_HELPS_ON_CPU),
    )
    return gan


def search_space(hp):
    """002 §7.3's order: learning rates first, then batch size, then the GAN's regularisers."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-4, 2e-3, sampling="log"),
        "generator_learning_rate": hp.Float("generator_learning_rate", 1e-4, 2e-3, sampling="log"),
        "batch_size": hp.Choice("batch_size", [16, 20, 32]),
        "dropout": hp.Float("dropout", 0.2, 0.5, step=0.1),
        "label_noise": hp.Float("label_noise", 0.0, 0.2, step=0.05),
    }


def load_data(config):
    """The training images (uint8, shuffled from the seed), their counts, the files skipped.

    CIFAR-10's chosen class (002 §6: the frogs), or under `--data images` every picture
    under `--data-dir`, whatever its size or mode, as 32x32 RGB (`--class` then does not
    apply); a file that cannot be decoded is skipped and named.
    """
    skipped = []
    if config.data == "images":
        images, skipped = load_pictures(
            config.data_dir, 32, config.seed, config.max_examples, config.max_pixels
        )
        counts = {"train": {"pictures": len(images)}}
        if skipped:
            named = ", ".join(f"{s['file']} ({s['error']})" for s in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            print(f"skipped {len(skipped)} file(s) that are not readable pictures: {named}{more}")
    else:
        images, labels = load_cifar10(
            config.data,
            config.data_dir,
            parse_class(config.image_class),
            config.seed,
            config.max_examples,
        )
        present = class_counts(labels, CLASS_NAMES)
        counts = {"train": {name: count for name, count in present.items() if count}}
    if len(images) < config.batch_size:
        raise DataError(f"only {len(images)} images, fewer than one batch of {config.batch_size}")
    print(f"classes: {describe_class_counts(counts)}")
    return images, counts, skipped


def fit_arguments(config, images):
    """`fit` arguments shared by a run and a search trial: batches in [-1, 1], the score."""
    dataset = epoch_batches(
        images,
        config.batch_size,
        config.seed,
        drop_remainder=True,
        map_fn=lambda batch: tf.cast(batch, tf.float32) / 127.5 - 1.0,
    )
    quality_latent = np.random.default_rng(config.seed + 1).normal(
        size=(config.quality_samples, config.latent_dim)
    )
    real_sample = images[: config.quality_samples].astype("float32") / 127.5 - 1.0
    return {
        "x": dataset,
        "callbacks": [
            dataset.epoch_order,  # first: each epoch's order, and where a resume starts
            *fine_tuning(config, parts=NETWORKS),  # --init-from RUN_DIR: start from its pair
            keras.callbacks.TerminateOnNaN(),  # reads "loss" = d_loss + g_loss
            PixelKID(real_sample, quality_latent.astype("float32")),
        ],
    }


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    # bfloat16: the step twice as fast on AMD's AVX512-BF16, 4x on AMX (docs/speed.md).
    set_mixed_precision(config.mixed_precision, BF16_HELPS_ON_CPU)
    images, counts, skipped = load_data(config)
    # --tune (scored by pixel_kid) and --lr-find run here instead of the training below;
    # --learning-rate auto runs the LR range test and returns the config it chose.
    arguments_of = partial(fit_arguments, images=images)
    config = run_mode(RECIPE, config, build_model, search_space, arguments_of, strategy, run)
    if config is None:
        return

    with strategy.scope():
        gan = build_model(config)
    arguments = arguments_of(config)
    grid_latent = np.random.default_rng(config.seed).normal(
        size=(config.num_samples, config.latent_dim)
    )
    gradients = gradient_health(
        config,
        run,
        watch={
            "discriminator": (gan.d_optimizer, gan.discriminator),
            "generator": (gan.g_optimizer, gan.generator),
        },
    )
    gan.fit(
        arguments["x"],
        epochs=config.epochs,
        callbacks=[
            *arguments["callbacks"],  # before the history, which records pixel_kid
            *learning_rate_schedule(
                config,
                [
                    (gan.d_optimizer, config.learning_rate),
                    (gan.g_optimizer, config.generator_learning_rate),
                ],
            ),
            EpochStats(len(images)),
            *gradients,
            ImageGrid(os.path.join(run.dir, "samples"), grid_latent.astype("float32")),
            SaveNetworks(run.dir),
            HistoryCSV(os.path.join(run.dir, "history.csv")),
            TensorBoard(os.path.join(run.dir, "logs")),
            backup_and_restore(config, run, arguments["x"], gradients),  # last: resumes exactly
        ],
        verbose=config.fit_verbosity(),  # a progress bar on a terminal, else a line per epoch
    )

    # Export the generator for TF Serving, and record the run. The scores come from
    # history.csv, which also holds the epochs before a resume.
    if config.export:
        generator = gan.generator

        def serve(latent):
            return {"images": to_uint8(tf.cast(generator(latent, training=False), tf.float32))}

        signature = [tf.TensorSpec([None, config.latent_dim], tf.float32, name="latent")]
        export_dir = chief_or_temporary(config.export_dir or f"saved_models/{RECIPE}", strategy)
        print("exported:", export_for_serving(export_dir, serve, signature, [generator]))
    history = pd.read_csv(os.path.join(run.dir, "history.csv"))
    scores = list(history["pixel_kid"]) if "pixel_kid" in history else [float("nan")]
    finish_run(
        run,
        curves=("d_loss", "g_loss", "pixel_kid"),
        data=config.data,
        train_examples=len(images),
        class_counts=counts,
        skipped_files=skipped,
        final_pixel_kid=scores[-1],
        best_pixel_kid=min(scores),
        mixed_precision=computed_policy(gan.generator),
    )


if __name__ == "__main__":
    cli.run(main)
