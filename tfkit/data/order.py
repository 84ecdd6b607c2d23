"""Training batches whose order is a function of (seed, epoch), so a resumed run sees the same.

`tf.data`'s `shuffle(seed=s, reshuffle_each_iteration=True)` draws each epoch's order
from how many epochs *this process* has iterated, so a run resumed after a kill trains
on other batches than the run that never stopped. Here epoch `e`'s order is the seeded
permutation `default_rng([seed, e])`, whatever happened before, and a run resumed in
the middle of an epoch skips exactly the batches it already trained on.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import keras


class EpochOrder(keras.callbacks.Callback):
    """Which examples each batch of each epoch holds, and where in the epoch training is.

    It is the callback that tells its pipeline (made by `epoch_batches`) the epoch Keras
    is starting. A resumed run sets `first_step` for its first epoch: the pipeline then
    starts at that batch, and this callback ends the epoch once the batches after it
    are done (Keras cannot start an epoch in the middle; it stops the batch loop, and
    the epoch ends as usual, with validation and the epoch-end callbacks).
    """

    def __init__(
        self, num_examples, batch_size, seed, shuffle=True, drop_remainder=False, balance=None
    ):
        super().__init__()
        self.balance = balance
        # With `balance`, each epoch holds every class equally often (see `balanced_indices`).
        self.num_examples = balanced_size(balance.labels, balance.how) if balance else num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self.epoch = 0
        self.first_step = 0  # of the epoch about to run; > 0 only when resuming mid-epoch
        self._steps_run = 0
        self._stopped_epoch_early = False
        self.element_spec = None

    @property
    def step(self):
        """Batches of the current epoch trained before the one starting, a resume's included."""
        return self.first_step + self._steps_run

    @property
    def steps_per_epoch(self):
        if self.drop_remainder:
            return self.num_examples // self.batch_size
        return -(-self.num_examples // self.batch_size)

    def indices(self, epoch):
        """The example indices of epoch `epoch`, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.balance:
            return balanced_indices(self.balance.labels, self.balance.how, rng)
        if not self.shuffle:
            return np.arange(self.num_examples)
        return rng.permutation(self.num_examples)

    def batch_indices(self):
        """Yields each batch's indices for the current epoch, from `first_step` on.

        The batches before `first_step` follow at the end, so the pipeline always has
        `steps_per_epoch` elements (its declared cardinality); they are never trained
        on, as the callback ends such an epoch once the batches after `first_step` are.
        """
        order = self.indices(self.epoch)
        batches = [
            order[start : start + self.batch_size]
            for start in range(0, self.steps_per_epoch * self.batch_size, self.batch_size)
        ]
        yield from batches[self.first_step :] + batches[: self.first_step]

    # Callback: Keras calls on_epoch_begin before it starts the epoch's iterator. Only
    # batch-begin hooks: a batch-end hook would make Keras wait for every step's logs.
    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.first_step = 0
        self.epoch = epoch
        self._steps_run = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._steps_run = batch
        if self.first_step and self.first_step + batch + 1 >= self.steps_per_epoch:
            # The step about to run ends the epoch; Keras checks this flag after it.
            self.model.stop_training = True
            self._stopped_epoch_early = True

    def on_epoch_end(self, epoch, logs=None):
        # Runs first among the epoch-end callbacks, so early stopping can still stop.
        if self._stopped_epoch_early:
            self._stopped_epoch_early = False
            loss = (logs or {}).get("loss", 0.0)
            self.model.stop_training = not np.isfinite(loss)  # TerminateOnNaN's stop stays
        self.first_step = 0
        self.epoch = epoch + 1


@dataclass(frozen=True)
class Balance:
    """Resample the training split to equal class counts: `how` is "over" or "under"."""

    labels: np.ndarray
    how: str


def balanced_size(labels, how):
    """Examples in a balanced epoch: K × the largest class ("over") or the smallest ("under")."""
    counts = np.bincount(np.asarray(labels).ravel().astype("int64"))
    counts = counts[counts > 0]
    return len(counts) * balanced_count(counts, how)


def balanced_count(counts, how):
    """Examples of each class in a balanced epoch, from the classes' (non-zero) counts."""
    return int(max(counts) if how == "over" else min(counts))


def balanced_indices(labels, how, rng):
    """One epoch's example indices with every class equally often, shuffled.

    Each class is a stream of its examples in ever new orders, repeated as often as
    needed (the TF imbalanced-data tutorial's `sample_from_datasets` over repeated
    class datasets); "over" takes as many from each as the largest class has, so the
    minority repeats; "under" as many as the smallest has, so each epoch sees another
    part of the majority. Drawn here from `rng`, not in tf.data, so that an epoch's
    batches stay a function of (seed, epoch) and a resumed run sees the same.
    """
    labels = np.asarray(labels).ravel()
    members = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    per_class = balanced_size(labels, how) // len(members)
    drawn = [_stream(indices, per_class, rng) for indices in members]
    return rng.permutation(np.concatenate(drawn))


def _stream(indices, count, rng):
    """`count` of `indices`: whole shuffled passes, then part of one more."""
    passes, rest = divmod(count, len(indices))
    return np.concatenate(
        [rng.permutation(indices) for _ in range(passes)]
        + [rng.choice(indices, rest, replace=False)]
    )


def epoch_batches(
    arrays, batch_size, seed, shuffle=True, drop_remainder=False, map_fn=None, balance=None
):
    """A batched `tf.data` pipeline over in-memory `arrays` in `EpochOrder`.

    Args:
        arrays: a numpy array or a tuple of them, with the examples along axis 0.
        batch_size: examples per batch (the global batch under a strategy).
        seed: with the epoch, decides each epoch's order.
        shuffle: False keeps the arrays' order every epoch.
        drop_remainder: drop the last, smaller batch of each epoch.
        map_fn: applied to each batch, e.g. scaling pixels.
        balance: a `Balance` to over- or under-sample the classes every epoch.

    Returns:
        A `tf.data.Dataset` of `steps_per_epoch` batches per iteration; its
        `epoch_order` attribute is the `EpochOrder` callback that must be in the
        `fit` callbacks (first), as `tfkit.callbacks` puts it.
    """
    single = not isinstance(arrays, tuple)
    tensors = tuple(tf.constant(array) for array in ((arrays,) if single else arrays))
    order = EpochOrder(len(tensors[0]), batch_size, seed, shuffle, drop_remainder, balance)

    def gather(indices):
        batch = tuple(tf.gather(tensor, indices) for tensor in tensors)
        batch = batch[0] if single else batch
        return map_fn(batch) if map_fn else batch

    dataset = tf.data.Dataset.from_generator(
        order.batch_indices, output_signature=tf.TensorSpec([None], tf.int64)
    )
    dataset = dataset.map(gather)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(order.steps_per_epoch))
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    order.element_spec = dataset.element_spec  # to build the model's metrics before a resume
    dataset.epoch_order = order
    return dataset
