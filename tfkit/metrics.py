"""The metrics the documents ask for on a binary task: not only accuracy (000, 004)."""

import keras


def binary_metrics():
    """Accuracy, AUC, precision, recall and F1 for a sigmoid output and 0/1 labels."""
    return [
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        # "micro" over the single output is the F1 of class 1, as a scalar.
        keras.metrics.F1Score(average="micro", threshold=0.5, name="f1"),
    ]
