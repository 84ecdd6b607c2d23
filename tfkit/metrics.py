"""The metrics the documents ask for on a binary task: not only accuracy (000, 004)."""

import keras


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
