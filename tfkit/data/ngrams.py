"""Texts as bags of word n-grams weighted by TF-IDF, the input of `recipes.text_ngrams`.

`TextVectorization(ngrams=2, output_mode="tf_idf")` computed in two steps, so that the
text is read once per run and not every epoch:

1. once, up front: each text becomes the ids of its known words and word pairs
   (`TextVectorization(ngrams=2, output_mode="int")`), kept as a padded int array like
   the other text recipes' token ids (so resampling, k-fold and exact resume apply);
2. per batch, in the pipeline and in the exported model: the ids are counted and
   weighted by the inverse document frequency, `count * ln(1 + N / (1 + df))`, Keras's
   own TF-IDF formula (`tf_idf`).

Unlike Keras's layer, words and pairs outside the vocabulary are left out rather than
counted in one `[UNK]` column (they would fill most of each row's ids).
"""

import numpy as np
import tensorflow as tf

PADDING, UNKNOWN = 0, 1  # the ids TextVectorization gives "" and "[UNK]"


def ngram_ids(vectorizer, texts, length):
    """The ids of each text's known n-grams, in reading order, padded or cut to `length`."""
    ids = vectorizer(texts)
    known = tf.ragged.boolean_mask(ids, ids > UNKNOWN)
    return tf.cast(known.to_tensor(default_value=PADDING, shape=[None, length]), tf.int32)


def vectorize_ngrams(vectorizer, texts, max_length, batch_size=2048):
    """`ngram_ids` of a numpy array of texts, as an int32 array as wide as the longest text
    needs, at most `max_length`."""
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size)
    rows = [
        ngram_ids(vectorizer, batch, max_length).numpy() for batch in dataset
    ] or [np.zeros((0, max_length), dtype="int32")]
    ids = np.concatenate(rows)
    width = int((ids > PADDING).sum(axis=1).max(initial=1))
    return np.ascontiguousarray(ids[:, :width])


def same_width(*arrays):
    """The id arrays padded with `PADDING` to the widest one's width (the splits are joined
    for k-fold and a final training)."""
    width = max(array.shape[1] for array in arrays)
    return [np.pad(array, ((0, 0), (0, width - array.shape[1]))) for array in arrays]


def inverse_document_frequency(ids, vocabulary_size):
    """Keras's IDF, `ln(1 + N / (1 + df))`, of every id over the rows of `ids` (0 for padding
    and unknown n-grams), as a float32 array of `vocabulary_size`."""
    documents = np.zeros(vocabulary_size, dtype="int64")
    for row in ids:
        documents[np.unique(row)] += 1
    idf = np.log1p(len(ids) / (1.0 + documents)).astype("float32")
    idf[[PADDING, UNKNOWN]] = 0.0
    return idf


def tf_idf(ids, idf):
    """Rows of n-gram ids as TF-IDF vectors `[batch, len(idf)]`: each id's count times its IDF."""
    counts = tf.math.bincount(
        tf.cast(ids, tf.int32), minlength=len(idf), maxlength=len(idf), dtype=tf.float32, axis=-1
    )
    return counts * tf.constant(idf)
