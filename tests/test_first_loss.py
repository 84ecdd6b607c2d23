"""The first-loss check: quiet on every recipe's default start, loud on a broken one."""

import math

import numpy as np
import pytest
import keras

from tfkit.diagnostics.verdict import FirstLossCheck, first_loss_range, untrained_loss

CLASSES = (2, 3, 5, 10, 20)


def judged(first, k, expected=None):
    """The check's verdict on a first loss `first` of a model with K outputs (1 for K = 2)."""
    checks = {}
    check = FirstLossCheck(checks, math.log(k) if expected is None else expected)
    units = 1 if k == 2 else k
    check.set_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)]))
    check.on_train_batch_end(0, logs={"loss": first})
    return checks["first_loss"]


@pytest.mark.parametrize("k", CLASSES)
def test_the_range_holds_a_uniform_and_a_spread_start_not_a_far_spread_one(k):
    low, high = first_loss_range(math.log(k), k)
    assert untrained_loss(k, 0.0) == pytest.approx(math.log(k))
    assert low < math.log(k) < untrained_loss(k, 2.2) < high  # the ResNet's start spreads 2.1
    assert untrained_loss(k, 20.0) > high  # its output's weights 10x
    assert judged(untrained_loss(k, 2.2), k)["ok"]
    assert not judged(untrained_loss(k, 20.0), k)["ok"]
    assert not judged(0.4 * math.log(k), k)["ok"]  # below half of ln K: labels leak
    # Class weights scale the loss and its range alike.
    assert judged(2 * untrained_loss(k, 2.2), k, expected=2 * math.log(k))["ok"]


def test_a_start_as_spread_as_the_resnets_passes_and_ten_times_it_alarms(capsys):
    """A ResNet's untrained output once scored 2.19 against ln 3: not a broken start."""
    x = np.ones((30, 1), "float32")
    y = np.tile([0, 1, 2], 10).astype("int32")

    def first_check(scale):
        model = keras.Sequential(
            [keras.Input((1,)), keras.layers.Dense(3, activation="softmax", use_bias=False)]
        )
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.set_weights([scale * np.array([[2.0, 0.0, -2.0]], "float32")])
        checks = {}
        model.fit(x, y, batch_size=30, epochs=1, verbose=0,
                  callbacks=[FirstLossCheck(checks, math.log(3))])  # fmt: skip
        return checks["first_loss"]

    spread = first_check(1.0)
    assert spread["value"] == pytest.approx(math.log(math.exp(2) + 1 + math.exp(-2)), rel=1e-4)
    assert spread["ok"] and spread["range"][0] < math.log(3) < spread["range"][1]
    assert ": ok" in capsys.readouterr().out
    assert not first_check(10.0)["ok"]
    assert "far from the 1.0986" in capsys.readouterr().out


def recipe_inputs(recipe, config, count, rng):
    """A batch of what each recipe's model reads, random: token ids, TF-IDF rows, pixels."""
    if recipe == "text_ngrams":
        from tfkit.data.ngrams import inverse_document_frequency, tf_idf

        import tensorflow as tf

        # 500 n-grams a text, Zipf-drawn: about the known n-grams of an IMDB review.
        shares = 1 / np.arange(1, config.max_features - 1)
        ids = 2 + rng.choice(len(shares), size=(200, 500), p=shares / shares.sum())
        idf = inverse_document_frequency(tf.RaggedTensor.from_tensor(ids), config.max_features)
        return np.asarray(tf_idf(ids[:count], idf))
    if recipe == "cifar10_resnet":
        return rng.integers(0, 256, size=(count, 32, 32, 3)).astype("float32")
    return rng.integers(2, config.max_features, size=(count, config.max_len)).astype("int32")


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, flags",
    [
        ("imdb_conv1d", {}),
        ("imdb_rnn", {"cell": "simple_rnn"}),
        ("imdb_rnn", {"cell": "cnn_lstm"}),
        ("text_ngrams", {}),
        ("cifar10_resnet", {}),
    ],
)
def test_no_recipe_default_start_alarms_for_2_to_20_classes(recipe, flags):
    """benchmarks/first_loss.py measures more seeds, cells and text lengths."""
    module = __import__(f"recipes.{recipe}", fromlist=["build_model"])
    for k in CLASSES:
        config = module.Config(
            class_names=tuple(f"c{i}" for i in range(k)), jit_compile="off", **flags
        )
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = module.build_model(config)
        rng = np.random.default_rng(0)
        x = recipe_inputs(recipe, config, 32, rng)
        labels = rng.integers(0, k, size=32)
        y = labels.reshape(-1, 1).astype("float32") if k == 2 else labels.astype("int32")
        # The loss `fit`'s first step logs: training mode, regularisation included.
        first = float(model.compute_loss(x=x, y=y, y_pred=model(x, training=True)))
        checks = {}
        check = FirstLossCheck(checks, math.log(k))
        check.set_model(model)
        check.on_train_batch_end(0, logs={"loss": first})
        assert checks["first_loss"]["ok"], (recipe, k, first)
