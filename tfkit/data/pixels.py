"""The data of the 32x32 picture classifiers (`cifar10_resnet`, `pixels_linear`): CIFAR-10
or your class folders, split into train, validation and test, and batched."""

from functools import partial

import numpy as np
import tensorflow as tf

from tfkit.data.cifar10 import CLASS_NAMES, load_cifar10
from tfkit.data.order import Balance, epoch_batches
from tfkit.data.pictures import load_picture_classes
from tfkit.data.splits import split_and_cap

IMAGE_SIZE = 32


def picture_splits(config, run):
    """The pictures as uint8 (n, 32, 32, 3) splits, and the files that could not be read.

    CIFAR-10 keeps its own test split; class folders without `test/` give a seeded,
    stratified fifth of the pictures to it. `--validation-split` of the training split
    is held out for validation. The splits are left in `run.baseline_data`: unless
    `--no-baseline`, a linear model on the pixels is trained on them before the model
    (`tfkit.baseline`).
    """
    skipped = []
    if config.data == "images":
        train, test, class_names, skipped = load_picture_classes(
            config.data_dir, IMAGE_SIZE, config.max_pixels
        )
        if skipped:
            named = ", ".join(f"{s['file']} ({s['error']})" for s in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            print(f"skipped {len(skipped)} file(s) that are not readable pictures: {named}{more}")
    else:
        cap = config.max_examples and 2 * config.max_examples  # enough for validation too
        load = partial(load_cifar10, config.data, config.data_dir, None, config.seed)
        train, test, class_names = load(cap), load(config.max_examples, split="test"), CLASS_NAMES
    splits = split_and_cap(
        train, test, config.data, config.validation_split, config.seed, config.max_examples,
        class_names=class_names,
    )  # fmt: skip
    print(f"classes: {splits.describe()}")
    run.baseline_data = ("pixels", splits)  # tfkit.modes trains the baseline on them
    if config.retrain_best or config.kfold:  # the final model learns from all of them
        splits = splits.with_validation_in_training()
    return splits, skipped


def picture_datasets(config, splits, to_batch=None):
    """`(train, val, test)` pipelines of float pixels (0-255) and labels.

    Training batches come in the seeded order of `tfkit.data.order` (resampled with
    `--oversample`/`--undersample`), each `(images, labels, example indices)` made into
    what `fit` takes by `to_batch` (default: float pixels and labels); labels are (n, 1)
    floats for two classes, class ids for more. Validation is None when its split is empty.
    """
    binary = len(splits.class_names) == 2

    def arrays(split):
        labels = np.asarray(split[1], dtype="float32" if binary else "int32")
        return split[0], labels.reshape(-1, 1) if binary else labels

    def evaluation(split):
        if not len(split[1]):
            return None
        dataset = tf.data.Dataset.from_tensor_slices(arrays(split)).batch(config.batch_size)
        return dataset.map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(tf.data.AUTOTUNE)

    to_batch = to_batch or (lambda images, labels, indices: (tf.cast(images, tf.float32), labels))
    train = epoch_batches(
        (*arrays(splits.train), np.arange(len(splits.train[1]))),
        config.batch_size,
        config.seed,
        map_fn=lambda batch: to_batch(*batch),
        balance=Balance(splits.train[1], config.resample) if config.resample else None,
    )
    return train, evaluation(splits.val), evaluation(splits.test)
