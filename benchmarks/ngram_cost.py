"""What the bag of n-grams costs: the baseline every run trains, and an epoch of `text_ngrams`.

On the same synthetic reviews, in this one process:

- `baseline`: `tfkit.baseline.text_baseline` (adapt, vectorise, train with early stopping,
  score validation and test) on `--examples` training texts and on 2,000;
- `epoch`: an epoch of `recipes.text_ngrams` (n-gram ids read once, TF-IDF counted per
  batch) against an epoch of `recipes.imdb_conv1d`, each at its own default batch size,
  and against the plain Keras way of Deep Learning with Python (ch. 11), which maps
  `TextVectorization(output_mode="tf_idf")` over the raw texts in the `tf.data`
  pipeline, so the text is read again every epoch.

Timings on a shared CPU come in quanta: the sides alternate epoch by epoch and each
reports its best epoch after the first. Prints one JSON line per measurement.

    python benchmarks/ngram_cost.py --examples 25000
"""

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfkit.quiet  # noqa: F401,E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recipes import imdb_conv1d, text_ngrams  # noqa: E402
from tfkit.baseline import text_baseline  # noqa: E402
from tfkit.data.imdb import load_imdb  # noqa: E402
from tfkit.data.ngrams import inverse_document_frequency, tf_idf, vectorize_ngrams  # noqa: E402
from tfkit.data.text import adapt_vectorizer, batched_datasets, vectorize_splits  # noqa: E402


def reviews(count, seed=1337):
    """`count` synthetic training reviews, 20% of them held out for validation, and a test."""
    return load_imdb("synthetic", seed=seed, max_examples=count)


def measure_baseline(count):
    splits = reviews(count)
    result = text_baseline(splits, seed=1337)
    return {"measure": "baseline", "train_texts": len(splits.train[1]),
            "seconds": result["seconds"], "test_accuracy": round(result["test"]["accuracy"], 4)}  # fmt: skip


def ngram_side(splits):
    config = text_ngrams.Config(class_names=splits.class_names)
    vectorizer = adapt_vectorizer(splits.train[0], config.max_features, ngrams=config.ngrams)

    def ids(split):
        return vectorize_ngrams(vectorizer, split[0], config.max_len), split[1]

    started = time.perf_counter()
    id_splits = dataclasses.replace(splits, train=ids(splits.train), val=ids(splits.val),
                                    test=ids(splits.test))  # fmt: skip
    once = time.perf_counter() - started
    idf = inverse_document_frequency(id_splits.train[0], config.max_features)
    train, _, _ = batched_datasets(id_splits, config.batch_size, 1337,
                                   features=lambda batch: tf_idf(batch, idf))  # fmt: skip
    return text_ngrams.build_model(config), train, train.epoch_order, once


def conv1d_side(splits):
    config = imdb_conv1d.Config(class_names=splits.class_names)
    vectorizer = adapt_vectorizer(splits.train[0], config.max_features)
    train, _, _ = batched_datasets(vectorize_splits(splits, vectorizer, config.max_len),
                                   config.batch_size, 1337, sequence_length=config.max_len)  # fmt: skip
    return imdb_conv1d.build_model(config), train, train.epoch_order


def plain_side(splits):
    """Deep Learning with Python's way: the TF-IDF layer mapped over raw text every epoch."""
    vectorizer = keras.layers.TextVectorization(max_tokens=20_000, ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(splits.train[0])).batch(1024))
    labels = np.asarray(splits.train[1], "float32").reshape(-1, 1)
    train = (
        tf.data.Dataset.from_tensor_slices((list(splits.train[0]), labels))
        .shuffle(len(labels), seed=1337)
        .batch(32)
        .map(lambda texts, y: (vectorizer(texts), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model = keras.Sequential([
        keras.Input((20_000,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    return model, train


def measure_epochs(count, epochs):
    splits = reviews(count)
    ngram_model, ngram_train, order, once = ngram_side(splits)
    conv_model, conv_train, conv_order = conv1d_side(splits)
    plain_model, plain_train = plain_side(splits)
    sides = {
        "text_ngrams": (ngram_model, ngram_train, [order]),
        "imdb_conv1d": (conv_model, conv_train, [conv_order]),
        "plain_tf_idf_per_epoch": (plain_model, plain_train, []),
    }
    seconds = {name: [] for name in sides}
    for epoch in range(epochs):
        for name, (model, train, callbacks) in sides.items():
            started = time.perf_counter()
            model.fit(train, epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=callbacks)
            seconds[name].append(time.perf_counter() - started)
    texts = len(splits.train[1])
    for name, times in seconds.items():
        best = min(times[1:] or times)
        row = {"measure": "epoch", "recipe": name, "train_texts": texts,
               "best_epoch_seconds": round(best, 2), "examples_per_second": round(texts / best)}  # fmt: skip
        if name == "text_ngrams":
            row["reading_once_seconds"] = round(once, 2)
        print(json.dumps(row), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=25_000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    for count in (args.examples, 2_000):
        print(json.dumps(measure_baseline(count)), flush=True)
    measure_epochs(args.examples, args.epochs)


if __name__ == "__main__":
    main()
