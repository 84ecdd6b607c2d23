"""The capacity check, `--overfit-batches N` (004 "测试网络容量", after Karpathy).

"To find your network's capacity, try to overfit a small part of the training
examples. If it does not overfit, give it more capacity." The model trains on the
same N batches, epoch after epoch, until its training loss is `FITS_FRACTION` of its
first value or `STEP_BUDGET` steps have run; it fits, or it cannot.
"""

import math

import keras

FITS_FRACTION = 0.1
STEP_BUDGET = 500


class StopWhenFitted(keras.callbacks.Callback):
    """Records each epoch's training loss; stops once it is `FITS_FRACTION` of the first."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float((logs or {}).get("loss", math.nan)))
        first, last = self.losses[0], self.losses[-1]
        if not math.isfinite(last) or last <= FITS_FRACTION * first:
            self.model.stop_training = True


def verdict(losses, batches, steps):
    """The check's result: {"fits", "first_loss", "final_loss", "steps", "batches", "advice"}."""
    first, final = losses[0], losses[-1]
    fits = math.isfinite(final) and final <= FITS_FRACTION * first
    return {
        "fits": bool(fits),
        "first_loss": first,
        "final_loss": final,
        "steps": steps,
        "batches": batches,
        "advice": []
        if fits
        else [
            "more capacity: more units, filters or layers (004: if it cannot overfit, enlarge it)",
            "a higher learning rate (--lr-find)",
            "check the labels: a model that cannot learn N batches by heart may see wrong ones",
        ],
    }
