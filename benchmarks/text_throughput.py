"""Training examples/s: each text recipe against the document's plain Keras script.

Both train the same model on the same integer data (synthetic reviews turned into
the document's 500-token sequences) at the same batch size for the same steps, in
this one process. The plain script is 002's code as Keras 3 runs it: numpy arrays
into `fit`, float32, `metrics=['acc']`, no callbacks. tfkit is the recipe as it
trains: its `tf.data` pipeline, its six metrics, its callbacks, and what
`--mixed-precision auto` and `--jit-compile auto` pick on this machine.

Timings on a shared CPU come in quanta and drift with the neighbours' load: the two
sides alternate epoch by epoch, and each reports its best epoch after the first
(which includes tracing and XLA compilation). Prints one JSON line per recipe.

    python benchmarks/text_throughput.py                 # every recipe
    python benchmarks/text_throughput.py --recipes conv1d --explore   # every precision/XLA pair
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfkit.quiet  # noqa: F401,E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from recipes import imdb_conv1d, imdb_rnn  # noqa: E402
from tfkit.callbacks import standard_callbacks  # noqa: E402
from tfkit.data.imdb import synthetic_reviews  # noqa: E402
from tfkit.data.splits import Splits  # noqa: E402
from tfkit.data.text import adapt_vectorizer, text_datasets, vectorize  # noqa: E402
from tfkit.hardware import set_mixed_precision, use_jit_compile  # noqa: E402
from tfkit.metrics import binary_metrics  # noqa: E402
from tfkit.optim import get_optimizer  # noqa: E402
from tfkit.runs import Run  # noqa: E402

RECIPES = {
    # name: (recipe module, config overrides, batch size of the document)
    "conv1d": (imdb_conv1d, {}, 128),
    "simple_rnn": (imdb_rnn, {"cell": "simple_rnn"}, 512),
    "lstm": (imdb_rnn, {"cell": "lstm"}, 512),
    "gru": (imdb_rnn, {"cell": "gru"}, 512),
    "cnn_lstm": (imdb_rnn, {"cell": "cnn_lstm"}, 512),
}


def document_model(name):
    """The model exactly as 002 writes it (Keras 3 spelling), for the plain script."""
    if name == "conv1d":  # 002 §2.2
        model = keras.Sequential()
        model.add(layers.Embedding(10000, 128))
        model.add(layers.Conv1D(32, 7, activation="relu"))
        model.add(layers.MaxPooling1D(5))
        model.add(layers.Conv1D(32, 7, activation="relu"))
        model.add(layers.GlobalMaxPooling1D())
        model.add(layers.Dense(1, activation="sigmoid"))
        model.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=1e-4),
            loss="binary_crossentropy",
            metrics=["acc"],
        )
        return model
    cell = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    model = keras.Sequential()  # 002 §3.6
    model.add(layers.Embedding(10000, 32))
    if name == "cnn_lstm":  # 002 §4.4.2 has no code; the recipe's front
        model.add(layers.Conv1D(32, 7, activation="relu"))
        model.add(layers.MaxPooling1D(5))
        model.add(layers.LSTM(32))
    else:
        model.add(cell[name](32))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    return model


class EpochTimes(keras.callbacks.Callback):
    """Seconds of every epoch it sees, across several `fit` calls."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def plain_script(name):
    """The document's compiled model, under float32."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    return document_model(name)


def tfkit_recipe(name, splits, batch_size, precision="auto", jit="auto"):
    """The recipe's compiled model, data pipeline and callbacks, as its main() sets them up."""
    recipe, overrides, _ = RECIPES[name]
    config = recipe.Config(
        batch_size=batch_size, mixed_precision=precision, jit_compile=jit, **overrides
    )
    keras.utils.set_random_seed(0)
    bf16_helps, xla_helps = recipe.BF16_HELPS_ON_CPU, recipe.XLA_HELPS_ON_CPU
    if recipe is imdb_rnn:
        bf16_helps, xla_helps = bf16_helps[config.cell], xla_helps[config.cell]
    policy = set_mixed_precision(config.mixed_precision, bf16_helps)
    jit_compile = use_jit_compile(config.jit_compile, xla_helps)
    vectorizer = adapt_vectorizer(splits.train[0], config.max_features)
    train, _, _ = text_datasets(splits, vectorizer, config.max_len, batch_size, config.seed)
    model = recipe.build_model(config)
    model.compile(
        optimizer=get_optimizer(config.optimizer, config.learning_rate),
        loss="binary_crossentropy",
        metrics=binary_metrics(),
        jit_compile=jit_compile,
    )
    keras.mixed_precision.set_global_policy("float32")  # the built model keeps its own
    return model, train, config, policy, jit_compile


def compare(name, splits, ids, targets, rounds, precision="auto", jit="auto"):
    """Alternates one epoch of each side, `rounds` times, so both meet the same CPU load."""
    batch_size = RECIPES[name][2]
    plain = plain_script(name)
    model, train, config, policy, jit_compile = tfkit_recipe(
        name, splits, batch_size, precision, jit
    )
    plain_times, tfkit_times = EpochTimes(), EpochTimes()
    for _ in range(rounds):
        plain_history = plain.fit(
            ids, targets, batch_size=batch_size, epochs=1, verbose=0, callbacks=[plain_times]
        )
        # A fresh run folder each round: the backup of the last would say "done".
        with tempfile.TemporaryDirectory() as run_dir:
            run = Run(name, run_dir, config, tf.distribute.get_strategy())
            # No validation set: both sides time training alone.
            callbacks = standard_callbacks(config, run, train, splits.with_validation_in_training())
            for callback in callbacks:
                if hasattr(callback, "verbose"):
                    callback.verbose = 0  # stdout carries only the JSON lines
            tfkit_history = model.fit(
                train, epochs=1, verbose=0, callbacks=[tfkit_times] + callbacks
            )
    # The first epoch of each side includes tracing and compilation.
    plain_rate = len(targets) / min(plain_times.seconds[1:])
    tfkit_rate = len(targets) / min(tfkit_times.seconds[1:])
    return {
        "recipe": name,
        "batch_size": batch_size,
        "examples": len(targets),
        "epochs_each": rounds,
        "plain_examples_per_second": round(plain_rate, 1),
        "tfkit_examples_per_second": round(tfkit_rate, 1),
        "ratio": round(tfkit_rate / plain_rate, 2),
        "tfkit_policy": policy,
        "tfkit_jit_compile": jit_compile,
        "flags": {"mixed_precision": precision, "jit_compile": jit},
        "plain_final_train_accuracy": round(float(plain_history.history["acc"][-1]), 3),
        "tfkit_final_train_accuracy": round(float(tfkit_history.history["accuracy"][-1]), 3),
        "data": "synthetic",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--examples", type=int, default=4096, help="training examples per epoch")
    parser.add_argument(
        "--epochs",
        type=int,
        default=6,
        help="epochs per side, alternating; the best after the first counts",
    )
    parser.add_argument("--explore", action="store_true", help="also time every precision/XLA pair")
    args = parser.parse_args()

    texts, labels = synthetic_reviews(args.examples, seed=0)
    tiny = (texts[:1], labels[:1])  # validation and test are not timed
    splits = Splits(train=(texts, labels), val=tiny, test=tiny, source="synthetic")
    vectorizer = adapt_vectorizer(splits.train[0])
    ids = vectorize(vectorizer, splits.train[0], 500)
    targets = splits.train[1].astype("float32")

    for name in args.recipes:
        pairs = [("auto", "auto")]
        if args.explore:
            pairs += [(p, j) for p in ("off", "bf16") for j in ("off", "on")]
        for precision, jit in pairs:
            print(
                json.dumps(compare(name, splits, ids, targets, args.epochs, precision, jit)),
                flush=True,
            )


if __name__ == "__main__":
    main()
