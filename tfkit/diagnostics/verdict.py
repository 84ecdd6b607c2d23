"""The checks at the start of a run and the fit verdict at its end, in the documents' words.

At the start (`FirstLossCheck`): the first step's loss against what a model that
has learned nothing yet should score, ln K for K classes (Karpathy's "loss at init"):
far off means a wrong output layer, loss or labels. An untrained output is not quite
uniform: its random logits cost some loss above ln K (`untrained_loss`), and the check
allows what logits spread N(0, 8^2) cost (`first_loss_range`). Class weights weigh the
training loss only; Keras's `val_loss` has none, so validation gets its own, unweighted,
start (`validation_first_loss`), and the rules below that read validation loss use it.

At the end (`diagnose`), from `history.csv` smoothed over 3 epochs, one rule each,
the first that holds:

- unstable: training loss rose over 25% (and over 5% of its start) from one epoch to
  the next, is NaN, or went above 3x its start;
- not learning: validation loss (training loss without validation) still within 5% of
  its start and AUC below 0.6;
- majority class: accuracy within 0.01 (either way) of always answering the commonest
  class, which the model answers, and every other class (almost) never predicted
  (000: the accuracy trap);
- overfitting: validation loss rose over 10% above its minimum for 3 or more epochs
  while training loss fell, or rose 2% over 2 or more epochs while training loss fell
  below a quarter of it, and by a tenth of the start or more (004 §3: "the training
  error far below the test error");
- underfitting: training loss still above half its start and no longer falling
  (004 §3: "the model cannot reach a low training error");
- still improving: validation loss still fell over 1% in the last epoch (train longer);
- good: none of the above.

Then the scores of the restored weights (`val`, `test`) are heard, and outrank the
last four fits, which read the curves only:

- ignores classes: a class of 10 or more examples in the validation or test split
  has recall under 0.2 there: the model answers other classes for it (the
  majority-class rule is its extreme, and keeps its own message);
- below baseline: the model's validation score (test without validation) is more
  than 2 points below the linear baseline's (TF-IDF of 1-2-grams, or the pixels;
  `baseline` in metrics.json), on accuracy, or macro-F1 for K > 2 or imbalanced
  training classes, and the shortfall is no chance: a paired test of the two models'
  answers on the same examples gives p < 0.05 (`baseline_test` in the diagnosis):
  McNemar's exact test on accuracy, a paired permutation test on macro-F1 (which
  McNemar's cannot test). A few points on a small validation split are what chance gives.

Ignoring classes wins over being below the baseline: it names what is wrong. Every
finding the fit does not name (the curves' fit it replaced, an ignored class under
`not learning`, the baseline under `ignores classes`) is said in the why.

The DCGAN has no classes; its verdict reads `pixel_kid` and the two losses.
"""

import math

import numpy as np
import keras

from tfkit.diagnostics import gradients

SMOOTHING_EPOCHS = 3
NOT_LEARNING_LOSS = 0.95  # of the start
NOT_LEARNING_AUC = 0.6
MAJORITY_MARGIN = 0.01
NEVER_PREDICTED = 0.01  # of the class's examples
UNSTABLE_RISE = 1.25  # epoch over epoch
UNSTABLE_MIN_RISE = 0.05  # of the start
FAR_ABOVE_START = 3.0
OVERFIT_RISE = 1.10
OVERFIT_EPOCHS = 3
OVERFIT_GAP_RISE = 1.02  # ... or a smaller rise, with training loss far below validation's:
FAR_BELOW = 0.25  # below a quarter of it,
GAP = 0.1  # and below it by a tenth of the start or more
UNDERFIT_LOSS = 0.5  # of the start
STILL_IMPROVING = 0.01
# The first loss may lie below its expected value by half of it (lower: the labels leak,
# or the loss is mis-scaled), and above it as far as an untrained output whose logits
# spread N(0, 8^2) (`untrained_loss`): 3.3 for K = 2, 6.9 for 3, 12.5 for 10. Measured
# by benchmarks/first_loss.py (K = 2 to 20, 5 seeds each), the recipes' default
# initialisations start at an implied spread of at most 0.33 (Conv1D, every RNN cell),
# 2.1 (ResNet; its 2.19 against ln 3 once is 2.2) and 1.3 to 4.2 (text_ngrams, from
# IMDB-length texts to every text at its 2,000 n-gram cap: its TF-IDF rows are not
# normalised, so long texts start confident; a cruder IDF once gave 6.4, hence 8). With
# the output layer's weights 10x, the ResNet alarms in 19 of 25 starts and text_ngrams
# on long texts in all; Conv1D and RNN starts stay near uniform even then (at most
# 2.0 ln K), which no first loss tells from a sound start.
FIRST_LOSS_BELOW = 0.5  # of the expected value
FIRST_LOSS_LOGIT_SPREAD = 8.0
IGNORED_RECALL = 0.2
IGNORED_MIN_EXAMPLES = 10  # fewer is no evidence either way
BELOW_BASELINE_POINTS = 2.0  # of accuracy or macro-F1, in hundredths
SIGNIFICANCE = 0.05  # the paired test's p under which the baseline's lead is not chance
PERMUTATIONS = 2000  # draws of the macro-F1 test: p to within about 0.005 near 0.05
IMBALANCED = 0.5  # the smallest training class under half the largest: macro-F1
# The fits the curves give, which the scores outrank: a model that ignores a class, or
# that a linear model on n-grams beats, is no good fit however its loss looks.
CURVE_FITS = ("overfitting", "underfitting", "still improving", "good")
SPLIT_NAMES = {"val": "validation", "test": "test"}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}

ADVICE = {
    "not learning": [
        "check the labels and the output layer: compare the first loss with its expected value",
        "find a learning rate that learns: --lr-find, or --learning-rate auto (004)",
        "check the model can fit at all: --overfit-batches 2 (004: overfit a small subset first)",
    ],
    "majority class": [
        "accuracy misleads on imbalanced data: read PR-AUC, AUC, recall and F1 instead (000)",
        "weight the classes: --class-weight balanced (000, 004)",
        "or resample the training data: --oversample or --undersample (004); and start "
        "the output at the class prior: --initial-bias auto",
    ],
    "unstable": gradients.REMEDIES["exploding"],  # 000 §33's fixes for an unstable loss
    "overfitting": [
        "more training data, or data augmentation (004 §3)",
        "regularise: --dropout 0.5, --l2 1e-4 (001, 004 §3)",
        "keep early stopping on (it restored the best epoch's weights)",
        "a smaller model: fewer units or filters (004 §3: match the model to the data)",
    ],
    "underfitting": [
        "more capacity: more units, filters or layers (004 §3)",
        "train longer (--epochs) or with a higher learning rate (--lr-find)",
        "less regularisation: lower --dropout and --l2",
    ],
    "ignores classes": [
        "read each class's recall (the report's per-class table) and macro-F1, not accuracy "
        "(000)",
        "weight the classes: --class-weight balanced, or resample: --oversample or "
        "--undersample (004)",
        "look at the ignored classes' examples: too few, mislabelled, or like another class's",
    ],
    "below baseline": [  # and first what fits the run (`BELOW_BASELINE_FIRST`)
        "find a learning rate that learns: --learning-rate auto (004)",
        "more updates: a smaller --batch-size, and more --epochs",
    ],
    "still improving": ["train longer: more --epochs (validation loss was still falling)"],
    "good": [],
}
# What a run below its baseline tries first, by what it is: a sequence model on text, the
# bag of n-grams itself, or a model on pictures (whose baseline reads the pixels).
BELOW_BASELINE_FIRST = {
    "text": "a bag of n-grams already does better: python -m recipes.text_ngrams",
    "text_ngrams": "a linear model on the same n-grams does better: regularise the hidden "
    "layer (--dropout, --l2) or narrow it (--units)",
    "pixels": "a linear model on the pixels does better: the network has not learned the "
    "pictures yet; check the learning rate first, then give it more epochs",
}


def expected_first_loss(class_counts, class_weight=None):
    """The loss of a model that predicts every class equally: ln K, times the mean class weight.

    Args:
        class_counts: {class name: count} of the training split, in label order.
        class_weight: `fit`'s class weights {label: weight}, or None.
    """
    counts = np.array(list(class_counts.values()), dtype="float64")
    scale = float((counts * weights_in_label_order(class_weight, len(counts))).sum() / counts.sum())
    return math.log(len(counts)) * scale


def prior_loss(class_counts, class_weight=None):
    """The loss of a model that has learned only the class mix: the prior's entropy.

    ln K on balanced classes; lower on imbalanced ones (0.305 at 10:1). With class
    weights, the mix as weighted and the loss weighted alike (ln K again with balanced
    weights). A first loss near it means the output starts from the prior (an initial
    bias).
    """
    counts = np.array(list(class_counts.values()), dtype="float64")
    mass = counts * weights_in_label_order(class_weight, len(counts))
    present = mass > 0
    shares = mass[present] / mass.sum()
    return float(-(mass[present] * np.log(shares)).sum() / counts.sum())


def validation_first_loss(class_counts, trained_counts=None, class_weight=None, from_prior=False):
    """What the first validation loss should be: Keras scores validation without class weights.

    A model starting uniform scores ln K, whatever the weights. One starting at the
    prior (`--initial-bias auto`) predicts the mix it trains on, as weighted; scored
    on the true mix, that is their cross-entropy (the prior's entropy without weights).

    Args:
        class_counts: {class name: count} of the training split as drawn (before any
            resampling); validation, stratified, has its mix.
        trained_counts: the counts one epoch trains on (`trained_counts`), if resampled.
        class_weight: `fit`'s class weights {label: weight}, or None.
        from_prior: whether the output starts at the prior (`--initial-bias auto`).
    """
    true = np.array(list(class_counts.values()), dtype="float64")
    if not from_prior:
        return math.log(len(true))
    trained = np.array(list((trained_counts or class_counts).values()), dtype="float64")
    # The start the initial bias gives (`tfkit.callbacks.InitialBias`), floored alike.
    mass = np.maximum(trained * weights_in_label_order(class_weight, len(trained)), 1e-12)
    present = true > 0
    return float(-(true[present] * np.log(mass[present] / mass.sum())).sum() / true.sum())


def untrained_loss(num_classes, spread):
    """The mean loss of an output whose logits are N(0, spread^2), labels drawn apart from them.

    ln K at spread 0; more as a random start answers more confidently (Jensen). One
    sigmoid logit for two classes, as the recipes' outputs; a softmax over K otherwise.
    A fixed, local random draw: the same bound every time, and the run's seeds untouched.
    """
    columns = 1 if num_classes == 2 else num_classes
    logits = spread * np.random.default_rng(0).standard_normal((20_000, columns))
    if num_classes == 2:
        return float(np.logaddexp(0.0, logits).mean())
    return float((np.logaddexp.reduce(logits, axis=1) - logits.mean(axis=1)).mean())


def first_loss_range(expected, num_classes):
    """The first losses a sound start gives: (low, high) around `expected` (see
    FIRST_LOSS_LOGIT_SPREAD). A class-weighted or prior start scales the allowance with it."""
    excess = untrained_loss(num_classes, FIRST_LOSS_LOGIT_SPREAD) / math.log(num_classes)
    return (1 - FIRST_LOSS_BELOW) * expected, expected * excess


def weights_in_label_order(class_weight, num_classes):
    """`fit`'s {label: weight} as an array in label order (1 where absent)."""
    return np.array([(class_weight or {}).get(label, 1.0) for label in range(num_classes)])


def confusion(metrics, class_counts):
    """The confusion matrix of a split, rows the true class, columns the predicted.

    The evaluated `confusion_matrix` where the metrics hold one (the test split); for
    two classes otherwise derived from the logged `precision` and `recall` and the
    split's class counts, [[TN, FP], [FN, TP]]; None when neither is there.
    """
    if "confusion_matrix" in metrics:
        return np.array(metrics["confusion_matrix"], dtype="float64")
    if len(class_counts) != 2 or not {"precision", "recall"} <= set(metrics):
        return None
    negatives, positives = class_counts.values()
    true_positive = float(metrics["recall"]) * positives
    precision = float(metrics["precision"])
    predicted_positive = true_positive / precision if precision > 0 else 0.0
    false_positive = predicted_positive - true_positive
    return np.array(
        [[negatives - false_positive, false_positive], [positives - true_positive, true_positive]]
    )


def per_class(matrix, class_names, undefined=0.0):
    """{name: {"precision", "recall", "examples"}} of each class from a confusion matrix.

    Rows are the true class. A precision of a class never predicted (or a recall of
    one never present) is `undefined`: 0.0 as Keras's metrics say, or NaN for display.
    """
    matrix = np.asarray(matrix)
    result = {}
    for index, name in enumerate(class_names):
        hits, said, actual = matrix[index, index], matrix[:, index].sum(), matrix[index].sum()
        result[name] = {
            "precision": float(hits / said) if said else undefined,
            "recall": float(hits / actual) if actual else undefined,
            "examples": int(actual),
        }
    return result


def majority_baseline(class_counts):
    """Always answering the commonest class: {"class", "accuracy", "auc"} (AUC 0.5)."""
    total = sum(class_counts.values())
    name = max(class_counts, key=class_counts.get)
    return {"class": name, "accuracy": class_counts[name] / total if total else 0.0, "auc": 0.5}


class FirstLossCheck(keras.callbacks.Callback):
    """Compares the first step's loss with `expected`; prints one line; keeps the result.

    The result goes to `checks["first_loss"]`, which `tfkit.runs.finish_run` records
    in the diagnosis; a backup keeps it, so a resumed run still reports it. Beside it
    `val_expected`, the unweighted start validation loss is judged against (the same
    as `expected` without class weights).
    """

    def __init__(self, checks, expected, prior=None, val_expected=None):
        super().__init__()
        self.checks = checks
        self.expected = expected
        self.prior = prior  # the loss of a model that knows the class mix only
        self.val_expected = expected if val_expected is None else val_expected

    def backup_state(self):
        return {"first_loss": self.checks.get("first_loss")}

    def restore_state(self, state):
        if state.get("first_loss"):
            self.checks["first_loss"] = state["first_loss"]

    def on_train_batch_end(self, batch, logs=None):
        if "first_loss" in self.checks or "loss" not in (logs or {}):
            return
        first = float(logs["loss"])
        low, high = first_loss_range(self.expected, self._num_classes())
        result = {
            "value": first,
            "expected": self.expected,
            "val_expected": self.val_expected,
            "prior_loss": self.prior,
            "range": [low, high],
            "ok": bool(low <= first <= high) if self.expected else True,
        }
        self.checks["first_loss"] = result
        prior = f"; knowing only the class mix: {self.prior:.4f}" if self.prior else ""
        if not math.isclose(self.val_expected, self.expected, rel_tol=1e-3):
            prior += f"; validation loss, unweighted, about {self.val_expected:.4f}"
        if result["ok"]:
            print(f"check: first loss {first:.4f}, expected about {self.expected:.4f}{prior}: ok")
        else:
            print(
                f"check: first loss {first:.4f} is far from the {self.expected:.4f} of a model "
                f"that has learned nothing yet (an untrained start scores {low:.4f} to "
                f"{high:.4f}): check the output layer, the loss and the labels"
            )

    def _num_classes(self):
        """K from the output: one unit is two classes (a sigmoid); else from ln K expected."""
        try:
            units = self.model.outputs[0].shape[-1]
        except (AttributeError, IndexError, TypeError):  # a subclassed model has no outputs
            units = None
        if units:
            return max(2, int(units))
        return max(2, round(math.exp(self.val_expected)))


def diagnose(
    history,
    gradient_rows=(),
    checks=None,
    class_counts=None,
    test=None,
    *,
    val=None,
    baseline=None,
    labels=None,
    recipe=None,
):
    """The fit verdict of a finished run, as metrics.json's `diagnosis`.

    Args:
        history: the run's history (a DataFrame of `history.csv`).
        gradient_rows: the rows of `gradients.csv`.
        checks: what the start checks found (`first_loss`).
        class_counts: {split: {class: count}}; gives the majority baseline.
        test: the test metrics, if evaluated.
        val: the validation metrics of the restored weights, if there was validation.
        baseline: the linear model's result (`val`, `test`, `kind`), if any.
        labels: {split: true class ids}, in the order of the `predicted` ids that
            `evaluate_classifier` leaves in `val`, `test` and the baseline's: they pair
            the two models' answers for McNemar's test.
        recipe: the recipe's name: the advice names what fits it.

    Returns:
        {"fit", "why", "gradients", "gradients_why", "best_epoch", "advice", ...};
        for a classifier also "ignored_classes", and "baseline" where there is one.
    """
    checks = checks or {}
    ignored, comparison = [], None
    if "pixel_kid" in history:
        fit, why, best_epoch = _gan_fit(history)
    else:
        fit, why, best_epoch = _classifier_fit(history, checks, class_counts or {}, test or {})
        ignored = ignored_classes(class_counts, val=val, test=test)
        comparison = baseline_comparison(class_counts, val, test, baseline, labels)
    status, gradient_why, gradient_advice = gradients.verdict(list(gradient_rows))
    start = _start_loss(history, checks)
    if status == "ok" and start and history["loss"].max() > FAR_ABOVE_START * start:
        status = "exploding"
        gradient_why = f"training loss {history['loss'].max():.3g}, far above its start {start:.3g}"
        gradient_advice = gradients.REMEDIES["exploding"]
    if status != "ok" and fit in ("good", "still improving"):
        fit, why = "unstable", f"the gradients are {status}"
    fit, why, replaced = _weigh_scores(fit, why, ignored, comparison)
    first = [_below_baseline_first(recipe, baseline)] if fit == "below baseline" else []
    advice = first + ADVICE[fit] + ADVICE.get(replaced, []) + gradient_advice
    advice = list(dict.fromkeys(advice))
    result = {
        "fit": fit,
        "why": why,
        "gradients": status,
        "gradients_why": gradient_why,
        "best_epoch": best_epoch,
        "advice": advice,
    }
    if "first_loss" in checks:
        result["first_loss"] = checks["first_loss"]
    split = "test" if "test" in (class_counts or {}) else next(iter(class_counts or {}), None)
    if split and len(class_counts[split]) > 1 and "pixel_kid" not in history:
        result["majority_baseline"] = {"split": split, **majority_baseline(class_counts[split])}
    if "pixel_kid" not in history:
        result["ignored_classes"] = ignored
    if comparison:
        result["baseline"] = _against_baseline(comparison)
        if comparison["test"]:
            result["baseline_test"] = {**comparison["test"], "alpha": SIGNIFICANCE}
    return result


def ignored_classes(class_counts, val=None, test=None):
    """The classes the model (almost) never recognises, in the validation and test splits.

    A class of 10 or more examples in a split, with recall under 0.2 there: at least 8
    of its examples were answered as other classes. Returns [{"class", "split",
    "recall", "examples"}], validation's first; [] if none.
    """
    ignored = []
    for split, metrics in (("val", val), ("test", test)):
        counts = (class_counts or {}).get(split) or {}
        for name, scores in _per_class_of(metrics or {}, counts).items():
            if scores["examples"] >= IGNORED_MIN_EXAMPLES and scores["recall"] < IGNORED_RECALL:
                ignored.append(
                    {
                        "class": name,
                        "split": split,
                        "recall": float(scores["recall"]),
                        "examples": int(scores["examples"]),
                    }
                )
    return ignored


def baseline_comparison(class_counts, val, test, baseline, labels=None):
    """The model's score against the linear baseline's; None without a baseline.

    On validation (the restored weights) where both have it, else on test. The score is
    accuracy, or macro-F1 where accuracy flatters a model that neglects small classes.
    Returns {"metric", "reason", "split", "model", "baseline", "points", "name",
    "test"}; `points` is the model's lead in hundredths (negative: behind); `test` the
    paired test of that split's answers (`paired_test`), or None where they cannot be
    paired.
    """
    if not baseline:
        return None
    metric, reason = _baseline_metric((class_counts or {}).get("train") or {}, val or test or {})
    for split, ours in (("val", val), ("test", test)):
        theirs = baseline.get(split) or {}
        if ours and metric in ours and metric in theirs:
            break
    else:
        return None
    return {
        "metric": metric,
        "reason": reason,
        "split": split,
        "model": float(ours[metric]),
        "baseline": float(theirs[metric]),
        "points": 100 * (float(ours[metric]) - float(theirs[metric])),
        "name": baseline.get("model", "linear baseline"),
        "test": paired_test(split, metric, ours, theirs, (labels or {}).get(split)),
    }


def mcnemar_p(b, c):
    """McNemar's exact test: the two-sided binomial tail of min(b, c) in b + c trials at 1/2.

    b and c count the examples only one of two models answers right. Under the null (both
    err alike) each such example goes either way with probability 1/2.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers: no underflow before the division


def paired_test(split, metric, ours, theirs, labels):
    """Whether the model's and the baseline's `metric` differ by chance, on one split's
    paired answers; None where they do not pair.

    Returns {"split", "metric", "test", "b", "c", "p"}: b the examples only the model
    answers right, c those only the baseline does; p McNemar's on accuracy, a paired
    permutation test's on macro-F1 (each example's two answers swapped at random). None
    without both `predicted` and the true `labels`, or where they do not pair (other
    lengths, or not the confusion matrix evaluated).
    """
    if labels is None or "predicted" not in ours or "predicted" not in theirs:
        return None
    true = np.asarray(labels).reshape(-1).astype("int64")
    mine = np.asarray(ours["predicted"], dtype="int64")
    base = np.asarray(theirs["predicted"], dtype="int64")
    if not len(true) == len(mine) == len(base):
        return None
    k = int(max(true.max(initial=0), mine.max(initial=0), base.max(initial=0))) + 1
    for scores, predicted in ((ours, mine), (theirs, base)):
        if scores.get("confusion_matrix") is not None:
            k = max(k, len(scores["confusion_matrix"]))
            if not np.array_equal(_confusion(true, predicted, k), scores["confusion_matrix"]):
                return None
    right, base_right = mine == true, base == true
    b, c = int((right & ~base_right).sum()), int((~right & base_right).sum())
    if metric == "accuracy":
        test, p = "McNemar's exact test", mcnemar_p(b, c)
    else:
        test = f"paired permutation test of macro-F1, {PERMUTATIONS} draws"
        p = permutation_p(true, mine, base, k)
    return {"split": split, "metric": metric, "test": test, "b": b, "c": c, "p": p}


def permutation_p(true, first, second, num_classes, draws=PERMUTATIONS):
    """The paired permutation test's p of the macro-F1 difference of two models' answers.

    Under the null (the two are alike) each example's two answers are exchangeable: the
    difference is drawn again with each pair swapped at random, `draws` times, from a
    fixed local seed (the same p each time; the run's seeds untouched). Two-sided, with
    the observed difference counted among the draws.
    """
    # Only the examples the two answer differently change under a swap.
    same = first == second
    fixed = _class_counts(true[same], first[same][None], num_classes)
    actual = np.bincount(true, minlength=num_classes)
    true, first, second = true[~same], first[~same], second[~same]

    def difference(one, other):
        scores = [_macro_f1(true, answers, num_classes, fixed, actual) for answers in (one, other)]
        return scores[0] - scores[1]

    observed = abs(difference(first[None], second[None]))[0]
    rng = np.random.default_rng(0)
    extreme = 0
    for start in range(0, draws, 100):  # 100 draws at a time: 100 x n ids in memory
        swap = rng.random((min(100, draws - start), len(true))) < 0.5
        drawn = difference(np.where(swap, second, first), np.where(swap, first, second))
        extreme += int((np.abs(drawn) >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + draws)


def _class_counts(true, predicted, num_classes):
    """Per row of `predicted` (draws x examples): each class's hits and times answered."""
    rows = np.arange(len(predicted))[:, None] * num_classes
    cells = (rows + predicted).ravel()
    size, shape = len(predicted) * num_classes, (len(predicted), num_classes)
    hits = np.bincount(cells[(predicted == true).ravel()], minlength=size).reshape(shape)
    return hits, np.bincount(cells, minlength=size).reshape(shape)


def _macro_f1(true, predicted, num_classes, fixed, actual):
    """Macro-F1 of each row of `predicted`, plus the `fixed` (hits, answered) counts of the
    other examples, as `evaluate_classifier` has it: each class's 2 TP / (answered +
    actual), 0 where both are 0, averaged over the K classes."""
    hits, said = _class_counts(true, predicted, num_classes)
    hits, said = hits + fixed[0], said + fixed[1]
    return (2 * hits / np.maximum(said + actual, 1)).mean(axis=1)


def _confusion(true, predicted, num_classes):
    cells = true * num_classes + predicted
    return np.bincount(cells, minlength=num_classes**2).reshape(num_classes, num_classes)


def significantly_behind(comparison):
    """Whether the model trails the baseline by over 2 points, and not by chance."""
    test = comparison and comparison["test"]
    return bool(test and comparison["points"] < -BELOW_BASELINE_POINTS and test["p"] < SIGNIFICANCE)


def compare_with_baseline(record):
    """One line, the model's scores beside the linear baseline's; None without one.

    E.g. `test accuracy 0.912, macro-F1 0.905 | baseline (TF-IDF 1-2-grams + linear,
    4.1 s): 0.897, 0.889`; on validation where there is no test split.
    """
    baseline = record.get("baseline") or {}
    for split in ("test", "val"):
        ours, theirs = record.get(split) or {}, baseline.get(split) or {}
        names = [name for name in METRIC_NAMES if name in ours and name in theirs]
        if names:
            break
    else:
        return None
    model = ", ".join(f"{METRIC_NAMES[name]} {float(ours[name]):.3f}" for name in names)
    scores = ", ".join(f"{float(theirs[name]):.3f}" for name in names)
    about = baseline.get("model", "linear")
    if baseline.get("seconds") is not None:
        about += f", {float(baseline['seconds']):.1f} s"
    return f"{SPLIT_NAMES[split]} {model} | baseline ({about}): {scores}"


def describe(diagnosis):
    """The diagnosis as a short block of text, for the end of a run."""
    lines = [
        "diagnosis:",
        f"  fit: {diagnosis['fit']} ({diagnosis['why']})",
        f"  gradients: {diagnosis['gradients']} ({diagnosis['gradients_why']})",
        f"  best epoch: {diagnosis['best_epoch']}",
    ]
    if "majority_baseline" in diagnosis:
        baseline = diagnosis["majority_baseline"]
        lines.append(
            f"  always '{baseline['class']}' would score accuracy {baseline['accuracy']:.3f} "
            f"on {baseline['split']}, AUC 0.5"
        )
    if diagnosis.get("baseline"):
        lines.append(f"  baseline: {diagnosis['baseline']}")
    if diagnosis.get("ignored_classes"):
        lines.append(f"  ignores: {said_ignored(diagnosis['ignored_classes'])}")
    lines += [f"  - {advice}" for advice in diagnosis["advice"]]
    return "\n".join(lines)


def said_ignored(ignored):
    """`ignored_classes` in words: "'pos' (recall 0.10 of 50 on validation, 0.08 of 50 on test)"."""
    by_class = {}
    for entry in ignored:
        by_class.setdefault(entry["class"], []).append(
            f"{entry['recall']:.2f} of {entry['examples']} on {SPLIT_NAMES[entry['split']]}"
        )
    return ", ".join(f"'{name}' (recall {', '.join(seen)})" for name, seen in by_class.items())


def _weigh_scores(fit, why, ignored, comparison):
    """The fit once the scores are heard, its why, and the curves' fit it replaced (or None).

    Ignored classes, then the baseline, outrank the curves' fits (`CURVE_FITS`), not
    the fits that say the run is broken; what the fit does not name goes in the why.
    """
    findings = []
    if ignored:
        findings.append(("ignores classes", f"ignores {said_ignored(ignored)}"))
    if significantly_behind(comparison):
        findings.append(("below baseline", _below_baseline(comparison)))
    said = [text for _, text in findings]
    if findings and fit in CURVE_FITS:
        return findings[0][0], "; ".join(said + [f"the curves alone say {fit}: {why}"]), fit
    return fit, "; ".join([why] + said), None


def _baseline_metric(train_counts, scores):
    """The score to compare with the baseline, and why that one.

    Accuracy, unless more than 2 classes or imbalanced training classes make it
    flatter a model that neglects the small ones: macro-F1 then.
    """
    counts = list(train_counts.values())
    k = len(counts) or len(scores.get("per_class") or {}) or 2
    if k > 2:
        return "macro_f1", f"macro-F1, as there are {k} classes"
    if counts and min(counts) < IMBALANCED * max(counts):
        return "macro_f1", (
            f"macro-F1, as the training classes are imbalanced ({min(counts)} to {max(counts)})"
        )
    return "accuracy", "accuracy, as the 2 classes are balanced" if counts else "accuracy"


def _against_baseline(comparison):
    """The diagnosis's `baseline` field: "beats (or trails) the baseline's ... by N points"."""
    c = comparison
    verb = "beats" if round(c["points"], 1) >= 0 else "trails"
    said = (
        f"{verb} the baseline's {SPLIT_NAMES[c['split']]} {METRIC_NAMES[c['metric']]} "
        f"{c['baseline']:.3f} by {abs(c['points']):.1f} points"
    )
    said += " (no validation split: on test)" if c["split"] == "test" else ""
    test = c["test"]
    if verb == "beats":
        return said + (f"; {_said_test(test)}" if test else "")
    if test is None:
        return said + "; whether by chance is unknown: no per-example answers to pair"
    chance = "not chance" if test["p"] < SIGNIFICANCE else "could be chance"
    return f"{said}; {_said_test(test)}: {chance}"


def _said_test(test):
    return (
        f"p = {test['p']:.2g} by {test['test']} (only the model right on {test['b']} "
        f"{SPLIT_NAMES[test['split']]} examples, only the baseline on {test['c']})"
    )


def _below_baseline(comparison):
    c = comparison
    unsplit = "; no validation split, so on test" if c["split"] == "test" else ""
    return (
        f"{SPLIT_NAMES[c['split']]} {METRIC_NAMES[c['metric']]} {c['model']:.3f} is "
        f"{-c['points']:.1f} points below the baseline's {c['baseline']:.3f} "
        f"({c['name']}; {c['reason']}{unsplit}), {_said_test(c['test'])}"
    )


def _below_baseline_first(recipe, baseline):
    """The first advice for a run below its baseline: what fits this recipe and baseline."""
    kind = (baseline or {}).get("kind")
    if kind is None:  # a baseline.json from before it said which kind it was
        kind = "pixels" if str((baseline or {}).get("model", "")).startswith("pixels") else "text"
    if kind == "text" and recipe == "text_ngrams":
        kind = "text_ngrams"
    return BELOW_BASELINE_FIRST[kind]


def _per_class_of(metrics, counts):
    """A split's `per_class`, as evaluated or from its confusion matrix; {} if neither."""
    if "per_class" in metrics:
        return metrics["per_class"]
    matrix = confusion(metrics, counts) if metrics else None
    return {} if matrix is None else per_class(matrix, list(counts))


def _best_epoch(history, series):
    """The epoch of the lowest value of `series`, or None if it is NaN throughout."""
    values = series.to_numpy(dtype="float64")
    if np.isnan(values).all():
        return None
    return int(history["epoch"].iloc[int(np.nanargmin(values))])


def _smooth(series):
    return series.rolling(SMOOTHING_EPOCHS, min_periods=1, center=True).mean()


def _start_loss(history, checks):
    """Where training loss starts: class-weighted as the training loss is."""
    first = checks.get("first_loss") or {}
    return (
        first.get("expected")
        or first.get("value")
        or (float(history["loss"].iloc[0]) if len(history) else None)
    )


def _val_start_loss(history, checks):
    """Where validation loss starts: unweighted, as Keras's `val_loss` is.

    Records from before it was kept have only the training one.
    """
    first = checks.get("first_loss") or {}
    return first.get("val_expected") or _start_loss(history, checks)


def _classifier_fit(history, checks, class_counts, test):
    loss = history["loss"].astype(float)
    has_val = "val_loss" in history and history["val_loss"].notna().any()
    watched = history["val_loss"].astype(float) if has_val else loss
    best_epoch = _best_epoch(history, watched)
    start = _start_loss(history, checks)
    # Each loss against its own start: class weights scale the training loss only.
    watched_start = _val_start_loss(history, checks) if has_val else start
    auc_column = "val_auc" if "val_auc" in history else "auc"

    if not np.isfinite(loss).all():
        return "unstable", "the training loss became NaN", best_epoch
    rises = loss.iloc[1:].to_numpy() / loss.iloc[:-1].to_numpy()
    # A rise counts when it is large against the start too: 0.02 -> 0.03 late in a
    # good run is noise, not instability.
    rises[np.diff(loss.to_numpy()) < UNSTABLE_MIN_RISE * (start or 0.0)] = 0.0
    if len(rises) and rises.max() > UNSTABLE_RISE:
        epoch = int(history["epoch"].iloc[int(np.argmax(rises)) + 1])
        return (
            "unstable",
            f"training loss rose {100 * (rises.max() - 1):.0f}% in epoch {epoch}",
            best_epoch,
        )
    if start and loss.max() > FAR_ABOVE_START * start:
        return "unstable", f"training loss {loss.max():.3g}, far above its start", best_epoch
    # Judged on validation where there is one: a model that memorises random labels
    # lowers its training loss, yet learns nothing.
    if watched_start and _smooth(watched).min() >= NOT_LEARNING_LOSS * watched_start:
        auc = float(history[auc_column].max()) if auc_column in history else None
        if auc is None or auc < NOT_LEARNING_AUC:  # K > 2 classes log no AUC
            name = "validation" if has_val else "training"
            seen = f", best {name} AUC {auc:.3f}" if auc is not None else ""
            return (
                "not learning",
                f"{name} loss {watched.iloc[-1]:.3f} never fell {1 - NOT_LEARNING_LOSS:.0%} below its start "
                f"{watched_start:.3f}{seen}",
                best_epoch,
            )
    majority = _majority_class(history, class_counts, test)
    if majority:
        return "majority class", majority, best_epoch
    if has_val:
        smooth_val = _smooth(watched)
        lowest = int(np.nanargmin(smooth_val.to_numpy()))
        after = len(smooth_val) - 1 - lowest
        rise = smooth_val.iloc[-1] / smooth_val.iloc[lowest]
        raw_rise = watched.iloc[-1] / watched.min()
        gap = watched.iloc[-1] - loss.iloc[-1]
        far_below = loss.iloc[-1] < FAR_BELOW * watched.iloc[-1] and gap > GAP * (
            watched_start or 0.0
        )
        if loss.iloc[-1] < loss.iloc[lowest] and (
            (after >= OVERFIT_EPOCHS and rise > OVERFIT_RISE)
            or (after >= 2 and raw_rise > OVERFIT_GAP_RISE and far_below)
        ):
            return (
                "overfitting",
                f"validation loss rose {100 * (raw_rise - 1):.0f}% over the {after} epochs after "
                f"its minimum at epoch {int(history['epoch'].iloc[lowest])} while training "
                f"loss fell to {loss.iloc[-1]:.3f}",
                best_epoch,
            )
    # Unsmoothed: over the last 2 of a few epochs, a centred mean flattens any trend.
    falling = len(loss) > 1 and loss.iloc[-1] < (1 - STILL_IMPROVING) * loss.iloc[-2]
    if start and loss.iloc[-1] > UNDERFIT_LOSS * start and not falling:
        return (
            "underfitting",
            f"training loss {loss.iloc[-1]:.3f} stays above half its start {start:.3f}",
            best_epoch,
        )
    if len(watched) > 1 and watched.iloc[-1] < (1 - STILL_IMPROVING) * watched.iloc[-2]:
        name = "validation" if has_val else "training"
        return (
            "still improving",
            f"{name} loss fell {100 * (1 - watched.iloc[-1] / watched.iloc[-2]):.1f}% in the "
            "last epoch",
            best_epoch,
        )
    return "good", f"best epoch {best_epoch}; no rule above holds", best_epoch


def _majority_class(history, class_counts, test):
    """Why the model answers (almost) only the commonest class, or None."""
    if "test" in class_counts and test:
        counts, metrics, split = class_counts["test"], test, "test"
    elif "val" in class_counts and "val_accuracy" in history:
        last = history.iloc[-1]
        metrics = {k[4:]: last[k] for k in history.columns if k.startswith("val_")}
        counts, split = class_counts["val"], "validation"
    else:
        return None
    matrix = confusion(metrics, counts)
    if matrix is None or "accuracy" not in metrics:
        return None
    baseline = majority_baseline(counts)
    examples = np.array(list(counts.values()), dtype="float64")
    predicted = matrix.sum(axis=0)  # how often each class was answered
    answered = int(np.argmax(predicted))
    # Every class but the one answered is (almost) never answered, each against its
    # own examples; and those are the minority: the one answered is the commonest class
    # (on balanced data there is no majority to fall back on: that is not learning).
    others = np.delete(predicted, answered) / np.maximum(1, np.delete(examples, answered))
    only_commonest = examples[answered] > np.delete(examples, answered).max() and (
        others <= NEVER_PREDICTED
    ).all()
    # Either way: far below the baseline is worse than it, not the same trap.
    near = abs(float(metrics["accuracy"]) - baseline["accuracy"]) <= MAJORITY_MARGIN
    if near and only_commonest:
        return (
            f"{split} accuracy {float(metrics['accuracy']):.3f} is the {baseline['accuracy']:.3f} "
            f"of always answering '{list(counts)[answered]}', which the model (almost) always does"
        )
    return None


def _gan_fit(history):
    kid = history["pixel_kid"].astype(float)
    best_epoch = _best_epoch(history, kid)
    if not np.isfinite(history["loss"]).all():
        return "unstable", "a loss became NaN", best_epoch
    d_loss = _smooth(history["d_loss"].astype(float))
    if len(d_loss) > 1 and d_loss.iloc[-1] < 0.05:
        return (
            "unstable",
            f"the discriminator's loss fell to {d_loss.iloc[-1]:.3f}: it wins, and the "
            "generator learns nothing from it (002 §6.3)",
            best_epoch,
        )
    smooth_kid = _smooth(kid)
    lowest = int(np.nanargmin(smooth_kid.to_numpy()))
    if (
        len(kid) - 1 - lowest >= OVERFIT_EPOCHS
        and smooth_kid.iloc[-1] > 1.5 * smooth_kid.iloc[lowest]
    ):
        return (
            "unstable",
            f"pixel_kid rose since epoch {lowest}: the generator got worse",
            best_epoch,
        )
    if len(kid) > 1 and kid.iloc[-1] <= kid.min():
        return "still improving", "pixel_kid was still falling at the last epoch", best_epoch
    return "good", f"best pixel_kid at epoch {best_epoch}", best_epoch
