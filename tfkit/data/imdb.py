"""IMDB movie reviews as raw text with 0/1 labels, from TFDS, a local aclImdb/ or synthetic."""

import numpy as np

from tfkit.data.download import download_and_prepare
from tfkit.data.splits import split_and_cap
from tfkit.data.texts import read_class_folders

TFDS_NAME = "imdb_reviews"
DOWNLOAD_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
CLASS_NAMES = ("neg", "pos")  # label 0, label 1
WAYS_OUT = (
    "Use --data dir --data-dir PATH with a local copy of aclImdb/ (from "
    f"{DOWNLOAD_URL}), or --data synthetic."
)

# The real splits' sizes, which synthetic data copies.
NUM_TRAIN = NUM_TEST = 25_000


def load_imdb(source, data_dir=None, seed=1337, validation_split=0.2, max_examples=None):
    """Loads IMDB reviews as raw strings.

    Args:
        source: "tfds", "dir" (an `aclImdb/` folder, or any `train/<class>/` tree:
            `tfkit.data.texts.read_class_folders`) or "synthetic".
        data_dir: the TFDS data directory, or the folder holding (or being) `aclImdb/`.
        seed: seeds the validation split and synthetic data.
        validation_split: fraction of the training split held out for validation.
        max_examples: caps each split, for quick runs.

    Returns:
        `Splits` of `(texts, labels)`: object arrays of `bytes` and int32 labels.

    Raises:
        DataError: the data cannot be downloaded or the folder is malformed.
    """
    class_names = CLASS_NAMES
    if source == "tfds":
        train, test = _from_tfds(data_dir)
    elif source == "dir":  # aclImdb/, or any tree of class folders
        train, test, class_names = read_class_folders(data_dir)
    elif source == "synthetic":
        # A capped run generates only what its capped train and validation splits need.
        needed = NUM_TRAIN
        if max_examples is not None:
            smaller = min(validation_split, 1 - validation_split) if validation_split else 1.0
            needed = int(np.ceil(max_examples / smaller))
        num_train = min(NUM_TRAIN, needed)
        num_test = NUM_TEST if max_examples is None else min(NUM_TEST, max_examples)
        train = synthetic_reviews(num_train, seed)
        test = synthetic_reviews(num_test, seed + 1)
    else:
        raise ValueError(f"unknown data source. Received: data={source!r}")
    return split_and_cap(
        train, test, source, validation_split, seed, max_examples, class_names=class_names
    )


def _from_tfds(data_dir):
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    download_and_prepare(builder, DOWNLOAD_URL, WAYS_OUT)
    splits = []
    for split in ("train", "test"):
        # Batches, not batch_size=-1: that aborts the process under tfds.testing.mock_data.
        dataset = builder.as_dataset(split=split, as_supervised=True).batch(4096)
        batches = list(tfds.as_numpy(dataset))
        texts = np.concatenate([texts for texts, _ in batches]).astype(object)
        labels = np.concatenate([labels for _, labels in batches]).astype("int32")
        splits.append((texts, labels))
    return splits


def synthetic_reviews(num_examples, seed, vocabulary_size=5000, num_cues=40):
    """Deterministic, learnable fake reviews: the label decides which cue words appear.

    Words follow a Zipf-like frequency, reviews are 30-200 words long, and each
    holds 3-8 cue words of its own class and at most one of the other, so a model
    that learns which words matter can reach near-perfect accuracy, and one that
    does not stays at chance.

    Returns:
        `(texts, labels)`: an object array of `bytes` and int32 labels.
    """
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, vocabulary_size + 1)
    lengths = rng.integers(30, 201, num_examples)
    word_ids = rng.choice(vocabulary_size, size=lengths.sum(), p=frequency / frequency.sum())
    reviews = np.split(np.char.add("w", word_ids.astype(str)), np.cumsum(lengths)[:-1])
    cues = [
        np.array([f"bad{i}" for i in range(num_cues // 2)]),
        np.array([f"good{i}" for i in range(num_cues // 2)]),
    ]
    labels = rng.integers(0, 2, num_examples).astype("int32")
    texts = np.empty(num_examples, dtype=object)
    for i, (review, label) in enumerate(zip(reviews, labels)):
        review = list(review)
        inserts = list(rng.choice(cues[label], size=rng.integers(3, 9)))
        inserts += list(rng.choice(cues[1 - label], size=rng.integers(0, 2)))
        for word in inserts:
            review.insert(rng.integers(0, len(review) + 1), word)
        texts[i] = " ".join(review).encode()
    return texts, labels
