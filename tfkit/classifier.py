"""What every classifier recipe builds the same way, whatever its model: the output layer and
loss for its number of classes, and the `fit` arguments its data needs.

Two classes keep the documents' single sigmoid unit and binary cross-entropy (labels
(n, 1) floats); more get a softmax over them and sparse categorical cross-entropy (class
ids). The output is float32 under mixed precision too.
"""

import keras

from tfkit.callbacks import initial_bias, trained_counts
from tfkit.finetune import fine_tuning
from tfkit.optim import class_weight_from_labels


def classifier_output(num_classes, **kwargs):
    """The output layer: Dense(1, sigmoid) for two classes, Dense(K, softmax) for more."""
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", **kwargs)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", **kwargs)


def classifier_loss(num_classes):
    """The loss that goes with `classifier_output`."""
    return "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"


def classifier_fit_arguments(config, splits, train, val):
    """`model.fit` arguments for a classifier's `train` and `val` pipelines of `splits`.

    The class weights `--class-weight` asks for and the callbacks the data needs: the
    epoch order (`train.epoch_order`, for exact resume), fine-tuning (`--init-from`) and
    the output's initial bias (`--initial-bias`), which reads the class mix as trained.
    A search trial, the LR range test, k-fold and the capacity check train with these.
    """
    counts = trained_counts(splits.class_counts()["train"], config.resample)
    class_weight = class_weight_from_labels(splits.train[1], config.class_weight)
    return {
        "x": train,
        "validation_data": val,
        "class_weight": class_weight,
        "callbacks": [
            train.epoch_order,
            *fine_tuning(config),
            *initial_bias(config, counts, class_weight),
        ],
    }
