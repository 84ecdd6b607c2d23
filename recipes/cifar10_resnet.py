"""
Title: Image classification with a ResNet for 32x32 pictures
Source: 003 (ResNet depth, CIFAR-10 augmentation, mix-up); 001 (batch normalisation, 1x1 convolutions); 004 (He initialisation, flips and crops)
Description: Pictures -> ResNet-20 (3 stages of 16/32/64 filters, BN before each ReLU, He init) -> your classes.
Data: CIFAR-10, all 10 classes (tfds, its binary copy, synthetic); yours: --data images --data-dir FOLDER (FOLDER/<class>/* or FOLDER/train/<class>/*)
Run: python -m recipes.cifar10_resnet --data synthetic --epochs 3 --max-examples 500

He et al. 2016 (§4.2) built the CIFAR-10 ResNets from 6n+2 layers: a 3x3 convolution,
three stages of n residual blocks of two 3x3 convolutions (16, 32, then 64 filters; each
new stage halves the map), global average pooling and the classifier. ResNet-20 (n = 3)
has 0.27 M weights. The pictures are augmented only while training, by Keras layers
inside the model that act only when called with `training=True`: their random state is
part of the model, so a resumed run continues it exactly, and the export is not
affected. The exported model reads encoded pictures (`image_bytes`) and decodes, crops
and resizes them with the ops training used.
"""

import tfkit.quiet  # noqa: F401  (first: hides TensorFlow's C++ start-up lines)

from dataclasses import dataclass
from functools import partial

import tensorflow as tf
import keras
from keras import layers

from tfkit import cli
from tfkit.callbacks import standard_callbacks
from tfkit.classifier import classifier_fit_arguments, classifier_loss, classifier_output
from tfkit.config import DATA_SOURCES, OPTIMIZERS, ClassifierConfig, check_at_least, flag
from tfkit.data.pixels import IMAGE_SIZE, picture_datasets, picture_splits
from tfkit.distribute import chief_or_temporary, get_strategy
from tfkit.export import export_image_classifier
from tfkit.hardware import set_mixed_precision, use_jit_compile
from tfkit.layers import BatchNormalization
from tfkit.metrics import classifier_metrics, evaluate_classifier
from tfkit.modes import run_mode
from tfkit.optim import class_weight_from_labels, optimizer_from_config
from tfkit.runs import finish_run, record_in_config, start_run
from tfkit.session import computed_policy
from tfkit.tune import best_config

RECIPE = "cifar10_resnet"
AUGMENTATIONS = ("flip", "crop", "color")
# What --mixed-precision auto and --jit-compile auto pick on a CPU (tfkit.hardware).
BF16_HELPS_ON_CPU = False
XLA_HELPS_ON_CPU = False


@dataclass
class Config(ClassifierConfig):
    data: str = flag(
        "tfds",
        "CIFAR-10 from tfds, dir (a cifar-10-batches-bin/ copy) or synthetic; images: class "
        "folders of pictures at --data-dir",
        (*DATA_SOURCES, "images"),
    )
    depth: int = flag(20, "6n+2 layers (He et al. 2016 §4.2: 20, 32, 44, 56, 110)")
    filters: int = flag(16, "filters of the first stage; the next two double them (16/32/64)")
    bn_momentum: float = flag(
        0.9, "BatchNormalization's moving averages (Keras's 0.99 lags on small folders)"
    )
    augment: str = flag(
        "auto",
        "while training only: a comma list of flip, crop, color, or none; auto: flip,crop on "
        "CIFAR-10, crop on your pictures (a flip can change a digit's or a letter's class)",
    )
    mixup: float = flag(0.0, "003 mix-up: blend pairs of a batch by Beta(ALPHA, ALPHA); 0: off")
    optimizer: str = flag("adam", "Keras optimizer name", OPTIMIZERS)
    learning_rate: float | str = flag(1e-3, "Adam's default; auto: --lr-find's")
    batch_size: int = flag(32, "BN needs steps: batch 128 left 1,442 pictures at 0.26 accuracy")
    l2: float = flag(1e-4, "weight decay on every kernel (He et al. 2016 §4.2: 1e-4)")
    epochs: int = flag(15, "15 epochs took 1,442 digit pictures to 0.97 (issue 18)")

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, 8, "depth")
        check_at_least(self, 1, "filters")
        check_at_least(self, 0, "mixup")
        if (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32...). Received: depth={self.depth}")
        if not 0 < self.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be in (0, 1). Received: {self.bn_momentum}")
        parse_augment(self.augment, self.data)  # raises ValueError when malformed

    @property
    def augmentations(self):
        """The augmentations `--augment` names, in the order they apply."""
        return parse_augment(self.augment, self.data)


def parse_augment(text, data):
    """`--augment` as a tuple of names from `AUGMENTATIONS`; "auto" depends on the data."""
    if text == "auto":  # a flip can change the class of your own pictures (digits, letters)
        return ("crop",) if data == "images" else ("flip", "crop")
    names = tuple(name.strip() for name in text.split(","))
    if names == ("none",):
        return ()
    if any(name not in AUGMENTATIONS for name in names) or len(set(names)) < len(names):
        raise ValueError(
            f"augment must be a comma list of {', '.join(AUGMENTATIONS)}, or none or auto. "
            f"Received: augment={text!r}"
        )
    return names


def mix_up(images, labels, indices, alpha, seed, class_weight):
    """003's mix-up within a batch: picture i blended with picture n-1-i by λ ~ Beta(α, α).

    Each blend is learnt as both its labels, with sample weights 2λ and 2(1 - λ): the
    mix-up loss, while labels stay class ids for the metrics. n pictures give n/2 blends,
    each twice, so a step costs what it did. λ is drawn from the batch's example
    indices, which are a function of (seed, epoch, step): a resumed run draws the same.
    """
    count = tf.shape(images)[0]
    half = (count + 1) // 2
    key = tf.reduce_sum(indices * tf.range(1, tf.cast(count, tf.int64) + 1)) % (2**31 - 1)
    key = tf.stack([tf.constant(seed, tf.int64), key])
    gamma = tf.random.stateless_gamma([2, half], key, alpha)
    weight = gamma[0] / (gamma[0] + gamma[1])
    images = tf.cast(images, tf.float32)
    first, second = images[:half], tf.reverse(images, [0])[:half]
    shape = [-1, 1, 1, 1]
    blends = tf.reshape(weight, shape) * first + tf.reshape(1 - weight, shape) * second
    labels_a, labels_b = labels[:half], tf.reverse(labels, [0])[:half]
    ids = tf.reshape(tf.cast(tf.concat([labels_a, labels_b], 0), tf.int32), [-1])
    weights = 2 * tf.concat([weight, 1 - weight], 0) * tf.gather(class_weight, ids)
    return tf.concat([blends, blends], 0), tf.concat([labels_a, labels_b], 0), weights


def datasets(config, splits):
    """`(train, val, test)` pipelines (`tfkit.data.pixels`), training batches mixed up with
    `--mixup`."""
    if not config.mixup:
        return picture_datasets(config, splits)
    # Class weights go into the sample weights mix-up makes.
    weights = class_weight_from_labels(splits.train[1], config.class_weight) or {}
    weights = [weights.get(i, 1.0) for i in range(len(splits.class_names))]
    mixing = partial(mix_up, alpha=config.mixup, seed=config.seed, class_weight=weights)
    return picture_datasets(config, splits, mixing)


def fit_arguments(config, splits):
    """`model.fit` arguments at `config`'s batch size: for a search trial, k-fold, the LR test."""
    train, val, _ = datasets(config, splits)
    arguments = classifier_fit_arguments(config, splits, train, val)
    if config.mixup:  # mix-up weighs its own blends (class weights in its sample weights)
        arguments["class_weight"] = None
    return arguments


def augmentation(config):
    """The `--augment` layers; they act only when the model is called with `training=True`."""
    exact = {"dtype": "float32"}  # under mixed precision too: pixel values stay exact
    chosen = {
        "flip": [layers.RandomFlip("horizontal", **exact)],
        # 003: pad 4 pixels with zeros and crop back to 32, i.e. shift by up to 4 pixels.
        "crop": [layers.RandomTranslation(4 / 32, 4 / 32, "constant", "nearest", **exact)],
        # 004: colour changes: brightness and contrast, each by up to 20%.
        "color": [layers.RandomBrightness(0.2, **exact), layers.RandomContrast(0.2, **exact)],
    }
    return [layer for name in config.augmentations for layer in chosen[name]]


def residual_block(x, filters, strides, conv, norm):
    """Two 3x3 convolutions, each batch-normalised before its ReLU (001), added to the input."""
    y = conv(filters, 3, strides=strides)(x)
    y = norm()(y)
    y = layers.ReLU()(y)
    y = conv(filters, 3)(y)
    y = norm()(y)
    if strides != 1 or x.shape[-1] != filters:  # a new stage: a 1x1 convolution (001) fits x
        x = norm()(conv(filters, 1, strides=strides)(x))
    return layers.ReLU()(layers.Add()([y, x]))


def build_model(config):
    """He et al. 2016 §4.2's ResNet of `config.depth` layers on 32x32 pixels (0-255), compiled."""
    l2 = keras.regularizers.L2(config.l2) if config.l2 else None
    # Biases would be cancelled by the batch normalisation after each convolution.
    conv = partial(layers.Conv2D, padding="same", use_bias=False, kernel_initializer="he_normal",
                   kernel_regularizer=l2)  # fmt: skip
    norm = partial(BatchNormalization, momentum=config.bn_momentum)  # Keras's, fused
    num_classes = len(config.class_names)
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    x = inputs
    for layer in augmentation(config):
        x = layer(x)
    x = layers.Rescaling(1 / 255)(x)
    x = conv(config.filters, 3)(x)
    x = norm()(x)
    x = layers.ReLU()(x)
    for stage in range(3):  # 32x32, 16x16, 8x8 maps; 16, 32, 64 filters
        for block in range((config.depth - 2) // 6):
            strides = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, config.filters * 2**stage, strides, conv, norm)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(config.dropout)(x)  # --dropout; 0 (the paper's model) is a no-op
    # Two classes: one sigmoid, as the other classifiers; more: a softmax. float32 always.
    outputs = classifier_output(num_classes)(x)
    model = keras.Model(inputs, outputs, name=RECIPE)
    model.compile(
        optimizer=optimizer_from_config(config),
        loss=classifier_loss(num_classes),
        metrics=classifier_metrics(num_classes),
        jit_compile=use_jit_compile(config.jit_compile, XLA_HELPS_ON_CPU),
    )
    return model


def search_space(hp):
    """002 §7.3's order: learning rate; then batch size and optimizer; then regularisers, width."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [32, 64, 128]),
        "optimizer": hp.Choice("optimizer", ["adam", "rmsprop"]),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
        "l2": hp.Choice("l2", [0.0, 1e-4, 5e-4]),
        "mixup": hp.Choice("mixup", [0.0, 0.2]),
        "filters": hp.Choice("filters", [16, 32]),
    }


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    set_mixed_precision(config.mixed_precision, BF16_HELPS_ON_CPU)

    # Data: CIFAR-10 or your class folders; the linear baseline trains on the same splits.
    splits, skipped = picture_splits(config, run)
    config = record_in_config(run, config, class_names=splits.class_names)
    print(f"augmentation while training: {', '.join(config.augmentations) or 'none'}"
          + (f"; mix-up alpha {config.mixup:g}" if config.mixup else ""))  # fmt: skip
    # --tune, --lr-find, --overfit-batches, --kfold and --learning-rate auto: tfkit.modes.
    config = run_mode(RECIPE, config, build_model, search_space,
                      partial(fit_arguments, splits=splits), strategy, run, splits)  # fmt: skip
    if config is None:
        return

    # Model and training; a killed or stopped run resumes where it was.
    with strategy.scope():
        model = build_model(config)
    model.summary()
    train, val, test = datasets(config, splits)
    model.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        # With --mix-up, the class weights are in the sample weights mix_up makes.
        class_weight=None if config.mixup else class_weight_from_labels(
            splits.train[1], config.class_weight
        ),
        callbacks=standard_callbacks(config, run, train, splits),
        verbose=config.fit_verbosity(),  # a progress bar on a terminal, else a line per epoch
    )

    # Evaluate on the validation and test splits, export for TF Serving, record the run.
    val_metrics = evaluate_classifier(model, val, config.class_names) if val else None
    test_metrics = evaluate_classifier(model, test, config.class_names)
    if config.export:
        export_dir = chief_or_temporary(config.export_dir or f"saved_models/{RECIPE}", strategy)
        exported = export_image_classifier(
            export_dir, model, config.class_names, IMAGE_SIZE, config.max_pixels
        )
        print("exported:", exported)
    finish_run(run, splits, val=val_metrics, test=test_metrics,
               mixed_precision=computed_policy(model), skipped_files=skipped)  # fmt: skip


if __name__ == "__main__":
    cli.run(main)
