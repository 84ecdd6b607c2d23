"""Train/validation/test arrays and the one way they are split and capped."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Splits:
    """In-memory splits: each is a pair `(inputs, labels)` of numpy arrays."""

    train: tuple
    val: tuple
    test: tuple
    source: str  # "tfds", "dir" or "synthetic": recorded in every output

    def with_validation_in_training(self):
        """These splits with the validation examples moved into training (for a final fit)."""
        inputs = np.concatenate([self.train[0], self.val[0]])
        labels = np.concatenate([self.train[1], self.val[1]])
        empty = (self.val[0][:0], self.val[1][:0])
        return Splits(train=(inputs, labels), val=empty, test=self.test, source=self.source)

    def sizes(self):
        """Example counts, as recorded in metrics.json."""
        return {
            "train_examples": len(self.train[1]),
            "val_examples": len(self.val[1]),
            "test_examples": len(self.test[1]),
        }


def split_and_cap(train, test, source, validation_split, seed, max_examples=None):
    """Holds out a seeded `validation_split` of `train`; caps each split at `max_examples`.

    The test split is left for the final evaluation only.
    """
    inputs, labels = train
    order = np.random.default_rng(seed).permutation(len(labels))
    num_val = max(1, int(round(len(order) * validation_split)))
    val_index, train_index = order[:num_val], order[num_val:]
    if max_examples is not None:
        train_index, val_index = train_index[:max_examples], val_index[:max_examples]
        test = (test[0][:max_examples], test[1][:max_examples])
    return Splits(
        train=(inputs[train_index], labels[train_index]),
        val=(inputs[val_index], labels[val_index]),
        test=test,
        source=source,
    )
