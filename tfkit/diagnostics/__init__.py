"""The documents' diagnostics, run on every training: why training goes wrong, and what to do.

- `gradients`: gradient norms of each step (global and per layer), non-finite
  gradients named at their step, exploding and vanishing gradients (000 §30-33).
- `verdict`: the checks at the start (first loss, majority baseline) and the fit
  verdict at the end (not learning, majority class, unstable, overfitting,
  underfitting, still improving, good) with the documents' remedies (001, 004 §3).
- `lr_find`: the LR range test behind `--lr-find` and `--learning-rate auto` (004).
- `capacity`: `--overfit-batches N`, "overfit a small subset first" (004).

They read what training logs and the gradients it computes; they never change the
model or its updates.
"""
