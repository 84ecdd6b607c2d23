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


def test_an_embeddings_norm_is_read_at_every_step_once_tfkits_optimizer_summed_its_rows(tmp_path):
    ids = np.random.default_rng(0).integers(1, 50, (16, 6))
    y = np.random.default_rng(1).random((16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(50, 4, name="embed"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, name="out")])  # fmt: skip
    model.compile(optimizer=get_optimizer("rmsprop", 0.01), loss="mse")
    health = GradientHealth(str(tmp_path / "gradients.csv"), every=100)
    model.fit(ids, y, batch_size=8, epochs=1, verbose=0, callbacks=[health])
    # Step 1 is not a row's step (every 100): an unsummed sparse gradient is not measured there.
    assert set(health._layer_norms()) == {"embed", "out"}
    assert all(map(math.isfinite, health._layer_norms().values()))


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


def test_the_majority_class_rule_names_the_class_the_model_answers():
    falling = history([0.69, 0.5, 0.4, 0.35], [0.6, 0.45, 0.4, 0.38], val_auc=[0.9] * 4)
    # 10:1, the model always answers the minority 'pos': accuracy 0.09, far below the
    # 0.909 of always 'neg'. Not the majority-class trap, and 'neg' never named as the
    # class answered: it is the class ignored.
    counts = {"train": {"neg": 1000, "pos": 100}, "test": {"neg": 500, "pos": 50}}
    always_pos = {"accuracy": 50 / 550, "recall": 1.0, "precision": 50 / 550, "auc": 0.5}
    diagnosis = verdict.diagnose(falling, checks=FIRST, class_counts=counts, test=always_pos)
    assert diagnosis["fit"] == "ignores classes"
    assert "answering 'neg'" not in diagnosis["why"] and "ignores 'neg'" in diagnosis["why"]
    # Balanced classes, the model always answers 'pos': there is no minority class, so
    # not the majority-class trap (whose advice is for imbalanced data); 'neg' is ignored.
    tied = {"train": {"neg": 500, "pos": 500}, "test": {"neg": 50, "pos": 50}}
    always_pos = {"accuracy": 0.5, "recall": 1.0, "precision": 0.5, "auc": 0.5}
    diagnosis = verdict.diagnose(falling, checks=FIRST, class_counts=tied, test=always_pos)
    assert diagnosis["fit"] == "ignores classes"
    assert "ignores 'neg'" in diagnosis["why"] and "imbalanced" not in " ".join(diagnosis["advice"])
    # Three classes at the baseline's accuracy: 'c' never answered, but 'b' for a fifth
    # of its examples is not "(almost) only 'a'"; every minority class must be missing.
    three = {"train": {"a": 800, "b": 100, "c": 100}, "test": {"a": 80, "b": 10, "c": 10}}
    mostly_a = {"accuracy": 0.8, "confusion_matrix": [[79, 1, 0], [9, 1, 0], [10, 0, 0]]}
    diagnosis = verdict.diagnose(falling, checks=FIRST, class_counts=three, test=mostly_a)
    assert diagnosis["fit"] != "majority class"
    only_a = {"accuracy": 0.8, "confusion_matrix": [[80, 0, 0], [10, 0, 0], [10, 0, 0]]}
    diagnosis = verdict.diagnose(falling, checks=FIRST, class_counts=three, test=only_a)
    assert diagnosis["fit"] == "majority class" and "always answering 'a'" in diagnosis["why"]


def weighted_start(expected, val_expected):
    """A first-loss check as a class-weighted run records it: the training loss is
    weighted, Keras's validation loss is not."""
    return {
        "first_loss": {
            "value": expected,
            "expected": expected,
            "val_expected": val_expected,
            "ok": True,
        }
    }


def test_validation_loss_is_judged_against_the_unweighted_start():
    # --class-weight 0=1,1=3 at 10:1: training starts at 1.18 ln 2, validation at ln 2.
    checks = weighted_start(1300 / 1100 * math.log(2), math.log(2))
    flat = history(
        [0.82, 0.815, 0.816, 0.815], [0.693, 0.692, 0.693, 0.692], val_auc=[0.5, 0.51, 0.5, 0.5]
    )
    diagnosis = verdict.diagnose(flat, checks=checks)
    assert diagnosis["fit"] == "not learning"
    assert "below its start 0.693" in diagnosis["why"]
    # Weights of 0.3 on 3 classes: training starts at 0.3 ln 3, validation at ln 3; a
    # validation accuracy from 0.33 to 0.71 is learning.
    checks = weighted_start(0.3 * math.log(3), math.log(3))
    learning = history(
        [0.33, 0.3, 0.27, 0.24],
        [1.10, 0.95, 0.85, 0.75],
        val_accuracy=[0.33, 0.5, 0.62, 0.71],
    )
    assert verdict.diagnose(learning, checks=checks)["fit"] == "still improving"
    # A record from before validation had its own reference is judged as it was.
    old = {"first_loss": {"value": 0.693, "expected": math.log(2), "ok": True}}
    assert verdict.diagnose(flat, checks=old)["fit"] == "not learning"


def test_the_validation_start_ignores_class_weights():
    counts = {"neg": 1000, "pos": 100}
    heavier = {0: 1.0, 1: 3.0}
    balanced = {0: 1100 / 2000, 1: 1100 / 200}
    # Starting uniform: ln K whatever the weights.
    assert verdict.validation_first_loss(counts) == pytest.approx(math.log(2))
    assert verdict.validation_first_loss(counts, class_weight=heavier) == pytest.approx(
        math.log(2)
    )
    # Starting at the prior (--initial-bias auto): the mix trained on, scored on the true mix.
    assert verdict.validation_first_loss(counts, from_prior=True) == pytest.approx(
        verdict.prior_loss(counts)
    )
    assert verdict.validation_first_loss(
        counts, class_weight=balanced, from_prior=True
    ) == pytest.approx(math.log(2))
    weighted_mix = np.array([1000, 300]) / 1300
    assert verdict.validation_first_loss(
        counts, class_weight=heavier, from_prior=True
    ) == pytest.approx(-(np.array([1000, 100]) / 1100 * np.log(weighted_mix)).sum())
    resampled = {"neg": 550, "pos": 550}  # balanced epochs: the prior's bias is 0
    assert verdict.validation_first_loss(
        counts, trained_counts=resampled, from_prior=True
    ) == pytest.approx(math.log(2))

    x, y = batch(16)
    checks = {}
    tiny_model().fit(
        x, y, epochs=1, verbose=0, callbacks=[verdict.FirstLossCheck(checks, 0.8, 0.3, 0.69)]
    )
    assert checks["first_loss"]["expected"] == 0.8
    assert checks["first_loss"]["val_expected"] == 0.69


def scores(accuracy, macro_f1=None, per_class=None, loss=0.4):
    """A split's metrics as `evaluate_classifier` writes them (the parts the doctor reads)."""
    result = {"accuracy": accuracy, "macro_f1": accuracy if macro_f1 is None else macro_f1}
    if per_class:
        result["per_class"] = per_class
    return {**result, "loss": loss}


def classes(**recalls):
    """`per_class` of 50 examples each, with these recalls."""
    return {name: {"precision": 0.8, "recall": r, "examples": 50} for name, r in recalls.items()}


BASELINE = "TF-IDF 1-2-grams + linear"
BALANCED = {"train": {"neg": 500, "pos": 500}, "val": {"neg": 50, "pos": 50},
            "test": {"neg": 50, "pos": 50}}  # fmt: skip
GOOD = history([0.69, 0.5, 0.4, 0.3, 0.25], [0.6, 0.45, 0.38, 0.33, 0.33], val_auc=[0.9] * 5)


def baseline(val, test):
    return {"model": BASELINE, "val": val, "test": test, "seconds": 4.2}


def answered(labels, right, k=2):
    """Predicted class ids: the true class where `right`, the next class elsewhere."""
    labels = np.asarray(labels)
    return np.where(right, labels, (labels + 1) % k)


def evaluated(labels, predicted, names=("neg", "pos")):
    """A split's metrics as `evaluate_classifier` returns them, from its answers."""
    k = len(names)
    matrix = np.bincount(np.asarray(labels) * k + predicted, minlength=k * k).reshape(k, k)
    per_class = verdict.per_class(matrix, names)
    f1s = [2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"])
           if c["precision"] + c["recall"] else 0.0 for c in per_class.values()]  # fmt: skip
    return {"accuracy": float(np.trace(matrix) / matrix.sum()), "macro_f1": float(np.mean(f1s)),
            "loss": 0.4, "confusion_matrix": matrix.tolist(), "per_class": per_class,
            "predicted": [int(p) for p in predicted]}  # fmt: skip


def paired(n, both, model_only, baseline_only):
    """n labels of two balanced classes, and the model's and the baseline's evaluated answers:
    both right on `both` examples, only the model on `model_only`, only the baseline on
    `baseline_only`, both wrong on the rest."""
    labels, index = np.arange(n) % 2, np.arange(n)
    model_right = index < both + model_only
    baseline_right = (index < both) | (index >= both + model_only) & (
        index < both + model_only + baseline_only
    )
    return (
        labels,
        evaluated(labels, answered(labels, model_right)),
        evaluated(labels, answered(labels, baseline_right)),
    )


def halves(n):
    return {"neg": n // 2, "pos": n // 2}


def test_a_model_far_below_the_linear_baseline_is_called_so():
    # The curves alone say good; the baseline's validation accuracy is 5.5 points higher,
    # on 400 examples: it alone is right on 32, the model alone on 10 (McNemar p 0.001).
    labels, model, linear_val = paired(400, 322, 10, 32)
    linear = baseline(linear_val, scores(0.88))
    counts = {"train": halves(1000), "val": halves(400), "test": halves(400)}
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=counts, val=model, test=model,
                                 baseline=linear, labels={"val": labels})  # fmt: skip
    assert diagnosis["fit"] == "below baseline"
    why = diagnosis["why"]
    assert "validation accuracy 0.830" in why and "0.885" in why and "5.5 points" in why
    assert "p = 0.00094 by McNemar's exact test (only the model right on 10 validation" in why
    assert "the curves alone say good" in why  # the other finding is named
    advice = " ".join(diagnosis["advice"])
    for remedy in ("python -m recipes.text_ngrams", "--learning-rate auto", "--batch-size",
                   "--epochs"):  # fmt: skip
        assert remedy in advice
    assert diagnosis["baseline"].startswith("trails the baseline's validation accuracy 0.885 by")
    assert diagnosis["baseline"].endswith(": not chance")
    assert diagnosis["baseline_test"] == {
        "split": "val", "metric": "accuracy", "test": "McNemar's exact test", "b": 10, "c": 32,
        "p": pytest.approx(verdict.mcnemar_p(10, 32)), "alpha": 0.05,
    }  # fmt: skip
    assert "baseline:" in verdict.describe(diagnosis)
    # Overfitting and underfitting alike: the baseline outranks what the curves say.
    overfit = history(
        [0.69, 0.5, 0.4, 0.3, 0.22, 0.15, 0.1, 0.07, 0.05, 0.04],
        [0.68, 0.52, 0.4, 0.33, 0.3, 0.31, 0.34, 0.38, 0.42, 0.45],
        val_auc=[0.9] * 10,
    )
    diagnosis = verdict.diagnose(overfit, checks=FIRST, val=model, baseline=linear,
                                 labels={"val": labels})  # fmt: skip
    assert diagnosis["fit"] == "below baseline" and "the curves alone say overfitting" in (
        diagnosis["why"]
    )
    assert any("--dropout" in line for line in diagnosis["advice"])  # its advice kept too
    # A run that does not learn at all is still called that; the baseline is named.
    flat = history([0.693, 0.692, 0.693, 0.692], [0.693] * 4, val_auc=[0.5, 0.52, 0.49, 0.5])
    labels, lost, linear_val = paired(400, 190, 10, 164)
    diagnosis = verdict.diagnose(flat, checks=FIRST, val=lost, baseline=baseline(linear_val, None),
                                 labels={"val": labels})  # fmt: skip
    assert diagnosis["fit"] == "not learning" and "38.5 points below the baseline's" in (
        diagnosis["why"]
    )


def test_a_few_points_behind_on_a_small_split_is_chance_not_below_baseline():
    # 7.5 points behind on 40 examples: the baseline alone right on 4, the model alone on 1.
    labels, model, linear_val = paired(40, 31, 1, 4)
    assert (model["accuracy"], linear_val["accuracy"]) == (0.8, 0.875)
    small = verdict.diagnose(GOOD, checks=FIRST, val=model, baseline=baseline(linear_val, None),
                             labels={"val": labels})  # fmt: skip
    assert small["fit"] == "good"
    assert small["baseline_test"]["p"] == 0.375  # 2 * (1 + 5) / 2**5
    assert small["baseline"].endswith(": could be chance")
    assert "below the baseline" not in small["why"]
    # The same rates on 10 times the examples: 10 against 40 is no chance (p 1.6e-5).
    labels, model, linear_val = paired(400, 310, 10, 40)
    large = verdict.diagnose(GOOD, checks=FIRST, val=model, baseline=baseline(linear_val, None),
                             labels={"val": labels})  # fmt: skip
    assert large["fit"] == "below baseline" and large["baseline_test"]["p"] < 1e-4


def test_mcnemar_p_is_the_two_sided_binomial_tail():
    # scipy.stats.binomtest(min(b, c), b + c).pvalue, exact fractions.
    assert verdict.mcnemar_p(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # 0.0386
    assert verdict.mcnemar_p(0, 10) == pytest.approx(2 / 2**10)
    assert verdict.mcnemar_p(1, 4) == verdict.mcnemar_p(4, 1) == 0.375
    assert verdict.mcnemar_p(5, 5) == 1.0 and verdict.mcnemar_p(0, 0) == 1.0
    # Thousands of discordant examples: exact integers, no overflow or underflow to NaN.
    assert 0 < verdict.mcnemar_p(900, 1100) < 1e-5
    assert verdict.mcnemar_p(1000, 1000) == 1.0


def test_without_paired_answers_a_shortfall_is_said_but_not_called_below_baseline():
    linear = baseline(scores(0.885), scores(0.88))
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=BALANCED, val=scores(0.83),
                                 baseline=linear)  # fmt: skip
    assert diagnosis["fit"] == "good" and "baseline_test" not in diagnosis
    assert diagnosis["baseline"].endswith("whether by chance is unknown: no per-example answers "
                                          "to pair")  # fmt: skip
    # Answers that do not pair with the labels (another order) are not tested either.
    labels, model, linear_val = paired(400, 310, 10, 40)
    shifted = {"val": np.roll(labels, 1)}
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, val=model, baseline=baseline(linear_val, None),
                                 labels=shifted)  # fmt: skip
    assert diagnosis["fit"] == "good" and "baseline_test" not in diagnosis


@pytest.mark.parametrize(
    "recipe, kind, model_name, says, never",
    [
        ("imdb_conv1d", "text", BASELINE, "python -m recipes.text_ngrams", "--units"),
        ("imdb_rnn", None, BASELINE, "python -m recipes.text_ngrams", "--units"),
        ("text_ngrams", "text", BASELINE, "--units", "recipes.text_ngrams"),
        ("cifar10_resnet", "pixels", "pixels (32x32x3) + linear", "on the pixels", "n-grams"),
        ("cifar10_resnet", None, "pixels (32x32x3) + linear", "on the pixels", "n-grams"),
    ],
)
def test_the_advice_below_the_baseline_fits_the_recipe(recipe, kind, model_name, says, never):
    labels, model, linear_val = paired(400, 310, 10, 40)
    linear = {"model": model_name, "val": linear_val, "test": None, "seconds": 1.0}
    if kind:
        linear["kind"] = kind  # a baseline.json from before it said is read by its model
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, val=model, baseline=linear,
                                 labels={"val": labels}, recipe=recipe)  # fmt: skip
    assert diagnosis["fit"] == "below baseline"
    advice = " ".join(diagnosis["advice"])
    assert says in advice and never not in advice and "--learning-rate auto" in advice


def test_within_two_points_of_the_baseline_or_above_it_is_stated_not_alarmed():
    linear = baseline(scores(0.871), scores(0.86))
    ahead = verdict.diagnose(
        GOOD, checks=FIRST, class_counts=BALANCED, val=scores(0.894), baseline=linear
    )
    assert ahead["fit"] == "good"
    assert ahead["baseline"] == "beats the baseline's validation accuracy 0.871 by 2.3 points"
    assert ahead["baseline"] in verdict.describe(ahead)
    behind = verdict.diagnose(
        GOOD, checks=FIRST, class_counts=BALANCED, val=scores(0.855), baseline=linear
    )
    assert behind["fit"] == "good"
    assert behind["baseline"].startswith(
        "trails the baseline's validation accuracy 0.871 by 1.6 points;"
    )
    # 1.75 points behind on 4,000 examples is no chance, yet within the 2 points allowed.
    labels, model, linear_val = paired(4000, 3400, 30, 100)
    close = verdict.diagnose(GOOD, checks=FIRST, val=model, baseline=baseline(linear_val, None),
                             labels={"val": labels})  # fmt: skip
    assert close["fit"] == "good" and close["baseline"].endswith(": not chance")
    # Without a validation split (k-fold, --retrain-best) the test scores are compared, and said so.
    labels, model, linear_test = paired(500, 380, 20, 50)
    no_val = verdict.diagnose(GOOD, checks=FIRST, test=model, baseline=baseline(None, linear_test),
                              labels={"test": labels})  # fmt: skip
    assert no_val["fit"] == "below baseline" and no_val["baseline_test"]["split"] == "test"
    assert "test accuracy 0.800" in no_val["why"] and "no validation split" in no_val["why"]
    # No baseline (--no-baseline): no field, the fit as before.
    plain = verdict.diagnose(GOOD, checks=FIRST, class_counts=BALANCED, val=scores(0.6))
    assert plain["fit"] == "good" and "baseline" not in plain


def test_the_baseline_is_compared_on_macro_f1_for_many_or_imbalanced_classes():
    # Accuracy would say the model is ahead; macro-F1 says it is 10 points behind.
    model, linear = scores(0.92, macro_f1=0.70), baseline(scores(0.90, macro_f1=0.80), None)
    three = {"train": {"a": 300, "b": 300, "c": 300}}
    comparison = verdict.baseline_comparison(three, model, None, linear)
    assert comparison["metric"] == "macro_f1" and "3 classes" in comparison["reason"]
    skewed = {"train": {"neg": 1000, "pos": 499}}  # the smallest under half the largest
    comparison = verdict.baseline_comparison(skewed, model, None, linear)
    assert comparison["metric"] == "macro_f1" and "imbalanced" in comparison["reason"]
    even = {"train": {"neg": 1000, "pos": 500}}  # exactly half: balanced enough, accuracy
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=even, val=model, baseline=linear)
    assert diagnosis["fit"] == "good" and "accuracy 0.900 by 2.0 points" in diagnosis["baseline"]
    # Paired answers on 800 'neg' and 200 'pos': the model answers 'pos' right 80 times,
    # the baseline 150, and 'neg' 800 to 720. Accuracy 0.88 to 0.87; macro-F1 0.75 to 0.81,
    # which a paired permutation test finds no chance (p 0.006; McNemar's tests accuracy).
    labels = np.array([0] * 800 + [1] * 200)
    index = np.arange(1000)
    model = evaluated(labels, answered(labels, (index < 800) | (index >= 920)))
    linear = evaluated(labels, answered(labels, (index < 720) | (index >= 850)))
    assert (model["accuracy"], linear["accuracy"]) == (0.88, 0.87)
    linear, labels_of = baseline(linear, None), {"val": labels}
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=skewed, val=model,
                                 baseline=linear, labels=labels_of)  # fmt: skip
    assert diagnosis["fit"] == "below baseline" and "imbalanced" in diagnosis["why"]
    test = diagnosis["baseline_test"]
    assert test["metric"] == "macro_f1" and test["test"].startswith("paired permutation test")
    assert test["p"] < 0.05 and (test["b"], test["c"]) == (80, 70)
    # On half the examples the same rates could be chance (p 0.07): not below baseline.
    halved = np.arange(0, 1000, 2)
    model = evaluated(labels[halved], np.asarray(model["predicted"])[halved])
    halved_linear = evaluated(labels[halved], np.asarray(linear["val"]["predicted"])[halved])
    linear = baseline(halved_linear, None)
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=skewed, val=model,
                                 baseline=linear, labels={"val": labels[halved]})  # fmt: skip
    assert diagnosis["fit"] == "good" and diagnosis["baseline"].endswith(": could be chance")


def test_classes_the_model_ignores_are_named_whatever_the_fit():
    # Two balanced classes, recall 0.1 on 'pos': the curves look good, the model does not.
    model = scores(0.55, per_class=classes(neg=1.0, pos=0.1))
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=BALANCED, test=model)
    assert diagnosis["fit"] == "ignores classes"
    assert "'pos'" in diagnosis["why"] and "recall 0.10" in diagnosis["why"]
    assert "the curves alone say good" in diagnosis["why"]
    assert diagnosis["ignored_classes"] == [
        {"class": "pos", "split": "test", "recall": 0.1, "examples": 50}
    ]
    assert "'pos'" in verdict.describe(diagnosis)
    # From a confusion matrix too (K = 3), on both splits; under 10 examples is no evidence.
    matrix = {"accuracy": 0.7, "confusion_matrix": [[40, 0, 0], [18, 2, 0], [9, 0, 0]]}
    three = {"val": {"a": 40, "b": 20, "c": 9}, "test": {"a": 40, "b": 20, "c": 9}}
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=three, val=matrix, test=matrix)
    assert [(c["class"], c["split"]) for c in diagnosis["ignored_classes"]] == [
        ("b", "val"),
        ("b", "test"),
    ]
    # Ignoring a class outranks the baseline, which the why still names.
    labels, index = np.arange(100) % 2, np.arange(100)
    ignoring = evaluated(labels, answered(labels, (labels == 0) | (index < 10)))
    linear = baseline(evaluated(labels, answered(labels, index < 90)), None)
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=BALANCED, val=ignoring,
                                 baseline=linear, labels={"val": labels})  # fmt: skip
    assert diagnosis["fit"] == "ignores classes" and "below the baseline's" in diagnosis["why"]
    assert any("--class-weight balanced" in line for line in diagnosis["advice"])
    # A run that does not learn keeps its name, and the ignored class is still named.
    flat = history([0.693, 0.692, 0.693, 0.692], [0.693] * 4, val_auc=[0.5, 0.52, 0.49, 0.5])
    diagnosis = verdict.diagnose(flat, checks=FIRST, class_counts=BALANCED, val=model)
    assert diagnosis["fit"] == "not learning" and "'pos'" in diagnosis["why"]
    assert diagnosis["ignored_classes"][0]["class"] == "pos"
    # The majority-class trap keeps its message, and names the classes it ignores.
    imbalanced = history([0.5, 0.32, 0.31, 0.305], [0.31, 0.305, 0.304, 0.304], val_auc=[0.5] * 4)
    counts = {"train": {"neg": 1000, "pos": 100}, "test": {"neg": 500, "pos": 50}}
    test = {"accuracy": 500 / 550, "recall": 0.0, "precision": 0.0, "auc": 0.51}
    diagnosis = verdict.diagnose(imbalanced, checks=FIRST, class_counts=counts, test=test)
    assert diagnosis["fit"] == "majority class"
    assert "always answering 'neg'" in diagnosis["why"] and "ignores 'pos'" in diagnosis["why"]
    # A healthy model ignores nothing: an empty list.
    fine = scores(0.9, per_class=classes(neg=0.9, pos=0.9))
    diagnosis = verdict.diagnose(GOOD, checks=FIRST, class_counts=BALANCED, val=fine, test=fine)
    assert diagnosis["fit"] == "good" and diagnosis["ignored_classes"] == []


def test_the_line_beside_the_results_compares_with_the_baseline():
    record = {
        "test": scores(0.912, macro_f1=0.905),
        "baseline": {**baseline(scores(0.9), scores(0.897, macro_f1=0.889)), "seconds": 4.14},
    }
    assert verdict.compare_with_baseline(record) == (
        "test accuracy 0.912, macro-F1 0.905 | baseline (TF-IDF 1-2-grams + linear, 4.1 s): "
        "0.897, 0.889"
    )
    assert verdict.compare_with_baseline({"test": scores(0.9)}) is None  # --no-baseline


def test_a_finished_run_hands_the_doctor_its_validation_and_baseline(tmp_path, capsys):
    import json
    from types import SimpleNamespace

    from tfkit import runs
    from tfkit.data.splits import Splits

    GOOD.to_csv(tmp_path / "history.csv", index=False)
    labels, model, linear_val = paired(400, 310, 10, 40)  # 0.800 against 0.875
    test_labels, model_test, linear_test = paired(200, 150, 10, 20)  # 0.800 against 0.850
    run = runs.Run("imdb_conv1d", str(tmp_path), SimpleNamespace(batch_size=32, data="csv"),
                   tf.distribute.get_strategy(), checks=FIRST)  # fmt: skip
    run.results["baseline"] = {**baseline(linear_val, linear_test), "kind": "text"}
    inputs = np.zeros((len(labels), 1))
    splits = Splits((inputs, labels), (inputs, labels), (inputs[:200], test_labels), "csv")
    record = runs.finish_run(run, splits, val=model, test=model_test)
    diagnosis = record["diagnosis"]
    assert diagnosis["fit"] == "below baseline"
    assert diagnosis["baseline_test"]["b"] == 10 and diagnosis["baseline_test"]["c"] == 40
    assert "python -m recipes.text_ngrams" in diagnosis["advice"][0]
    printed = capsys.readouterr().out
    assert (
        "test accuracy 0.800, macro-F1 0.800 | baseline (TF-IDF 1-2-grams + linear, 4.2 s): "
        "0.850, 0.850"
    ) in printed
    assert "fit: below baseline" in printed
    # The per-example ids paired the answers; metrics.json keeps the scores only.
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["diagnosis"]["baseline_test"]["p"] == pytest.approx(verdict.mcnemar_p(10, 40))
    for scores_of in (written["val"], written["test"], written["baseline"]["val"],
                      written["baseline"]["test"]):  # fmt: skip
        assert "predicted" not in scores_of and "confusion_matrix" in scores_of
    assert "predicted" in run.results["baseline"]["val"]  # baseline.json's copy is kept
