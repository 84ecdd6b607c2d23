"""Train/validation/test arrays and the one way they are split and capped."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from tfkit.errors import DataError

TEST_SHARE = 0.2  # held out for the test when the data has no test split


@dataclass
class Splits:
    """In-memory splits: each is a pair `(inputs, labels)` of numpy arrays."""

    train: tuple
    val: tuple
    test: tuple
    source: str  # "tfds", "dir", "csv" or "synthetic": recorded in every output
    class_names: tuple = ("neg", "pos")  # label i is class_names[i]
    dropped_rows: dict = dataclasses.field(default_factory=dict)  # {split: rows left out}
    # Inputs prepared by a step fitted on the training split (a vocabulary, an IDF) keep
    # the splits as read (`raw`) and the step, `prepare(raw_splits, run_dir)`: k-fold deals
    # out `raw` and prepares each fold from its own training part.
    raw: "Splits | None" = None
    prepare: object = None

    def with_validation_in_training(self):
        """These splits with the validation examples moved into training (for a final fit)."""
        inputs = np.concatenate([self.train[0], self.val[0]])
        labels = np.concatenate([self.train[1], self.val[1]])
        empty = (self.val[0][:0], self.val[1][:0])
        raw = self.raw.with_validation_in_training() if self.raw is not None else None
        return dataclasses.replace(self, train=(inputs, labels), val=empty, raw=raw)

    def sizes(self):
        """Example counts, as recorded in metrics.json."""
        return {
            "train_examples": len(self.train[1]),
            "val_examples": len(self.val[1]),
            "test_examples": len(self.test[1]),
        }

    def class_counts(self):
        """{"train": {class name: count}, "val": ..., "test": ...}, as metrics.json records."""
        splits = {"train": self.train, "val": self.val, "test": self.test}
        return {name: class_counts(split[1], self.class_names) for name, split in splits.items()}

    def describe(self):
        """The class counts of every split in one line, for the run's first lines."""
        return describe_class_counts(self.class_counts())


def class_counts(labels, class_names):
    """{class name: how many of `labels` are that class}, every class listed."""
    counts = np.bincount(np.asarray(labels, dtype="int64"), minlength=len(class_names))
    return {name: int(count) for name, count in zip(class_names, counts)}


def describe_class_counts(counts):
    """{"train": {"neg": 3, "pos": 4}, ...} as "train neg 3, pos 4; ..."."""
    return "; ".join(
        f"{split} " + ", ".join(f"{name} {count}" for name, count in per_class.items())
        for split, per_class in counts.items()
    )


def stratified_sample(labels, count, rng):
    """Indices of `count` of `labels`, drawn without replacement, keeping the class mix.

    Each class gets its share of `count` (largest remainders round), so a cap of a
    split read class by class still holds every class in its proportion.
    """
    labels = np.asarray(labels)
    if count >= len(labels):
        return rng.permutation(len(labels))
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quotas = np.floor(exact).astype(int)
    for index in np.argsort(quotas - exact)[: count - quotas.sum()]:  # largest remainders
        quotas[index] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == label), quota, replace=False)
        for label, quota in zip(classes, quotas)
    ]
    return rng.permutation(np.concatenate(chosen))


def kfold_splits(splits, folds, seed):
    """`splits` cross-validated: `folds` Splits, each validating on another K-th of training.

    The training and validation examples of `splits` are pooled and dealt into `folds`
    disjoint, stratified folds from a seeded order (every class spread evenly over
    them); fold i trains on the others and validates on fold i. The test split is
    the same in every fold, and left for the final model. Splits with `raw` inputs
    deal those out: give each fold to `splits.prepare`.
    """
    if splits.raw is not None:
        splits = splits.raw
    inputs = np.concatenate([splits.train[0], splits.val[0]])
    labels = np.concatenate([splits.train[1], splits.val[1]])
    rng = np.random.default_rng(seed)
    # Class by class, each in a seeded order, dealt round the folds like cards.
    dealt = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    )
    fold_of = np.empty(len(labels), dtype="int64")
    fold_of[dealt] = np.arange(len(labels)) % folds
    result = []
    for fold in range(folds):
        train_index = rng.permutation(np.flatnonzero(fold_of != fold))
        val_index = np.flatnonzero(fold_of == fold)
        result.append(
            dataclasses.replace(
                splits,
                train=(inputs[train_index], labels[train_index]),
                val=(inputs[val_index], labels[val_index]),
            )
        )
    return result


def split_and_cap(
    train,
    test,
    source,
    validation_split,
    seed,
    max_examples=None,
    class_names=("neg", "pos"),
    dropped_rows=None,
):
    """Holds out a seeded, stratified `validation_split` of `train`; caps each split.

    Without a `test` split (None), a stratified `TEST_SHARE` of `train` is held out
    for it first. `max_examples` caps each split by a seeded draw that keeps its class
    mix. The test split is left for the final evaluation only.

    Raises:
        DataError: an empty `test`, or a class left without a training example.
    """
    if test is not None and not len(test[1]):  # the model would train, then fail to evaluate
        raise DataError(
            "the test split has no example; give it labelled examples, or give none to hold "
            f"out {TEST_SHARE:.0%} of the training data for it"
        )
    rng = np.random.default_rng(seed)
    if test is None:
        test_index = stratified_sample(train[1], round(len(train[1]) * TEST_SHARE), rng)
        rest = np.setdiff1d(np.arange(len(train[1])), test_index)
        test = (train[0][test_index], train[1][test_index])
        train = (train[0][rest], train[1][rest])
    inputs, labels = train
    # 0: no validation split, every training example trained on (a final fit).
    num_val = max(1, int(round(len(labels) * validation_split))) if validation_split else 0
    val_index = stratified_sample(labels, num_val, rng)
    train_index = np.setdiff1d(np.arange(len(labels)), val_index)
    train_index = rng.permutation(train_index)
    test_index = np.arange(len(test[1]))
    if max_examples is not None:
        train_index = train_index[stratified_sample(labels[train_index], max_examples, rng)]
        val_index = val_index[stratified_sample(labels[val_index], max_examples, rng)]
        test_index = stratified_sample(test[1], max_examples, rng)
    missing = sorted(set(range(len(class_names))) - set(labels[train_index].tolist()))
    if missing:
        raise DataError(
            f"class(es) {', '.join(str(class_names[i]) for i in missing)} keep no training "
            "example once the validation and test splits are held out; give each class more "
            "examples (or a test table of its own)"
        )
    return Splits(
        train=(inputs[train_index], labels[train_index]),
        val=(inputs[val_index], labels[val_index]),
        test=(test[0][test_index], test[1][test_index]),
        source=source,
        class_names=tuple(class_names),
        dropped_rows=dropped_rows or {},
    )
