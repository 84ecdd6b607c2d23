"""
Title: A linear classifier on the pixels: the baseline for pictures
Source: 004 (start simple, establish a baseline); 002 §1.7 (softmax regression)
Description: Pictures (32x32) -> pixels scaled to [0, 1] -> one Dense layer -> your classes.
Data: CIFAR-10, all 10 classes (tfds, its binary copy, synthetic); yours: --data images --data-dir FOLDER (FOLDER/<class>/* or FOLDER/train/<class>/*)
Run: python -m recipes.pixels_linear --data synthetic --epochs 3 --max-examples 500

The cheapest model that learns anything from pictures, trained and served as the
ResNet is (`recipes.cifar10_resnet`: same data, same splits, same export, which reads
encoded pictures): the reference a deeper model must beat, and the first model
`python -m tfkit train` serves. It is the model of tfkit's pixel baseline
(`tfkit.baseline`), so this recipe runs with `--no-baseline` unless asked.
"""

import tfkit.quiet  # noqa: F401  (first: hides TensorFlow's C++ start-up lines)

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

from tfkit import cli
from tfkit.callbacks import standard_callbacks
from tfkit.classifier import classifier_fit_arguments, classifier_loss, classifier_output
from tfkit.config import DATA_SOURCES, OPTIMIZERS, ClassifierConfig, flag
from tfkit.data.pixels import IMAGE_SIZE, picture_datasets, picture_splits
from tfkit.distribute import chief_or_temporary, get_strategy
from tfkit.export import export_image_classifier
from tfkit.hardware import set_mixed_precision, use_jit_compile
from tfkit.metrics import classifier_metrics, evaluate_classifier
from tfkit.modes import run_mode
from tfkit.optim import class_weight_from_labels, optimizer_from_config
from tfkit.runs import finish_run, record_in_config, start_run
from tfkit.session import computed_policy
from tfkit.tune import best_config

RECIPE = "pixels_linear"


@dataclass
class Config(ClassifierConfig):
    data: str = flag(
        "tfds",
        "CIFAR-10 from tfds, dir (a cifar-10-batches-bin/ copy) or synthetic; images: class "
        "folders of pictures at --data-dir",
        (*DATA_SOURCES, "images"),
    )
    baseline: bool = flag(False, "also train tfkit's pixel baseline: this very model, twice")
    optimizer: str = flag("adam", "Keras optimizer name", OPTIMIZERS)
    learning_rate: float | str = flag(1e-3, "Adam's default, as tfkit's baseline; auto: --lr-find's")
    batch_size: int = flag(32, "as tfkit's baseline")
    epochs: int = flag(30, "a linear model stops early: the validation loss stops falling")
    early_stopping_patience: int = flag(2, "as tfkit's baseline")


def build_model(config):
    """Pixels (0-255) scaled to [0, 1], flattened, and one Dense layer: a linear model."""
    num_classes = len(config.class_names)
    model = keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
            layers.Rescaling(1 / 255),
            layers.Flatten(),
            layers.Dropout(config.dropout),  # --dropout; 0 (the default) is a no-op
            classifier_output(num_classes),  # one sigmoid for two classes, else a softmax
        ],
        name=RECIPE,
    )
    model.compile(
        optimizer=optimizer_from_config(config),
        loss=classifier_loss(num_classes),
        metrics=classifier_metrics(num_classes),
        jit_compile=use_jit_compile(config.jit_compile),
    )
    return model


def search_space(hp):
    """002 §7.3's order: the learning rate first, then the batch size."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [32, 64, 128]),
    }


def fit_arguments(config, splits):
    """`model.fit` arguments at `config`'s batch size: for a search trial, k-fold, the LR test."""
    train, val, _ = picture_datasets(config, splits)
    return classifier_fit_arguments(config, splits, train, val)


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    set_mixed_precision(config.mixed_precision)

    # Data: CIFAR-10 or your class folders, as the ResNet reads them.
    splits, skipped = picture_splits(config, run)
    config = record_in_config(run, config, class_names=splits.class_names)
    # --tune, --lr-find, --overfit-batches, --kfold and --learning-rate auto: tfkit.modes.
    config = run_mode(RECIPE, config, build_model, search_space,
                      partial(fit_arguments, splits=splits), strategy, run, splits)  # fmt: skip
    if config is None:
        return

    # Model and training; a killed or stopped run resumes where it was.
    with strategy.scope():
        model = build_model(config)
    model.summary()
    train, val, test = picture_datasets(config, splits)
    model.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        class_weight=class_weight_from_labels(splits.train[1], config.class_weight),
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
