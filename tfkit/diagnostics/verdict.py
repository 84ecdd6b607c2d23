"""The checks at the start of a run and the fit verdict at its end, in the documents' words.

At the start (`FirstLossCheck`): the first step's loss against what a model that
has learned nothing yet should score, ln K for K classes (Karpathy's "loss at init"):
far off means a wrong output layer, loss or labels.

At the end (`diagnose`), from `history.csv` smoothed over 3 epochs, one rule each,
the first that holds:

- unstable: training loss rose over 25% (and over 5% of its start) from one epoch to
  the next, is NaN, or went above 3x its start;
- not learning: validation loss (training loss without validation) still within 5% of
  its start and AUC below 0.6;
- majority class: accuracy within 0.01 of always answering the commonest class, and
  the other class (almost) never predicted (000: the accuracy trap);
- overfitting: validation loss rose over 10% above its minimum for 3 or more epochs
  while training loss fell, or rose 2% over 2 or more epochs while training loss fell
  below a quarter of it, and by a tenth of the start or more (004 §3: "the training
  error far below the test error");
- underfitting: training loss still above half its start and no longer falling
  (004 §3: "the model cannot reach a low training error");
- still improving: validation loss still fell over 1% in the last epoch (train longer);
- good: none of the above.

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
FIRST_LOSS_TOLERANCE = 0.5  # |first - expected| / expected

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
    "still improving": ["train longer: more --epochs (validation loss was still falling)"],
    "good": [],
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
    in the diagnosis; a backup keeps it, so a resumed run still reports it.
    """

    def __init__(self, checks, expected, prior=None):
        super().__init__()
        self.checks = checks
        self.expected = expected
        self.prior = prior  # the loss of a model that knows the class mix only

    def backup_state(self):
        return {"first_loss": self.checks.get("first_loss")}

    def restore_state(self, state):
        if state.get("first_loss"):
            self.checks["first_loss"] = state["first_loss"]

    def on_train_batch_end(self, batch, logs=None):
        if "first_loss" in self.checks or "loss" not in (logs or {}):
            return
        first = float(logs["loss"])
        off = abs(first - self.expected) / self.expected if self.expected else 0.0
        result = {
            "value": first,
            "expected": self.expected,
            "prior_loss": self.prior,
            "ok": bool(off <= FIRST_LOSS_TOLERANCE),
        }
        self.checks["first_loss"] = result
        prior = f"; knowing only the class mix: {self.prior:.4f}" if self.prior else ""
        if result["ok"]:
            print(f"check: first loss {first:.4f}, expected about {self.expected:.4f}{prior}: ok")
        else:
            print(
                f"check: first loss {first:.4f} is far from the {self.expected:.4f} of a model "
                "that has learned nothing yet: check the output layer, the loss and the labels"
            )


def diagnose(history, gradient_rows=(), checks=None, class_counts=None, test=None):
    """The fit verdict of a finished run, as metrics.json's `diagnosis`.

    Args:
        history: the run's history (a DataFrame of `history.csv`).
        gradient_rows: the rows of `gradients.csv`.
        checks: what the start checks found (`first_loss`).
        class_counts: {split: {class: count}}; gives the majority baseline.
        test: the test metrics, if evaluated.

    Returns:
        {"fit", "why", "gradients", "gradients_why", "best_epoch", "advice", ...}.
    """
    checks = checks or {}
    if "pixel_kid" in history:
        fit, why, best_epoch = _gan_fit(history)
    else:
        fit, why, best_epoch = _classifier_fit(history, checks, class_counts or {}, test or {})
    status, gradient_why, gradient_advice = gradients.verdict(list(gradient_rows))
    start = _start_loss(history, checks)
    if status == "ok" and start and history["loss"].max() > FAR_ABOVE_START * start:
        status = "exploding"
        gradient_why = f"training loss {history['loss'].max():.3g}, far above its start {start:.3g}"
        gradient_advice = gradients.REMEDIES["exploding"]
    if status != "ok" and fit in ("good", "still improving"):
        fit, why = "unstable", f"the gradients are {status}"
    advice = list(dict.fromkeys(ADVICE[fit] + gradient_advice))
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
    return result


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
    lines += [f"  - {advice}" for advice in diagnosis["advice"]]
    return "\n".join(lines)


def _best_epoch(history, series):
    """The epoch of the lowest value of `series`, or None if it is NaN throughout."""
    values = series.to_numpy(dtype="float64")
    if np.isnan(values).all():
        return None
    return int(history["epoch"].iloc[int(np.nanargmin(values))])


def _smooth(series):
    return series.rolling(SMOOTHING_EPOCHS, min_periods=1, center=True).mean()


def _start_loss(history, checks):
    first = checks.get("first_loss") or {}
    return (
        first.get("expected")
        or first.get("value")
        or (float(history["loss"].iloc[0]) if len(history) else None)
    )


def _classifier_fit(history, checks, class_counts, test):
    loss = history["loss"].astype(float)
    has_val = "val_loss" in history and history["val_loss"].notna().any()
    watched = history["val_loss"].astype(float) if has_val else loss
    best_epoch = _best_epoch(history, watched)
    start = _start_loss(history, checks)
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
    if start and _smooth(watched).min() >= NOT_LEARNING_LOSS * start:
        auc = float(history[auc_column].max()) if auc_column in history else None
        if auc is None or auc < NOT_LEARNING_AUC:  # K > 2 classes log no AUC
            name = "validation" if has_val else "training"
            seen = f", best {name} AUC {auc:.3f}" if auc is not None else ""
            return (
                "not learning",
                f"{name} loss {watched.iloc[-1]:.3f} is still near its start {start:.3f}{seen}",
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
        far_below = loss.iloc[-1] < FAR_BELOW * watched.iloc[-1] and gap > GAP * (start or 0.0)
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
    predicted = matrix.sum(axis=0)  # how often each class was answered
    minority_seen = predicted.min() / max(1, min(counts.values()))
    near = float(metrics["accuracy"]) <= baseline["accuracy"] + MAJORITY_MARGIN
    if near and minority_seen <= NEVER_PREDICTED:
        return (
            f"{split} accuracy {float(metrics['accuracy']):.3f} is the {baseline['accuracy']:.3f} "
            f"of always answering '{baseline['class']}', which the model (almost) always does"
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
