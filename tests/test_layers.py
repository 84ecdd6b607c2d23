import numpy as np
import pytest
import tensorflow as tf
import keras

from tfkit.layers import BatchNormalization


def pair(shape, **kwargs):
    keras_own, fused = keras.layers.BatchNormalization(**kwargs), BatchNormalization(**kwargs)
    for layer in (keras_own, fused):
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, shape[-1]).astype("float32"))
        layer.beta.assign(np.linspace(-1.0, 1.0, shape[-1]).astype("float32"))
    return keras_own, fused


def test_the_fused_layer_computes_what_keras_computes_in_training_and_after():
    x = tf.constant(np.random.RandomState(0).normal(2, 3, (8, 5, 6, 4)).astype("float32"))
    keras_own, fused = pair(x.shape, momentum=0.9)
    for training in (True, True, False):  # two steps' moving averages, then inference
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            outputs = [layer(x, training=training) for layer in (keras_own, fused)]
            losses = [tf.reduce_sum(y * y * x) for y in outputs]
        np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
        for ours, theirs in zip(tape.gradient(losses[1], [x, fused.gamma, fused.beta]),
                                tape.gradient(losses[0], [x, keras_own.gamma, keras_own.beta])):  # fmt: skip
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
        # The moving variance is Keras's biased one, not the op's n - 1 one.
        np.testing.assert_allclose(fused.moving_variance, keras_own.moving_variance, rtol=1e-6)
        np.testing.assert_allclose(fused.moving_mean, keras_own.moving_mean, atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 4), (2, 3, 5, 6, 4)])
def test_other_shapes_take_keras_own_path(shape):
    x = tf.constant(np.random.RandomState(1).normal(0, 1, shape).astype("float32"))
    keras_own, fused = pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True), keras_own(x, training=True), atol=1e-5)


def test_a_model_with_it_saves_and_loads_with_its_layer_names(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, BatchNormalization()(inputs))
    assert model.layers[1].name.startswith("batch_normalization")  # as Keras names its own
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[1], BatchNormalization)
