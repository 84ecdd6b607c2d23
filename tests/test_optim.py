import numpy as np
import pytest

from tfkit.optim import class_weight_from_labels, get_optimizer


def test_optimizer_carries_the_clipping_flags():
    optimizer = get_optimizer("rmsprop", 1e-4, clipnorm=1.0)
    assert type(optimizer).__name__ == "RMSprop"
    assert optimizer.clipnorm == 1.0
    assert get_optimizer("sgd", 0.1, clipvalue=0.5).clipvalue == 0.5
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(1e-4)
    assert get_optimizer("adam", 1e-3, global_clipnorm=5.0).global_clipnorm == 5.0


def test_clipping_of_zero_is_refused_not_silently_off():
    with pytest.raises(ValueError, match="clipnorm must be > 0"):
        get_optimizer("sgd", 0.1, clipnorm=0.0)


def test_clipnorm_really_clips_a_gradient():
    import keras

    variable = keras.Variable(np.zeros(2, dtype="float32"))
    optimizer = get_optimizer("sgd", 1.0, clipnorm=1.0)
    optimizer.apply_gradients([(np.array([30.0, 40.0], dtype="float32"), variable)])
    assert np.allclose(np.asarray(variable), [-0.6, -0.8])


def test_balanced_class_weights_follow_label_counts():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weight_from_labels(labels, "balanced")
    assert weights[0] == pytest.approx(100 / (2 * 90)) and weights[1] == pytest.approx(5.0)
    assert weights[0] * 90 == pytest.approx(weights[1] * 10)
    assert class_weight_from_labels(labels, "none") is None
    assert class_weight_from_labels(labels, "0=1,1=9") == {0: 1.0, 1: 9.0}


def test_optimizer_from_config_reads_the_flags():
    from tfkit.config import TrainConfig
    from tfkit.optim import optimizer_from_config

    config = TrainConfig(optimizer="adam", learning_rate=0.01, global_clipnorm=2.0)
    optimizer = optimizer_from_config(config)
    assert type(optimizer).__name__ == "Adam" and optimizer.global_clipnorm == 2.0
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.01)
    other = optimizer_from_config(config, learning_rate=0.5)
    assert float(np.asarray(other.learning_rate)) == pytest.approx(0.5)
