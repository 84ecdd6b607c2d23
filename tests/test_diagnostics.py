"""Gradient health and the fit verdict: norms that match the gradient, rules that name the shape."""

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import keras

from tfkit.diagnostics import gradients, verdict
from tfkit.diagnostics.gradients import GradientHealth
from tfkit.optim import get_optimizer


def tiny_model(optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="relu", name="hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    model.compile(optimizer or keras.optimizers.SGD(0.1), "binary_crossentropy")
    return model


def batch(n=8):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, :1] > 0).astype("float32")


def layer_norms_by_tape(model, x, y):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    squares = {id(v): float(tf.reduce_sum(g**2)) for v, g in zip(model.trainable_variables, grads)}
    return {
        layer.name: math.sqrt(sum(squares[id(v)] for v in layer.trainable_variables))
        for layer in model.layers
    }


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_the_recorded_norms_are_the_gradients_before_clipping(tmp_path, clip):
    x, y = batch()
    model = tiny_model(get_optimizer("sgd", 0.1, global_clipnorm=clip))
    expected = layer_norms_by_tape(model, x, y)
    health = GradientHealth(str(tmp_path / "gradients.csv"), every=1)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[health])

    rows = pd.read_csv(tmp_path / "gradients.csv")
    assert list(rows.columns) == ["epoch", "step", "grad_norm", "hidden", "out"]
    assert rows[["hidden", "out"]].iloc[0].to_dict() == pytest.approx(expected, rel=1e-5)
    assert rows["grad_norm"].iloc[0] == pytest.approx(math.hypot(*expected.values()), rel=1e-5)
    assert model.history.history["grad_norm"][0] == pytest.approx(rows["grad_norm"].iloc[0])


def test_rows_every_n_steps_and_epoch_means_in_the_logs(tmp_path):
    x, y = batch(64)
    model = tiny_model()
    health = GradientHealth(str(tmp_path / "gradients.csv"), every=3)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[health])
    rows = pd.read_csv(tmp_path / "gradients.csv")
    assert list(rows["step"]) == [0, 3, 6, 9, 12, 15]
    assert list(rows["epoch"]) == [0, 0, 0, 1, 1, 1]
    epoch_1 = rows[rows["epoch"] == 1]
    assert history.history["grad_norm"][1] == pytest.approx(epoch_1["grad_norm"].mean())
    layer_means = epoch_1[["hidden", "out"]].mean()
    assert history.history["grad_norm_max_layer"][1] == pytest.approx(layer_means.max())
    assert history.history["grad_norm_min_layer"][1] == pytest.approx(layer_means.min())


def test_a_nan_gradient_stops_training_at_its_step_naming_the_layer(tmp_path, capsys):
    x, y = batch(32)
    x[20, 0] = np.inf  # the third batch of 8
    model = tiny_model()
    health = GradientHealth(str(tmp_path / "gradients.csv"), every=100)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[health])
    assert health.nonfinite == {"epoch": 0, "step": 2, "layer": "hidden"}
    assert (
        "the gradient of layer hidden is NaN or Inf at epoch 0, step 2" in capsys.readouterr().out
    )
    assert model.optimizer.iterations.numpy() == 3  # stopped there
    assert gradients.verdict(pd.read_csv(tmp_path / "gradients.csv"))[0] == "non-finite"


def test_gradient_verdicts():
    steady = [{"epoch": e, "step": 10 * e, "grad_norm": 1.0, "a": 0.5, "b": 0.8} for e in range(6)]
    assert gradients.verdict(steady)[0] == "ok"
    growing = [{**row, "grad_norm": 10.0 ** row["epoch"]} for row in steady]
    status, why, advice = gradients.verdict(growing)
    assert status == "exploding" and "epoch 5" in why
    assert any("--global-clipnorm" in line for line in advice)
    vanishing = [{**row, "a": 1e-7, "b": 0.5} for row in steady]
    assert gradients.verdict(vanishing)[0] == "vanishing"


def history(loss, val_loss=None, **columns):
    frame = pd.DataFrame({"epoch": range(len(loss)), "loss": loss, **columns})
    if val_loss is not None:
        frame["val_loss"] = val_loss
    return frame


FIRST = {"first_loss": {"value": 0.693, "expected": math.log(2), "ok": True}}


def fit_of(frame, **kwargs):
    return verdict.diagnose(frame, checks=FIRST, **kwargs)["fit"]


def test_overfitting_is_validation_loss_rising_while_training_loss_falls():
    loss = [0.69, 0.5, 0.4, 0.3, 0.22, 0.15, 0.1, 0.07, 0.05, 0.04]
    val_loss = [0.68, 0.52, 0.4, 0.33, 0.3, 0.31, 0.34, 0.38, 0.42, 0.45]
    diagnosis = verdict.diagnose(history(loss, val_loss, val_auc=[0.9] * 10), checks=FIRST)
    assert diagnosis["fit"] == "overfitting"
    assert diagnosis["best_epoch"] == 4
    assert any("--dropout" in line for line in diagnosis["advice"])


def test_not_learning_majority_class_unstable_underfitting_improving_and_good():
    flat = [0.693, 0.692, 0.693, 0.692]
    assert fit_of(history(flat, flat, val_auc=[0.5, 0.52, 0.49, 0.5])) == "not learning"
    # 10:1 data: the loss falls to the prior's entropy, but nothing but "neg" is predicted.
    imbalanced = history([0.5, 0.32, 0.31, 0.305], [0.31, 0.305, 0.304, 0.304], val_auc=[0.5] * 4)
    counts = {"train": {"neg": 1000, "pos": 100}, "test": {"neg": 500, "pos": 50}}
    test = {"accuracy": 500 / 550, "recall": 0.0, "precision": 0.0, "auc": 0.51}
    assert fit_of(imbalanced, class_counts=counts, test=test) == "majority class"
    balanced_test = {"accuracy": 0.95, "recall": 0.8, "precision": 0.7, "auc": 0.97}
    assert fit_of(imbalanced, class_counts=counts, test=balanced_test) != "majority class"
    assert fit_of(history([0.69, 0.6, 6.0, 16.2], [0.7, 0.6, 5.0, 12.0])) == "unstable"
    stuck = [0.69, 0.55, 0.5, 0.5, 0.5, 0.5]
    assert fit_of(history(stuck, [0.69, 0.56, 0.52, 0.52, 0.52, 0.52], val_auc=[0.7] * 6)) == (
        "underfitting"
    )
    falling = [0.69, 0.5, 0.4, 0.3, 0.25]
    assert fit_of(history(falling, [0.6, 0.45, 0.38, 0.33, 0.3], val_auc=[0.9] * 5)) == (
        "still improving"
    )
    assert fit_of(history(falling, [0.6, 0.45, 0.38, 0.33, 0.33], val_auc=[0.9] * 5)) == "good"
    # Two epochs of fast learning: still improving, not an underfit (no smoothing to hide it).
    assert fit_of(history([0.69, 0.38], [0.6, 0.08], val_auc=[0.7, 0.99])) == "still improving"


def test_a_run_stopped_by_nan_in_its_first_epoch_is_diagnosed_not_crashed():
    diagnosis = verdict.diagnose(history([float("nan")], [float("nan")]), checks=FIRST)
    assert diagnosis["fit"] == "unstable" and diagnosis["best_epoch"] is None
    gan = pd.DataFrame({"epoch": [0], "loss": [float("nan")], "d_loss": [float("nan")],
                        "pixel_kid": [float("nan")]})  # fmt: skip
    assert verdict.diagnose(gan)["fit"] == "unstable"


def test_a_loss_far_above_its_start_is_an_exploding_run():
    diagnosis = verdict.diagnose(history([0.69, 6.0, 16.2], [0.7, 5.0, 12.0]), checks=FIRST)
    assert (diagnosis["fit"], diagnosis["gradients"]) == ("unstable", "exploding")


def test_expected_first_loss_and_majority_baseline():
    assert verdict.expected_first_loss({"neg": 50, "pos": 50}) == pytest.approx(math.log(2))
    # Balanced class weights keep the mean weight at 1; others scale the loss.
    counts = {"neg": 900, "pos": 100}
    balanced = {0: 1000 / (2 * 900), 1: 1000 / (2 * 100)}
    assert verdict.expected_first_loss(counts, balanced) == pytest.approx(math.log(2))
    assert verdict.expected_first_loss(counts, {0: 1.0, 1: 3.0}) == pytest.approx(1.2 * math.log(2))
    assert verdict.majority_baseline(counts) == {"class": "neg", "accuracy": 0.9, "auc": 0.5}
    assert verdict.prior_loss({"neg": 50, "pos": 50}) == pytest.approx(math.log(2))
    assert verdict.prior_loss({"neg": 1000, "pos": 100}) == pytest.approx(0.3046, abs=1e-4)


def test_the_first_loss_check_flags_a_wrong_output(capsys):
    x, y = batch(16)
    keras.utils.set_random_seed(0)
    wrong = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])  # no sigmoid
    wrong.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=False))
    wrong.set_weights([np.full((4, 1), 5.0, "float32"), np.zeros(1, "float32")])
    checks = {}
    wrong.fit(x, y, epochs=1, verbose=0, callbacks=[verdict.FirstLossCheck(checks, math.log(2))])
    assert checks["first_loss"]["ok"] is False
    assert "far from the 0.6931" in capsys.readouterr().out
