"""Texts as bags of word n-grams weighted by TF-IDF, the input of `recipes.text_ngrams`.

`TextVectorization(ngrams=2, output_mode="tf_idf")` computed in two steps, so that the
text is read once per run and not every epoch:

1. once, up front: each text becomes the ids of its known words and word pairs
   (`TextVectorization(ngrams=2, output_mode="int")`), kept as a `tf.RaggedTensor`, each
   row as long as its text's n-grams: memory in proportion to the n-grams present, not
   texts x the longest (a padded 100,000 x 2,000 array peaked at 1.8 GB). The pipeline
   pads each batch to its longest row (`tfkit.data.text.batched_datasets`), so
   resampling, k-fold and exact resume apply as to the other text recipes' ids;
2. per batch, in the pipeline and in the exported model: the ids are counted and
   weighted by the inverse document frequency, `count * ln(1 + N / (1 + df))`, Keras's
   own TF-IDF formula (`tf_idf`).

Unlike Keras's layer, words and pairs outside the vocabulary are left out rather than
counted in one `[UNK]` column (they would fill most of each row's ids).
"""

import numpy as np
import tensorflow as tf

from tfkit.data.text import ragged_in_batches

PADDING, UNKNOWN = 0, 1  # the ids TextVectorization gives "" and "[UNK]"


def ngram_ids(vectorizer, texts, length):
    """The ids of each text's known n-grams, in reading order, padded or cut to `length`."""
    known = _known_ngrams(vectorizer, texts)
    return tf.cast(known.to_tensor(default_value=PADDING, shape=[None, length]), tf.int32)


def vectorize_ngrams(vectorizer, texts, max_length, batch_size=2048):
    """`ngram_ids` of a numpy array of texts without the padding: a `tf.RaggedTensor` of
    int32 rows, each of the text's first `max_length` known n-grams at most."""
    return ragged_in_batches(
        lambda batch: _known_ngrams(vectorizer, batch)[:, :max_length], texts, batch_size
    )


def _known_ngrams(vectorizer, texts):
    ids = vectorizer(texts)
    return tf.ragged.boolean_mask(ids, ids > UNKNOWN)


def inverse_document_frequency(ids, vocabulary_size, rows_per_step=100_000):
    """Keras's IDF, `ln(1 + N / (1 + df))`, of every id over the rows of `ids` (a
    `tf.RaggedTensor`; 0 for padding and unknown n-grams), as a float32 array of
    `vocabulary_size`. Counted `rows_per_step` rows at a time, in little memory."""
    starts, values = ids.row_splits.numpy(), ids.flat_values.numpy()
    documents = np.zeros(vocabulary_size, dtype="int64")
    for first in range(0, len(starts) - 1, rows_per_step):
        last = min(first + rows_per_step, len(starts) - 1)
        rows = np.repeat(np.arange(first, last), np.diff(starts[first : last + 1]))
        # Each (text, id) pair once: a text holding an n-gram twice is one document of it.
        pairs = np.unique(rows * vocabulary_size + values[starts[first] : starts[last]])
        documents += np.bincount(pairs % vocabulary_size, minlength=vocabulary_size)
    idf = np.log1p(int(ids.nrows()) / (1.0 + documents)).astype("float32")
    idf[[PADDING, UNKNOWN]] = 0.0
    return idf


def tf_idf(ids, idf, sublinear_tf=False, norm=None):
    """Rows of n-gram ids as TF-IDF vectors `[batch, len(idf)]`: each id's count times its IDF.

    As scikit-learn's `TfidfVectorizer` options of the same names: `sublinear_tf` counts
    1 + ln(count) for a count above 0; `norm="l2"` scales each row to unit length, so
    that a long text and a short one on the same subject weigh alike.
    """
    counts = tf.math.bincount(
        tf.cast(ids, tf.int32), minlength=len(idf), maxlength=len(idf), dtype=tf.float32, axis=-1
    )
    if sublinear_tf:
        counts = tf.where(counts > 0, 1.0 + tf.math.log(tf.maximum(counts, 1.0)), 0.0)
    weights = counts * tf.constant(idf)
    return tf.math.l2_normalize(weights, axis=-1) if norm == "l2" else weights
