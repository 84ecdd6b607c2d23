"""`evaluate_classifier`: what `model.evaluate` says, and the confusion matrix, in one pass."""

import numpy as np
import pytest
import tensorflow as tf
import keras
from keras import ops

from tfkit.metrics import classifier_metrics, evaluate_classifier


class Seen(keras.layers.Layer):
    """Passes its input on and counts the examples it was given, in a variable."""

    def build(self, input_shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

    def call(self, inputs):
        self.seen.assign_add(ops.cast(ops.shape(inputs)[0], self.seen.dtype))
        return inputs


def small_classifier(k):
    keras.utils.set_random_seed(0)
    seen = Seen()
    output = (
        keras.layers.Dense(1, activation="sigmoid")
        if k == 2
        else keras.layers.Dense(k, activation="softmax")
    )
    regularised = keras.layers.Dense(8, "relu", kernel_regularizer=keras.regularizers.L2(0.01))
    model = keras.Sequential([keras.Input((6,)), seen, regularised, output])
    loss = "binary_crossentropy" if k == 2 else "sparse_categorical_crossentropy"
    model.compile("adam", loss, metrics=classifier_metrics(k))
    return model, seen


def split(k, n=203):
    """n examples (not a whole number of batches), labels shaped as the recipes' pipelines."""
    rng = np.random.default_rng(k)
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = rng.integers(0, k, size=n)
    y = labels.astype("float32").reshape(-1, 1) if k == 2 else labels.astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32), labels


@pytest.mark.parametrize("k", [2, 4])
def test_one_pass_gives_what_evaluate_and_predict_gave(k):
    model, seen = small_classifier(k)
    dataset, labels = split(k)
    model.fit(dataset, epochs=2, verbose=0)
    names = [f"c{i}" for i in range(k)]

    before = float(seen.seen.numpy())
    result = evaluate_classifier(model, dataset, names)
    assert float(seen.seen.numpy()) - before == len(labels)  # each example through the model once

    # The two passes it replaces: `evaluate`, then `predict` for the confusion matrix.
    evaluated = model.evaluate(dataset, return_dict=True, verbose=0)
    probabilities = model.predict(dataset, verbose=0)
    if k == 2:
        predicted = (probabilities.reshape(-1) > 0.5).astype(int)
    else:
        predicted = probabilities.argmax(-1)
    assert set(evaluated) | {"confusion_matrix", "per_class", "macro_f1", "predicted"} == set(
        result
    )
    for name, value in evaluated.items():
        assert result[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert evaluated["loss"] > 0.01  # the L2 penalty is in both
    matrix = np.zeros((k, k), int)
    np.add.at(matrix, (labels, predicted), 1)
    assert result["confusion_matrix"] == matrix.tolist()
    assert result["predicted"] == predicted.tolist()  # in the split's order
    assert all(isinstance(i, int) for i in result["predicted"])  # JSON as it is
