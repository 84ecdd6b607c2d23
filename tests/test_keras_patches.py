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
