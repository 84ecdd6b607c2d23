import numpy as np
import keras

from tfkit.data.text import adapt_vectorizer, text_datasets, texts_to_ids, token_ids, vectorize
from tfkit.data.splits import Splits


def test_ids_are_padded_and_truncated_at_the_front_like_pad_sequences():
    texts = np.array([b"a b c", b"a b c d e f g", b""], dtype=object)
    vectorizer = adapt_vectorizer(texts, max_tokens=20)
    ragged = vectorizer(list(texts))
    expected = keras.utils.pad_sequences(ragged.to_list(), maxlen=4)
    assert (np.asarray(texts_to_ids(vectorizer, list(texts), 4)) == expected).all()
    assert (vectorize(vectorizer, texts, 4, batch_size=2) == expected).all()
    ragged = token_ids(vectorizer, texts, 4, batch_size=2)
    assert ragged.to_list() == [row[row > 0].tolist() for row in expected]


def test_vocabulary_is_capped_at_max_tokens():
    texts = np.array([" ".join(f"w{i}" for i in range(100)).encode()], dtype=object)
    vectorizer = adapt_vectorizer(texts, max_tokens=10)
    assert vectorizer.vocabulary_size() == 10
    assert vectorize(vectorizer, texts, 200).max() < 10


def test_datasets_batch_ids_with_column_labels():
    texts = np.array([b"good film", b"bad film", b"good", b"bad"], dtype=object)
    labels = np.array([1, 0, 1, 0], dtype="int32")
    splits = Splits((texts, labels), (texts[:2], labels[:2]), (texts, labels), "synthetic")
    vectorizer = adapt_vectorizer(texts)
    train, val, test = text_datasets(splits, vectorizer, 6, batch_size=3, seed=0)
    ids, batch_labels = next(iter(train))
    assert ids.shape == (3, 6) and ids.dtype == "int32"
    assert batch_labels.shape == (3, 1) and batch_labels.dtype == "float32"
    assert sum(1 for _ in test) == 2
