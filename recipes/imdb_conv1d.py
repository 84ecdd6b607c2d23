"""
Title: IMDB sentiment with a 1D convnet
Source: 002 §2.2 (Keras 搭建 CNN)
Description: Raw review text -> Embedding -> Conv1D/MaxPooling1D/Conv1D -> positive or negative (or your own texts' classes).
Data: IMDB reviews (tfds, an aclImdb/ copy, synthetic); yours: --data csv (a table), --data dir (train/<class>/*.txt), any number of classes
Run: python -m recipes.imdb_conv1d --data synthetic --epochs 3

The document's model, trained on the real IMDB reviews by default. The review text is
turned into the document's integer sequences (10000 words, 500 tokens, padded at the
front as `pad_sequences` does) by a `TextVectorization` layer that is exported with
the model, so the served model reads raw text.
"""

import tfkit.quiet  # noqa: F401  (first: hides TensorFlow's C++ start-up lines)

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

from tfkit import cli
from tfkit.callbacks import standard_callbacks
from tfkit.classifier import classifier_loss, classifier_output
from tfkit.config import ClassifierConfig, check_at_least, flag
from tfkit.data.text import imdb_text_datasets, text_fit_arguments
from tfkit.distribute import chief_or_temporary, get_strategy
from tfkit.export import export_text_classifier
from tfkit.hardware import set_mixed_precision, use_jit_compile
from tfkit.modes import run_mode
from tfkit.metrics import classifier_metrics, evaluate_classifier
from tfkit.optim import class_weight_from_labels, optimizer_from_config
from tfkit.runs import finish_run, record_in_config, start_run
from tfkit.session import computed_policy
from tfkit.tune import best_config

RECIPE = "imdb_conv1d"
# Measured on CPU (benchmarks/text_throughput.py --explore, the two sides alternating
# epochs): bfloat16 1.31-1.37x the plain script, float32 about 1.0x; XLA made it slower.
BF16_HELPS_ON_CPU = True
XLA_HELPS_ON_CPU = False


@dataclass
class Config(ClassifierConfig):
    max_features: int = flag(10_000, "vocabulary size (002 §2.2: max_features = 10000)")
    max_len: int = flag(500, "tokens kept per review, the last ones (002 §2.2: max_len = 500)")
    embedding_dim: int = flag(128, "embedding width (002 §2.2: Embedding(max_features, 128))")
    filters: int = flag(32, "filters per Conv1D (002 §2.2: Conv1D(32, 7))")
    learning_rate: float | str = flag(1e-4, "002 §2.2: RMSprop(lr=1e-4); auto: --lr-find's")
    batch_size: int = flag(128, "002 §2.2: batch_size=128")

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, 1, "max_features", "max_len", "embedding_dim", "filters")
        if self.max_len < 43:  # two Conv1D(7) and a MaxPooling1D(5) need 43 tokens
            raise ValueError(
                f"max_len must be >= 43 for this model. Received: max_len={self.max_len}"
            )


def build_model(config):
    """002 §2.2's model on token ids of shape (batch, max_len), compiled."""
    l2 = keras.regularizers.L2(config.l2) if config.l2 else None
    num_classes = len(config.class_names)
    model = keras.Sequential(
        [
            keras.Input(shape=(config.max_len,), dtype="int32"),
            layers.Embedding(config.max_features, config.embedding_dim),
            # 500-7+1 = 494 steps, pooled by 5 to 98, then 98-7+1 = 92.
            layers.Conv1D(config.filters, 7, activation="relu", kernel_regularizer=l2),
            layers.MaxPooling1D(5),
            layers.Conv1D(config.filters, 7, activation="relu", kernel_regularizer=l2),
            layers.GlobalMaxPooling1D(),
            layers.Dropout(config.dropout),  # --dropout; 0 (the document's model) is a no-op
            # The document's Dense(1) has no activation, yet its binary_crossentropy reads
            # the output as a probability: sigmoid added; more than two classes (your own
            # data): softmax over them. float32 under mixed precision.
            classifier_output(num_classes),
        ],
        name=RECIPE,
    )
    model.compile(
        optimizer=optimizer_from_config(config),
        loss=classifier_loss(num_classes),
        metrics=classifier_metrics(num_classes),
        jit_compile=use_jit_compile(config.jit_compile, XLA_HELPS_ON_CPU),
    )
    return model


def search_space(hp):
    """002 §7.3's order: learning rate; then batch size and optimizer; then dropout, L2, width."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-5, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [64, 128, 256]),
        "optimizer": hp.Choice("optimizer", ["rmsprop", "adam"]),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
        "l2": hp.Choice("l2", [0.0, 1e-5, 1e-4]),
        "filters": hp.Choice("filters", [16, 32, 64]),
    }


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    set_mixed_precision(config.mixed_precision, BF16_HELPS_ON_CPU)

    # Data: IMDB or your own texts (--data csv|dir), 20% of the training split held out
    # for validation; the vectorizer is adapted on the training text (or comes with
    # --init-from's model); the test split is used once, at the end. The classes are the
    # data's: two keep the document's sigmoid output, more get a softmax.
    splits, vectorizer, (train, val, test) = imdb_text_datasets(config, run)
    config = record_in_config(run, config, class_names=splits.class_names)
    # --tune, --lr-find and --overfit-batches run here instead of the training below;
    # --learning-rate auto runs the LR range test and returns the config it chose;
    # --kfold trains on each fold, then returns the config of the final training.
    fit_arguments = partial(text_fit_arguments, splits=splits)
    config = run_mode(
        RECIPE, config, build_model, search_space, fit_arguments, strategy, run, splits
    )
    if config is None:
        return

    # Model and training; a killed or stopped run resumes where it was.
    with strategy.scope():
        model = build_model(config)
    model.summary()
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
        exported = export_text_classifier(
            export_dir, model, vectorizer, config.max_len, config.class_names
        )
        print("exported:", exported)
    finish_run(run, splits, val=val_metrics, test=test_metrics,
               mixed_precision=computed_policy(model))  # what the layers computed in


if __name__ == "__main__":
    cli.run(main)
