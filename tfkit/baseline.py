"""The baseline every text classifier run is measured against: TF-IDF of word 1- and 2-grams
and one Dense layer.

"Establish a baseline before anything deep": on small corpora a bag of n-grams is hard to
beat (Deep Learning with Python, ch. 11: while examples / mean words per example is under
about 1,500, it beats a sequence model). It is trained on the run's own splits, plain by
design (no class weights, no resampling: it is the reference, not a contender), after the
data is read and before the model trains, and scored on validation and test with the
run's own metrics (`tfkit.metrics.evaluate_classifier`). It is written to
`baseline.json`, so a resumed run reads it back instead of training it again.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf
import keras

from tfkit.files import write_json
from tfkit.metrics import classifier_metrics, evaluate_classifier

BASELINE_FILE = "baseline.json"
MODEL = "TF-IDF 1-2-grams (20,000) + linear"
MAX_TOKENS = 20_000
BATCH_SIZE = 32
# Early stopping ends it: within a few epochs on 25,000 reviews, later on a few hundred
# texts (a few steps an epoch), once the validation loss moves less than MIN_DELTA.
MAX_EPOCHS = 100
MIN_DELTA = 1e-3
PATIENCE = 2


def text_baseline(splits, seed, run_dir=None):
    """Trains and scores the baseline on raw-text `splits` (`tfkit.data.splits.Splits`).

    Returns:
        `{"model": ..., "val": {...}, "test": {...}, "seconds": ...}`, the metrics named
        as the run's own; read from `run_dir/baseline.json` when a run wrote it before.
    """
    saved = os.path.join(run_dir, BASELINE_FILE) if run_dir else None
    if saved and os.path.exists(saved):
        with open(saved) as file:
            return json.load(file)
    start = time.perf_counter()
    try:
        result = _train_and_score(splits, seed)
    finally:
        # The run goes on as if the baseline had never been: the random state as seeded,
        # and layer names as a new process gives them (`--freeze LAYER` reads them).
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
    result["seconds"] = round(time.perf_counter() - start, 2)
    if saved:
        write_json(saved, result)
    return result


def _train_and_score(splits, seed):
    keras.utils.set_random_seed(seed)
    vectorizer = keras.layers.TextVectorization(
        max_tokens=MAX_TOKENS, ngrams=2, output_mode="tf_idf"
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(splits.train[0])).batch(1024))
    num_classes = len(splits.class_names)
    train, val, test = (
        _dataset(vectorizer, split, num_classes, shuffle_seed=seed if split is splits.train else None)
        for split in (splits.train, splits.val, splits.test)
    )
    model = keras.Sequential(
        [
            keras.Input((vectorizer.vocabulary_size(),), sparse=True),
            keras.layers.Dense(1, activation="sigmoid")
            if num_classes == 2
            else keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="baseline",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy",
        metrics=classifier_metrics(num_classes),
    )
    model.fit(
        train,
        validation_data=val,
        epochs=MAX_EPOCHS,
        callbacks=[
            keras.callbacks.EarlyStopping(
                patience=PATIENCE, min_delta=MIN_DELTA, restore_best_weights=True
            )
        ],
        verbose=0,
    )
    return {
        "model": MODEL,
        "val": evaluate_classifier(model, val, splits.class_names) if val else None,
        "test": evaluate_classifier(model, test, splits.class_names),
    }


def _dataset(vectorizer, split, num_classes, shuffle_seed=None):
    """`(sparse TF-IDF rows, labels)` batches; vectorised once, here, not every epoch."""
    texts, labels = split
    if len(labels) == 0:
        return None
    # Dense TF-IDF rows are 80 KB each: made a chunk at a time, kept sparse. (The
    # layer's own sparse=True fails on this stack: GatherNd "innermost dimension".)
    rows = tf.sparse.concat(
        0,
        [
            tf.sparse.from_dense(vectorizer(tf.constant(list(texts[start : start + 512]))))
            for start in range(0, len(texts), 512)
        ],
    )
    labels = np.asarray(labels, dtype="float32" if num_classes == 2 else "int32")
    if num_classes == 2:
        labels = labels.reshape(-1, 1)
    dataset = tf.data.Dataset.from_tensor_slices((rows, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
    return dataset.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
