"""Raw review text to the documents' integer sequences, inside TensorFlow.

The documents feed `imdb.load_data(num_words=10000)` through `pad_sequences(maxlen=500)`,
which pads and truncates at the *front*. `TextVectorization` pads at the end, and an RNN
that reads hundreds of padding steps after a review forgets it (the document's
SimpleRNN scored 0.5 on such input), so `texts_to_ids` pads at the front as
`pad_sequences` does, in graph ops that also run inside the exported model.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import keras

from tfkit.data.order import Balance, epoch_batches
from tfkit.errors import DataError


def adapt_vectorizer(texts, max_tokens=10_000, batch_size=1024, ngrams=None):
    """A `TextVectorization` layer adapted on `texts`, keeping the `max_tokens` commonest words
    (with `ngrams`, word n-grams up to that length as well)."""
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode="int", ragged=True, ngrams=ngrams
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size))
    if vectorizer.vocabulary_size() <= 2:  # "" and "[UNK]": TensorFlow would fail reading
        raise DataError(
            f"the {len(texts)} training texts hold no words (punctuation and spaces are left "
            "out): check the text column (--text-column)"
        )
    return vectorizer


def texts_to_ids(vectorizer, texts, sequence_length):
    """Token ids of shape `(batch, sequence_length)`, pre-padded and pre-truncated.

    Same result as `keras.utils.pad_sequences(ids, maxlen=sequence_length)`: the last
    `sequence_length` tokens are kept and zeros go in front.
    """
    return pad_in_front(vectorizer(texts), sequence_length)


def pad_in_front(ragged, sequence_length):
    """Rows of a `tf.RaggedTensor` as `(rows, sequence_length)`: each row's last
    `sequence_length` values, zeros in front, as `pad_sequences` pads."""
    backwards = tf.reverse(ragged, axis=[1])
    padded_backwards = backwards.to_tensor(shape=[None, sequence_length])
    return tf.reverse(padded_backwards, axis=[1])


def token_ids(vectorizer, texts, sequence_length, batch_size=2048):
    """Each text's last `sequence_length` token ids, unpadded: a `tf.RaggedTensor` of int32
    rows. Memory in proportion to the words present, not texts x `sequence_length` (a
    million short texts as a padded 500-wide array took 2 GB); the pipeline pads each
    batch in front (`batched_datasets`)."""
    return ragged_in_batches(
        lambda batch: vectorizer(batch)[:, -sequence_length:], texts, batch_size
    )


def vectorize(vectorizer, texts, sequence_length, batch_size=2048):
    """`texts_to_ids` over a whole numpy array of texts, as one int32 array: the
    document's `pad_sequences` output."""
    ragged = token_ids(vectorizer, texts, sequence_length, batch_size)
    return pad_in_front(ragged, sequence_length).numpy()


def ragged_in_batches(rows_of, texts, batch_size=2048):
    """`rows_of(batch)` (a `tf.RaggedTensor` of ids per text) over a numpy array of texts,
    `batch_size` texts at a time, joined into one `tf.RaggedTensor` of int32 rows."""
    values, lengths = [np.zeros(0, dtype="int32")], [np.zeros(0, dtype="int64")]
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(list(texts[start : start + batch_size]), dtype=tf.string)
        rows = rows_of(batch)
        values.append(rows.flat_values.numpy().astype("int32"))
        lengths.append(rows.row_lengths().numpy())
    return tf.RaggedTensor.from_row_lengths(np.concatenate(values), np.concatenate(lengths))


def imdb_text_datasets(config, run=None):
    """IMDB as the text recipes train on it, from a `ClassifierConfig` with text fields.

    Reads the texts (`text_splits`, which leaves them for the run's baseline), adapts the
    vectorizer on the training text (`config.max_features` words) or, under
    `--init-from`, takes the source model's vocabulary (`text_vectorizer`), turns every
    split into `config.max_len` token ids once, and batches them into the
    `(train, val, test)` pipelines.

    Returns:
        `(splits, vectorizer, (train, val, test))`: `splits` holds the token ids (for
        search trials to re-batch without vectorizing again) and the texts, which
        k-fold vectorizes fold by fold (`text_ids`); `val` is None under
        `--retrain-best` and `--kfold`.
    """
    splits = text_splits(config, run)
    ids, vectorizer = text_ids(config, splits, run.dir if run else None)
    if config.init_from:
        tokens = ids.train[0].flat_values.numpy()
        unknown = float((tokens == 1).mean()) if tokens.size else 0.0
        print(
            f"vocabulary: {vectorizer.vocabulary_size()} words from {config.init_from}; "
            f"{unknown:.1%} of the training words here are not among them and read as [UNK]"
        )
    datasets = batched_datasets(
        ids, config.batch_size, config.seed, config.resample, sequence_length=config.max_len
    )
    return ids, vectorizer, datasets


def text_splits(config, run=None):
    """The labelled texts `--data` names, split (`load_texts`).

    They are left in `run.baseline_data` for the run's linear baseline
    (`tfkit.baseline.train_baseline`). Under `--retrain-best` and `--kfold` the
    validation texts then join the training ones.
    """
    splits = load_texts(config)
    print(f"classes: {splits.describe()}")
    if run is not None:
        run.baseline_data = ("text", splits)
    if config.retrain_best or config.kfold:  # the final model learns from all of them
        splits = splits.with_validation_in_training()
    return splits


def text_ids(config, splits, run_dir=None, ngrams=None, to_ids=token_ids):
    """`splits` of texts as ids, by a vectorizer fitted on their training texts.

    The vectorizer is `text_vectorizer`'s (its vocabulary goes to `run_dir`); every
    split is turned into ids by `to_ids(vectorizer, texts, config.max_len)` (`token_ids`,
    or `tfkit.data.ngrams.vectorize_ngrams`). The ids keep the texts (`raw`) and this
    preparation (`prepare(fold, fold_dir)`): k-fold prepares each fold from its own
    training texts, so a word seen only in a fold's validation part is not in its
    vocabulary, as it would not be for a model that never saw those texts.

    Returns:
        `(ids, vectorizer)`: `Splits` of ids, the vectorizer of the whole training split.
    """
    vectorizer = text_vectorizer(config, splits.train[0], run_dir, ngrams=ngrams)
    ids = vectorize_splits(splits, vectorizer, config.max_len, to_ids)

    def prepare(fold, fold_dir=None):
        return text_ids(config, fold, fold_dir, ngrams, to_ids)[0]

    return dataclasses.replace(ids, raw=splits, prepare=prepare), vectorizer


def text_vectorizer(config, texts, run_dir=None, ngrams=None):
    """A `TextVectorization` of `config.max_features` words (and `ngrams`-grams) for `texts`.

    Adapted on `texts`, or under `--init-from` the source model's vocabulary (words it
    never saw read as `[UNK]`). The vocabulary goes to `run_dir/vocabulary.txt` once, for
    a later fine-tuning.

    Raises:
        UsageError: the source's vocabulary is larger than `--max-features`.
    """
    from tfkit.errors import UsageError
    from tfkit.files import write_text
    from tfkit.finetune import VOCABULARY_FILE, vocabulary_path

    if config.init_from:
        vocabulary = read_vocabulary(vocabulary_path(config.init_from))
        if len(vocabulary) > config.max_features:
            raise UsageError(
                f"--init-from {config.init_from}: its vocabulary has {len(vocabulary)} words, "
                f"more than --max-features {config.max_features}; give the flags it was trained "
                "with (its run's config.json)"
            )
        vectorizer = vectorizer_from_vocabulary(vocabulary, config.max_features, ngrams)
    else:
        vectorizer = adapt_vectorizer(texts, config.max_features, ngrams=ngrams)
    saved = os.path.join(run_dir, VOCABULARY_FILE) if run_dir else None
    if saved and not os.path.exists(saved):  # a resumed run's is the same; never rewritten
        write_text(saved, "\n".join(vectorizer.get_vocabulary()) + "\n")
    return vectorizer


def load_texts(config):
    """The labelled texts `--data` names, split: IMDB (tfds, synthetic, an aclImdb/ copy),
    a tree of class folders (dir) or a table (csv), with the class names in order."""
    from tfkit.data.imdb import load_imdb
    from tfkit.data.splits import split_and_cap
    from tfkit.data.texts import read_tables

    if config.data != "csv":
        return load_imdb(
            config.data, config.data_dir, config.seed, config.validation_split, config.max_examples
        )
    train, test, class_names, dropped = read_tables(
        config.data_dir, config.text_column, config.label_column
    )
    if any(dropped.values()):
        counts = ", ".join(f"{split} {count}" for split, count in dropped.items())
        print(f"dropped {sum(dropped.values())} row(s) without a text or a label ({counts})")
    return split_and_cap(
        train,
        test,
        "csv",
        config.validation_split,
        config.seed,
        config.max_examples,
        class_names=class_names,
        dropped_rows=dropped,
    )


def read_vocabulary(path):
    """The words of a `vocabulary.txt`, one per line, in id order (padding and [UNK] first)."""
    with open(path, encoding="utf-8") as file:
        return file.read().split("\n")[:-1]


def vectorizer_from_vocabulary(vocabulary, max_tokens, ngrams=None):
    """A `TextVectorization` layer with a fixed `vocabulary`, as `adapt_vectorizer` makes one."""
    return keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode="int", ragged=True, vocabulary=vocabulary, ngrams=ngrams
    )


def text_fit_arguments(config, splits, features=None):
    """`model.fit` arguments at `config`'s batch size from splits of ids, for the modes.

    A search trial, the LR range test and the capacity check each train with these
    (`tfkit.modes`), adding the callbacks of their own. `features` as in
    `batched_datasets`.
    """
    from tfkit.classifier import classifier_fit_arguments

    # Without `features` the ids are the model's input: `config.max_len` of them.
    sequence_length = None if features else config.max_len
    train, val, _ = batched_datasets(
        splits, config.batch_size, config.seed, config.resample, features, sequence_length
    )
    return classifier_fit_arguments(config, splits, train, val)


def vectorize_splits(splits, vectorizer, sequence_length, to_ids=token_ids):
    """`splits` with every text turned into its last `sequence_length` token ids (by
    `to_ids`, as `token_ids` does), labels unchanged."""

    def ids(split):
        return to_ids(vectorizer, split[0], sequence_length), split[1]

    return dataclasses.replace(
        splits, train=ids(splits.train), val=ids(splits.val), test=ids(splits.test)
    )


def batched_datasets(
    splits, batch_size, seed, resample=None, features=None, sequence_length=None
):
    """Batched `tf.data` pipelines of `(token ids, label)` for train, validation and test.

    The training split comes in a new order every epoch, a function of `seed` and the
    epoch (`tfkit.data.order`), so a resumed run trains on the same batches; with
    `resample` ("over" or "under") each epoch holds every class equally often. Labels
    have shape `(batch, 1)`, float32 for two classes, `(batch,)` int32 class ids for
    more; validation is None when the split is empty. Ids held as a `tf.RaggedTensor`
    (`token_ids`, `tfkit.data.ngrams`) are padded per batch: in front to
    `sequence_length` (a sequence model's fixed input), or at the end to the batch's
    longest row. `features`, when given, turns each batch of ids into the model's inputs
    (e.g. `tfkit.data.ngrams.tf_idf`).
    """
    ragged = isinstance(splits.train[0], tf.RaggedTensor)

    def labels_of(split):
        if len(splits.class_names) > 2:  # sparse categorical cross-entropy: class ids
            return np.asarray(split[1], dtype="int32")
        return np.asarray(split[1], dtype="float32").reshape(-1, 1)

    def model_inputs(ids, labels):
        if isinstance(ids, tf.RaggedTensor):
            if sequence_length:
                ids = pad_in_front(ids, sequence_length)
            else:
                ids = ids.to_tensor(default_value=0)
        return (features(ids) if features else ids), labels

    def pipeline(split):
        dataset = tf.data.Dataset.from_tensor_slices((split[0], labels_of(split)))
        dataset = dataset.batch(batch_size)
        if features or ragged:
            dataset = dataset.map(model_inputs)
        return dataset.prefetch(tf.data.AUTOTUNE)

    ids, rows = splits.train[0], None
    if ragged:  # the epoch's order picks rows by number; each batch gathers its rows
        ids, rows = np.arange(int(ids.nrows())), ids

    def train_inputs(batch):
        ids, labels = batch
        return model_inputs(tf.gather(rows, ids) if ragged else ids, labels)

    train = epoch_batches(
        (ids, labels_of(splits.train)),
        batch_size,
        seed,
        balance=Balance(splits.train[1], resample) if resample else None,
        map_fn=train_inputs if features or ragged else None,
    )
    val = pipeline(splits.val) if len(splits.val[1]) else None
    return train, val, pipeline(splits.test)


def text_datasets(splits, vectorizer, sequence_length, batch_size, seed):
    """Batched `(token ids, label)` pipelines from splits of raw text.

    Texts are turned into ids once, up front, so training reads ready integer batches
    (the same data the document's `pad_sequences` produced).
    """
    ids = vectorize_splits(splits, vectorizer, sequence_length)
    return batched_datasets(ids, batch_size, seed, sequence_length=sequence_length)
