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
    """What `model.evaluate` says of `dataset`, plus what a confusion matrix tells, in one pass.

    One `model.predict` over the split; the loss (the model's compiled loss and its
    regularisation, as `evaluate` adds them) and the compiled metrics are computed from
    those predictions. Adds `confusion_matrix` (rows the true class, columns the
    predicted, in class order), `per_class` {name: {"precision", "recall", "examples"}},
    `macro_f1`, and `predicted`: each example's predicted class id, in the split's order
    (`tfkit.runs.finish_run` pairs them with the baseline's, and keeps them out of
    metrics.json).
    """
    probabilities = model.predict(dataset, verbose=verbose)
    labels = np.concatenate([np.asarray(batch[1]) for batch in dataset])
    k = len(class_names)
    model.reset_metrics()
    scores = model.compute_metrics(None, labels, probabilities, sample_weight=None)
    metrics = {name: float(value) for name, value in scores.items()}
    # Keras's `evaluate` averages each batch's loss by its size: the mean over the split.
    metrics["loss"] = float(model.compute_loss(y=labels, y_pred=probabilities, training=False))
    true = labels.reshape(-1).astype("int64")
    probabilities = np.asarray(probabilities, dtype="float32")
    if k == 2:
        predicted = (probabilities.reshape(-1) > 0.5).astype("int64")
    else:
        predicted = probabilities.argmax(axis=-1)
    matrix = np.bincount(true * k + predicted, minlength=k * k).reshape(k, k)
    classes = per_class(matrix, class_names)
    f1s = [
        2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"])
        if c["precision"] + c["recall"]
        else 0.0
        for c in classes.values()
    ]
    metrics.update(
        confusion_matrix=matrix.tolist(),
        per_class=classes,
        macro_f1=float(np.mean(f1s)),
        predicted=predicted.tolist(),
    )
    return metrics


def without_predictions(record):
    """`record` (a run's metrics) without the `predicted` ids of its splits' scores and of its
    baseline's: metrics.json keeps the scores; baseline.json keeps the baseline's ids."""

    def scores(split):
        return {k: v for k, v in split.items() if k != "predicted"} if split else split

    kept = {**record, **{name: scores(record[name]) for name in ("val", "test") if name in record}}
    if isinstance(record.get("baseline"), dict):
        baseline = record["baseline"]
        kept["baseline"] = {**baseline, **{n: scores(baseline[n]) for n in ("val", "test")
                                           if n in baseline}}  # fmt: skip
    return kept
