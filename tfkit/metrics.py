"""The metrics the documents ask for: not only accuracy (000, 004), for two classes or K."""

import keras
import numpy as np
from keras import ops

from tfkit.diagnostics.verdict import per_class


def classifier_metrics(num_classes):
    """`binary_metrics()` for two classes; accuracy and macro-F1 for more."""
    if num_classes == 2:
        return binary_metrics()
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        SparseF1Score(average="macro", name="f1"),
    ]


@keras.saving.register_keras_serializable(package="tfkit")
class SparseF1Score(keras.metrics.F1Score):
    """F1 of a softmax output against integer labels (Keras's F1Score wants one-hot ones).

    Without a threshold, the class of the largest probability is the prediction.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.reshape(ops.cast(y_true, "int32"), [-1])
        super().update_state(ops.one_hot(labels, ops.shape(y_pred)[-1]), y_pred, sample_weight)


def binary_metrics():
    """Accuracy, ROC and PR AUC, precision, recall and F1 for a sigmoid output and 0/1 labels.

    PR-AUC (the area under precision-recall) is the one to read on rare positives:
    ROC-AUC credits the many true negatives a majority-class model gets for free.
    """
    return [
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.AUC(curve="PR", name="pr_auc"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        # "micro" over the single output is the F1 of class 1, as a scalar.
        keras.metrics.F1Score(average="micro", threshold=0.5, name="f1"),
    ]


def evaluate_classifier(model, dataset, class_names, verbose=0):
    """`model.evaluate` on `dataset`, plus what a confusion matrix tells.

    Adds `confusion_matrix` (rows the true class, columns the predicted, in class
    order), `per_class` {name: {"precision", "recall", "examples"}} and `macro_f1`.
    """
    metrics = model.evaluate(dataset, return_dict=True, verbose=verbose)
    probabilities = np.asarray(model.predict(dataset, verbose=0), dtype="float32")
    true = np.concatenate([np.asarray(labels).reshape(-1) for _, labels in dataset])
    true = true.astype("int64")
    if len(class_names) == 2:
        predicted = (probabilities.reshape(-1) > 0.5).astype("int64")
    else:
        predicted = probabilities.argmax(axis=-1)
    k = len(class_names)
    matrix = np.bincount(true * k + predicted, minlength=k * k).reshape(k, k)
    classes = per_class(matrix, class_names)
    f1s = [
        2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"])
        if c["precision"] + c["recall"]
        else 0.0
        for c in classes.values()
    ]
    metrics.update(
        confusion_matrix=matrix.tolist(), per_class=classes, macro_f1=float(np.mean(f1s))
    )
    return metrics
