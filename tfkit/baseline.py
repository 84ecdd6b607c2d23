"""The baseline every classifier run is measured against: one Dense layer on TF-IDF of word
1- and 2-grams (texts) or on the pixels (pictures).

"Establish a baseline before anything deep": on small corpora a bag of n-grams is hard to
beat (Deep Learning with Python, ch. 11: while examples / mean words per example is under
about 1,500, it beats a sequence model). It is trained on the run's own splits, plain by
design (no class weights, no resampling: it is the reference, not a contender), and
scored on validation and test with the run's own metrics
(`tfkit.metrics.evaluate_classifier`; its `predicted` ids, each example's answer, the
verdict pairs with the model's to test whether the model trails by chance). It is a step
of the run (`train_baseline`, called by `tfkit.modes.run_mode` before a training, never
for `--tune`, `--lr-find` or `--overfit-batches`), and it is written to `baseline.json`,
so a resumed run reads it back instead of training it again.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf
import keras

from tfkit.classifier import classifier_loss, classifier_output
from tfkit.data.ngrams import inverse_document_frequency, vectorize_ngrams
from tfkit.data.text import adapt_vectorizer
from tfkit.files import write_json
from tfkit.metrics import classifier_metrics, evaluate_classifier
from tfkit.session import new_session

BASELINE_FILE = "baseline.json"
MODEL = "TF-IDF 1-2-grams (20,000) + linear"
MAX_TOKENS = 20_000
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
# Early stopping ends it once the validation loss moves less than MIN_DELTA: within a
# few epochs on 25,000 reviews. A few hundred texts make a few steps an epoch, so the
# epochs are capped by steps instead: at least 10 epochs, at most MAX_STEPS steps.
MAX_STEPS = 1_500
MIN_EPOCHS, MAX_EPOCHS = 10, 100
MIN_DELTA = 1e-3
PATIENCE = 2
STEPS_PER_EXECUTION = 32


def epoch_budget(train_examples):
    """The baseline's epoch cap: MAX_STEPS steps, within [MIN_EPOCHS, MAX_EPOCHS] epochs."""
    steps = max(1, -(-train_examples // BATCH_SIZE))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, -(-MAX_STEPS // steps))))


def train_baseline(run, config):
    """The run's baseline, on the splits its data step left in `run.baseline_data`.

    Trained unless `--no-baseline` (read from `baseline.json` where the run has one,
    whatever that flag says on a resume), put in
    `run.results["baseline"]` (metrics.json) and printed. The run then goes on in a new
    Keras session, seeded again and with its precision policy, whether the baseline was
    trained or read: a resumed run builds its model from the very state a new one does.
    """
    if run.baseline_data is None:
        return None
    if not config.baseline and not os.path.exists(os.path.join(run.dir, BASELINE_FILE)):
        return None  # --no-baseline; a baseline this run already trained is still read
    kind, splits = run.baseline_data
    train = {"text": text_baseline, "pixels": pixel_baseline}[kind]
    run.results["baseline"] = baseline = train(splits, config.seed, run.dir)
    print(describe(baseline))
    new_session(config.seed, config.deterministic)
    return baseline


def text_baseline(splits, seed, run_dir=None):
    """Trains and scores the linear model on TF-IDF of the word 1-2-grams of raw-text `splits`.

    Returns:
        `{"model": ..., "val": {...}, "test": {...}, "seconds": ...}`, the metrics named
        as the run's own; read from `run_dir/baseline.json` when a run wrote it before.
    """

    def train_and_score():
        vectorizer = adapt_vectorizer(splits.train[0], MAX_TOKENS, ngrams=2)
        train_ids = vectorize_ngrams(vectorizer, splits.train[0], None)
        idf = inverse_document_frequency(train_ids, vectorizer.vocabulary_size())

        def rows(split):
            if split is splits.train:
                return _tf_idf_rows(train_ids, idf)
            return _tf_idf_rows(vectorize_ngrams(vectorizer, split[0], None), idf)

        return MODEL, [keras.Input((len(idf),), sparse=True)], rows

    return _baseline(splits, seed, run_dir, "text", train_and_score)


def pixel_baseline(splits, seed, run_dir=None):
    """Trains and scores a linear model on the pixels (scaled to [0, 1]) of picture `splits`.

    Returns:
        As `text_baseline`.
    """

    def train_and_score():
        shape = splits.train[0].shape[1:]
        inputs = [keras.Input(shape), keras.layers.Rescaling(1 / 255), keras.layers.Flatten()]
        return f"pixels ({'x'.join(map(str, shape))}) + linear", inputs, lambda split: split[0]

    return _baseline(splits, seed, run_dir, "pixels", train_and_score)


def describe(baseline):
    """The baseline's one line for the run's log: its model, cost and scores."""
    split = "validation" if baseline["val"] else "test"
    scores = baseline["val"] or baseline["test"]
    return (
        f"baseline ({baseline['model']}, {baseline['seconds']:.1f} s): {split} accuracy "
        f"{scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}"
    )


def _baseline(splits, seed, run_dir, kind, features):
    """Reads `run_dir/baseline.json`, or trains the linear model on `features()` and writes it.

    `features()` gives the model's name, its input layers and a function from a split
    (`splits.train`, `.val` or `.test`) to what those layers take; `kind` ("text" or
    "pixels") says what it reads.
    """
    saved = os.path.join(run_dir, BASELINE_FILE) if run_dir else None
    if saved and os.path.exists(saved):
        with open(saved) as file:
            return json.load(file)
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    name, inputs, to_rows = features()
    result = {"kind": kind, **_train_and_score(splits, seed, name, inputs, to_rows)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    if saved:
        write_json(saved, result)
    return result


def _train_and_score(splits, seed, name, inputs, to_rows):
    num_classes = len(splits.class_names)
    train, val, test = (
        _dataset(to_rows(split), split[1], num_classes, seed if split is splits.train else None)
        for split in (splits.train, splits.val, splits.test)
    )
    model = keras.Sequential(
        [
            *inputs,
            classifier_output(num_classes),
        ],
        name="baseline",
    )
    # Trained on its loss alone, in steps of 32 a call: steps of a few milliseconds, of
    # which the metrics' updates and Keras's per-step dispatch were more than half.
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=classifier_loss(num_classes),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss" if val else "loss",
        patience=PATIENCE,
        min_delta=MIN_DELTA,
        restore_best_weights=True,
    )
    epochs = epoch_budget(len(splits.train[1]))
    model.fit(train, validation_data=val, epochs=epochs, callbacks=[stop], verbose=0)
    # Scored with the run's metrics, a step a call (tracing 32 steps of `predict` took
    # longer than running them).
    model.compile(loss=classifier_loss(num_classes), metrics=classifier_metrics(num_classes))
    return {
        "model": name,
        "val": evaluate_classifier(model, val, splits.class_names) if val else None,
        "test": evaluate_classifier(model, test, splits.class_names),
    }


def _tf_idf_rows(ids, idf):
    """A `tf.SparseTensor` of TF-IDF rows from rows of n-gram ids (`tfkit.data.ngrams`):
    each id's count times its IDF, as `tfkit.data.ngrams.tf_idf` weighs them, kept sparse
    (dense rows are 80 KB each)."""
    starts, values = ids.row_splits.numpy(), ids.flat_values.numpy().astype("int64")
    rows = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    cells, counts = np.unique(rows * len(idf) + values, return_counts=True)
    columns = cells % len(idf)
    return tf.SparseTensor(
        np.stack([cells // len(idf), columns], axis=1),
        (counts * idf[columns]).astype("float32"),
        dense_shape=[len(starts) - 1, len(idf)],
    )


def _dataset(rows, labels, num_classes, shuffle_seed=None):
    """`(rows, labels)` batches (labels float (n, 1) for two classes); None if empty."""
    if len(labels) == 0:
        return None
    labels = np.asarray(labels, dtype="float32" if num_classes == 2 else "int32")
    if num_classes == 2:
        labels = labels.reshape(-1, 1)
    dataset = tf.data.Dataset.from_tensor_slices((rows, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
    return dataset.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
