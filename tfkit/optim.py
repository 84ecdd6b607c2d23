"""Optimizers with the documents' gradient clipping, LR schedules, and class weights."""

import math

import numpy as np
import keras

from tfkit.config import parse_class_weight
from tfkit.keras_patches import clip_after_all_reduce, sum_duplicate_rows


def get_optimizer(name, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """A Keras optimizer by name, clipping the gradient of the whole global batch.

    Keras clips each replica's gradient before they are summed; here clipping comes
    after the sum, so a clip means the same on one device and under any strategy. An
    Embedding's gradient rows are summed into a dense gradient first, as tf.keras 2 did
    (`tfkit.keras_patches.sum_duplicate_rows`).

    Args:
        name: a Keras optimizer name such as "rmsprop" or "adam".
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        clipnorm: clip each gradient tensor to this L2 norm (000: 1.0; RNNs 5..15).
        clipvalue: clip each gradient element to [-clipvalue, clipvalue] (000: 0.5).
        global_clipnorm: clip all gradients together so their joint norm is at most this.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
    for key, value in clipping.items():
        if value is not None and value <= 0:
            raise ValueError(
                f"{key} must be > 0 (Keras treats 0 as 'no clipping'). Received: {key}={value}"
            )
    config = {"learning_rate": learning_rate}
    config.update({key: value for key, value in clipping.items() if value is not None})
    optimizer = sum_duplicate_rows(keras.optimizers.get({"class_name": name, "config": config}))
    clipped = any(value is not None for value in clipping.values())
    return clip_after_all_reduce(optimizer) if clipped else optimizer


def optimizer_from_config(config, learning_rate=None):
    """`get_optimizer` from a config's `--optimizer`, `--learning-rate` and clipping flags.

    Args:
        config: a `TrainConfig`.
        learning_rate: overrides `config.learning_rate` (the GAN's generator has its own).
    """
    return get_optimizer(
        config.optimizer,
        config.learning_rate if learning_rate is None else learning_rate,
        clipnorm=config.clipnorm,
        clipvalue=config.clipvalue,
        global_clipnorm=config.global_clipnorm,
    )


def scheduled_learning_rate(config, step, steps_per_epoch, base):
    """The learning rate at `step` (counted from 0) under `--lr-schedule` and `--warmup-epochs`.

    Warm-up raises it linearly to `base` over the first `warmup_epochs`; then `step`
    multiplies it by `lr_decay_factor` every `lr_decay_epochs`, `exponential` does so
    smoothly, and `cosine` lowers it along half a cosine to `min_learning_rate` at the
    last step of `config.epochs`. Once `--freeze`'s layers unfreeze
    (`--unfreeze-after-epochs`), it is divided by `--fine-tune-lr-factor`.
    """
    rate = _scheduled(config, step, steps_per_epoch, base)
    # The schedule sets the LR before every step, so it would undo a division made once
    # at the unfreeze (what `FineTune` does without a schedule): it divides itself. A
    # function of the step alone, which a backup restores, so a resume stays exact.
    unfreeze = getattr(config, "unfreeze_after_epochs", 0)  # classifiers only
    if getattr(config, "freeze", None) and unfreeze and step >= unfreeze * steps_per_epoch:
        rate /= config.fine_tune_lr_factor
    return rate


def _scheduled(config, step, steps_per_epoch, base):
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return base * (step + 1) / warmup
    since = step - warmup
    decay = config.lr_decay_epochs * steps_per_epoch
    if config.lr_schedule == "step":
        return base * config.lr_decay_factor ** math.floor(since / decay)
    if config.lr_schedule == "exponential":
        return base * config.lr_decay_factor ** (since / decay)
    if config.lr_schedule == "cosine":
        span = max(1.0, config.epochs * steps_per_epoch - warmup - 1)
        progress = min(1.0, since / span)
        low = config.min_learning_rate
        return low + (base - low) * 0.5 * (1 + math.cos(math.pi * progress))
    return base


def class_weight_from_labels(labels, spec="balanced"):
    """Class weights for `fit(class_weight=...)` from `--class-weight`.

    Args:
        labels: integer labels of the training split.
        spec: "none", "balanced" (n_samples / (n_classes * count), as scikit-learn's
            "balanced"), or explicit "0=1,1=3".

    Returns:
        None, or a dict {label: weight}.
    """
    parsed = parse_class_weight(spec)
    if parsed != "balanced":
        return parsed
    classes, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    weights = len(labels) / (len(classes) * counts)
    return {int(label): float(weight) for label, weight in zip(classes, weights)}
