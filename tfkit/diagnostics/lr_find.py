"""The LR range test (004 "如何确定初始学习率"; Smith 2015; fastai's `lr_find`).

The learning rate rises exponentially, step by step, from `START_LR`; the true loss
of each batch is recorded (Keras logs the running mean of the epoch, so it is taken
from the loss metric's running total and count) and smoothed with a debiased
exponential average (beta 0.98). The test stops after `STEPS` steps, at `MAX_LR`, or
once the smoothed loss exceeds `DIVERGENCE` times its best.

The suggestion (`SUGGESTION`, "minimum/budget") is the rate at the smoothed loss's
minimum divided by a factor that grows with the training the rate is for:
`budget_factor(total_steps)` = sqrt(total_steps / 30) clipped to [2, 10], where
total_steps = epochs x steps per epoch: 2 for a run of up to 120 steps, 3.2 for 313,
10 (the old `minimum/10`, Smith's "an order of magnitude below the minimum") from
3,000. A short run must learn fast and can afford a rate near the edge; a long one
gains more from a safe one. The factor is never below 2, and the smoothed minimum
itself lies below the divergence (2-6x below it in the Conv1D curves measured), so the
suggestion stays at least 4x below the rate where the loss blew up.

Measured (imdb_conv1d, default batch 128 and 10 epochs, early stopping; the curves'
minima were 8.5e-3 to 1.5e-2): on 1,636 Debian package descriptions of 5 sections
(110 steps) the old minimum/10 (8.5e-4) reached 0.771 test accuracy, minimum/3 and
minimum/2 0.861 each (the linear baseline 0.866); on 3,840 docstrings of 6 packages
(240 steps) 0.599 and 0.574 (/2.8; both overfit, baseline 0.671); 2 epochs of 25,000
synthetic reviews (314 steps, /3.2) 0.999; see docs/diagnosis.md, "Finding a learning rate".
minimum/10 stays recorded in `other_suggestions` with fastai's default, "valley" (the
middle of the longest falling stretch), and `steepest`: in 100
steps an adaptive optimizer's loss stays flat over most decades and falls only near
the end, and valley then lands inside the flat noise (4.3e-4 on 2000 synthetic
reviews, which reached 0.54 test accuracy in 2 epochs; minimum/10 gave 1.0e-3 and 0.65).
"""

import math

import numpy as np
import pandas as pd
import keras

START_LR = 1e-7
MAX_LR = 10.0
STEPS = 100
DIVERGENCE = 4.0
BETA = 0.98
NO_FALL_STEPS = 10  # a minimum this early means the loss never fell
SUGGESTION = "minimum/budget"
FACTOR_STEPS = 30  # sqrt(total_steps / 30): 2 at 120 steps, 10 at 3,000
MIN_FACTOR, MAX_FACTOR = 2.0, 10.0
RULE = (
    "minimum/budget: the learning rate at the smoothed loss's minimum (if the loss never "
    "fell, the last rate tried) divided by sqrt(training steps / "
    f"{FACTOR_STEPS}) clipped to [{MIN_FACTOR:g}, {MAX_FACTOR:g}] (training steps = epochs x "
    "steps per epoch of the run it is for: /2 up to 120 steps, /10 from 3,000; minimum/10 "
    "was too timid for short runs: see docs/diagnosis.md; a test whose loss never diverged keeps "
    "/10); "
    f"LR raised exponentially from {START_LR:g} to {MAX_LR:g} over {STEPS} steps, stopped "
    f"once the smoothed loss exceeded {DIVERGENCE:g}x its best"
)


def budget_factor(total_steps):
    """What the minimum's rate is divided by for a training of `total_steps` steps.

    sqrt(total_steps / FACTOR_STEPS) clipped to [MIN_FACTOR, MAX_FACTOR]; MAX_FACTOR
    (the cautious minimum/10) when the run's length is unknown (None).
    """
    if total_steps is None:
        return MAX_FACTOR
    return float(np.clip(math.sqrt(max(total_steps, 0) / FACTOR_STEPS), MIN_FACTOR, MAX_FACTOR))


class LRRangeTest(keras.callbacks.Callback):
    """Raises the model's optimizer's learning rate each step and records each batch's loss.

    Args:
        loss: the name of the metric whose batch value is the loss ("loss"; the DCGAN's
            discriminator: "d_loss").
        steps: how many steps the LR takes from `start` to `stop`.
    """

    def __init__(self, loss="loss", start=START_LR, stop=MAX_LR, steps=STEPS):
        super().__init__()
        self.loss_name = loss
        self.start, self.stop, self.steps = start, stop, steps
        self.rows = []
        self.diverged_at = None

    def learning_rate(self, step):
        return self.start * (self.stop / self.start) ** (step / max(1, self.steps - 1))

    def on_train_begin(self, logs=None):
        self._step = 0
        self._average = 0.0
        self._best = math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._last = (0.0, 0.0)  # the loss metric's total and count, reset each epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate(self._step)

    def on_train_batch_end(self, batch, logs=None):
        tracker = next(m for m in self.model.metrics if m.name == self.loss_name)
        total = float(keras.ops.convert_to_numpy(tracker.total))
        count = float(keras.ops.convert_to_numpy(tracker.count))
        loss = (total - self._last[0]) / max(count - self._last[1], 1e-12)
        self._last = (total, count)
        self._average = BETA * self._average + (1 - BETA) * loss
        smoothed = self._average / (1 - BETA ** (self._step + 1))
        self.rows.append(
            {"lr": self.learning_rate(self._step), "loss": loss, "smoothed_loss": smoothed}
        )
        self._best = min(self._best, smoothed)
        self._step += 1
        if not math.isfinite(smoothed) or smoothed > DIVERGENCE * self._best:
            self.diverged_at = self.rows[-1]["lr"]
            self.model.stop_training = True
        elif self._step >= self.steps:
            self.model.stop_training = True


def suggest(rows, total_steps=None):
    """{SUGGESTION, "minimum/10", "valley", "steepest"} learning rates from the test's rows.

    `total_steps`: the steps of the training the rate is for (epochs x steps per
    epoch), which sets `budget_factor`; None: the factor is MAX_FACTOR.
    """
    table = pd.DataFrame(rows)
    table = table[np.isfinite(table["smoothed_loss"])]
    lrs, losses = table["lr"].to_numpy(), table["smoothed_loss"].to_numpy()
    if len(losses) < 3:
        raise ValueError("the LR range test ran fewer than 3 steps: give it more data")
    lowest = int(np.argmin(losses))
    if lowest < NO_FALL_STEPS:  # the loss never fell: below where it rose instead
        lowest = len(losses) - 1
    falling = losses[: lowest + 1]  # the steepest fall comes before the minimum
    slope = np.gradient(falling, np.log10(lrs[: lowest + 1])) if len(falling) > 1 else [0.0]
    return {
        SUGGESTION: float(lrs[lowest] / budget_factor(total_steps)),
        "minimum/10": float(lrs[lowest] / 10),
        "valley": float(lrs[_valley(losses)]),
        "steepest": float(lrs[int(np.argmin(slope))]),
    }


def _valley(losses):
    """fastai's valley: the index a third and a half into the longest falling stretch."""
    n = len(losses)
    run = [1] * n  # length of the longest falling sequence ending at i
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[i] > run[best_end]:
            best_end = i
    best_start = best_end - run[best_end] + 1
    third = (best_end - best_start) / 3
    return best_start + int(third) + int(third / 2)


def plot(rows, suggestion, png_path, title):
    """Writes `figure(...)` to `png_path`."""
    from tfkit.figures import save_figure

    save_figure(figure(rows, suggestion, title), png_path)


def figure(rows, suggestion, title):
    """Loss against log learning rate, the suggestion marked, as a matplotlib Figure."""
    from matplotlib.figure import Figure

    table = pd.DataFrame(rows)
    result = Figure(figsize=(6, 4))
    axis = result.subplots()
    axis.plot(table["lr"], table["loss"], ".", color="0.7", label="batch loss")
    axis.plot(table["lr"], table["smoothed_loss"], "-", label="smoothed loss")
    axis.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss")
    finite = table["smoothed_loss"][np.isfinite(table["smoothed_loss"])]
    if len(finite):  # from the lowest loss to a little above the start: the part that matters
        axis.set_ylim(finite.min() * 0.95, max(finite.iloc[0] * 1.25, finite.min() * 1.05))
    axis.set_title(title)
    axis.legend()
    result.tight_layout()
    return result
