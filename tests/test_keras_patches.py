"""The Keras patches: version gate, and clipping after the all-reduce on one device.

Their behaviour under strategies is tested in test_distribute.py (fresh processes)."""

import numpy as np
import keras
import pytest

from tfkit import keras_patches
from tfkit.optim import get_optimizer


def test_an_untested_keras_is_refused(monkeypatch):
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    with pytest.raises(RuntimeError, match="tested on Keras 3.15.x, not 3.16.0"):
        keras_patches.check_keras_version()


@pytest.mark.parametrize("clipping", [{"clipnorm": 0.05}, {"clipvalue": 0.02},
                                      {"global_clipnorm": 0.05}])  # fmt: skip
def test_on_one_device_the_clip_is_keras_own(clipping):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = (rng.random((16, 1)) < 0.3).astype("float32")

    def trained(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=optimizer, loss="binary_crossentropy")
        initial = [weight.copy() for weight in model.get_weights()]
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        return initial, model.get_weights()

    initial, ours = trained(get_optimizer("sgd", 0.5, **clipping))
    _, theirs = trained(keras.optimizers.SGD(0.5, **clipping))
    _, unclipped = trained(keras.optimizers.SGD(0.5))
    assert not np.allclose(ours[0], unclipped[0])  # the clip was active
    for start, a, b in zip(initial, ours, theirs):
        assert not np.allclose(start, a)  # it trained
        np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_an_embedding_is_updated_as_a_dense_weight_with_a_word_seen_twice(name):
    import tensorflow as tf

    # Token 1 twice in a batch: its gradient is the sum of both rows, squared as a sum.
    ids = np.array([[1, 1, 2]])
    weights = np.array([[1.0], [1.0], [3.0]], "float32")

    def updated(embedding_weights):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(4, 1)])
        model.layers[0].embeddings.assign(np.zeros((4, 1), "float32"))
        optimizer = get_optimizer(name, 0.1) if embedding_weights else keras.optimizers.get(
            {"class_name": name, "config": {"learning_rate": 0.1}})  # fmt: skip
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(ids)[0] * weights)
        (gradient,) = tape.gradient(loss, model.trainable_variables)
        assert isinstance(gradient, tf.IndexedSlices)  # as the Embedding gives it
        if not embedding_weights:  # the reference: the same gradient, dense
            gradient = tf.convert_to_tensor(gradient)
        optimizer.apply([gradient], model.trainable_variables)
        return model.layers[0].embeddings.numpy().ravel()

    np.testing.assert_allclose(updated(True), updated(False), rtol=1e-6)
    assert updated(True)[1] != 0 and updated(True)[0] == 0
