"""
Title: IMDB sentiment with recurrent networks: SimpleRNN, LSTM, GRU, CNN-LSTM
Source: 002 §3.6 (Keras 搭建 RNN) and §4.4 (RNN 扩展改进)
Description: Raw review text -> Embedding -> SimpleRNN/LSTM/GRU (optionally bidirectional, or after a Conv1D front) -> sigmoid (softmax for more than two classes of your own).
Data: IMDB reviews (tfds, an aclImdb/ copy, synthetic); yours: --data csv (a table), --data dir (train/<class>/*.txt), any number of classes
Run: python -m recipes.imdb_rnn --cell lstm --data synthetic --epochs 3

`--cell simple_rnn` and `--cell lstm` are the document's model (its log: val_acc 0.80-0.82
after 2 epochs on IMDB). `--cell gru`, `--bidirectional` and `--cell cnn_lstm` are the
variants of 002 §4.4; the CNN-LSTM puts a Conv1D/MaxPooling1D front before the LSTM to
shorten the sequence, as 002 §3.5 suggests ("use a 1D CNN before an RNN").
Reviews are padded at the front, as the document's `pad_sequences` did, so the RNN
reads the review last instead of forgetting it behind hundreds of padding steps.
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

RECIPE = "imdb_rnn"
CELLS = ("simple_rnn", "lstm", "gru", "cnn_lstm")
# What made each cell faster than the plain script on CPU (benchmarks/text_throughput.py
# --explore, the two sides alternating epochs): XLA for SimpleRNN 1.35x, LSTM 1.17x and
# GRU 1.38x, though it slowed the CNN-LSTM (0.86x); bfloat16 for the CNN-LSTM, whose
# convolution front gains 1.15x, and for no other cell. bfloat16 *with* XLA collapsed
# every cell (0.03-0.4x), so `--jit-compile auto` never combines them.
XLA_HELPS_ON_CPU = {"simple_rnn": True, "lstm": True, "gru": True, "cnn_lstm": False}
BF16_HELPS_ON_CPU = {"simple_rnn": False, "lstm": False, "gru": False, "cnn_lstm": True}


@dataclass
class Config(ClassifierConfig):
    cell: str = flag("simple_rnn", "recurrent layer (002 §3.6: SimpleRNN, or LSTM)", CELLS)
    bidirectional: bool = flag(False, "wrap the recurrent layer in Bidirectional (002 §4.4.1)")
    max_features: int = flag(10_000, "vocabulary size (002 §3.6: max_features = 10000)")
    max_len: int = flag(500, "tokens kept per review, the last ones (002 §3.6: maxlen = 500)")
    embedding_dim: int = flag(32, "embedding width (002 §3.6: Embedding(max_features, 32))")
    units: int = flag(32, "recurrent units (002 §3.6: SimpleRNN(32))")
    batch_size: int = flag(512, "002 §3.6: batch_size=512 in fit")

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, 1, "max_features", "max_len", "embedding_dim", "units")
        if self.cell == "cnn_lstm" and self.max_len < 11:  # Conv1D(7) then MaxPooling1D(5)
            raise ValueError(
                f"max_len must be >= 11 for cnn_lstm. Received: max_len={self.max_len}"
            )


def build_model(config):
    """002 §3.6's model (or a §4.4 variant) on token ids of shape (batch, max_len), compiled."""
    l2 = keras.regularizers.L2(config.l2) if config.l2 else None
    num_classes = len(config.class_names)
    recurrent = {
        "simple_rnn": layers.SimpleRNN,
        "lstm": layers.LSTM,
        "gru": layers.GRU,
        "cnn_lstm": layers.LSTM,
    }[config.cell](config.units, kernel_regularizer=l2)
    if config.bidirectional:
        recurrent = layers.Bidirectional(recurrent)
    front = []
    if config.cell == "cnn_lstm":  # 002 §4.4.2: the CNN extracts features, the LSTM reads them
        front = [
            layers.Conv1D(32, 7, activation="relu", kernel_regularizer=l2),  # 500-7+1 = 494
            layers.MaxPooling1D(5),  # 494/5 = 98 steps for the LSTM instead of 500
        ]
    model = keras.Sequential(
        [
            keras.Input(shape=(config.max_len,), dtype="int32"),
            layers.Embedding(config.max_features, config.embedding_dim),
            *front,
            recurrent,  # 002 §3.6: SimpleRNN(32), or LSTM(32)
            layers.Dropout(config.dropout),  # --dropout; 0 (the document's model) is a no-op
            # The document's Dense(1) has no activation, yet its binary_crossentropy reads
            # the output as a probability: sigmoid added; more than two classes (your own
            # data): softmax over them. float32 under mixed precision.
            classifier_output(num_classes),
        ],
        name=f"{RECIPE}_{config.cell}",
    )
    model.compile(
        optimizer=optimizer_from_config(config),
        loss=classifier_loss(num_classes),
        metrics=classifier_metrics(num_classes),
        jit_compile=use_jit_compile(config.jit_compile, XLA_HELPS_ON_CPU[config.cell]),
    )
    return model


def search_space(hp):
    """002 §7.3's order: learning rate; then batch size and optimizer; then dropout, L2, width."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [128, 256, 512]),
        "optimizer": hp.Choice("optimizer", ["rmsprop", "adam"]),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
        "l2": hp.Choice("l2", [0.0, 1e-5, 1e-4]),
        "units": hp.Choice("units", [16, 32, 64]),
    }


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    set_mixed_precision(config.mixed_precision, BF16_HELPS_ON_CPU[config.cell])

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
