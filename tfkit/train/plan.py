"""The plan: which recipes to try on the data read, cheapest first, and why each.

Every candidate is an ordinary recipe run with its own flags, a command a user could
type (`Candidate.command`). The order follows the evidence:

- texts: the linear baseline (TF-IDF of word 1-2-grams and one Dense layer:
  `text_ngrams --units 0`), then `text_ngrams` in two sizes; the Conv1D only where
  texts / mean words per text >= 1,500 (Google's text-classification guide: below it
  an n-gram model beats a sequence model); an LSTM last, if time is left;
- pictures: the linear model on the pixels (`pixels_linear`), then a ResNet-20, and a
  ResNet-32 where there are pictures enough (He et al. 2016: 7.5% error against 8.8% on
  CIFAR-10's 50,000).
"""

import dataclasses
import sys

# Google's text-classification guide: samples / words per sample below this, n-grams win.
SEQUENCE_RATIO = 1_500
VALIDATION_SHARE = 0.2  # the recipes' --validation-split
SMALL_CORPUS = 20_000  # rows: the README's measurements ran the LSTM at batch 64 below it
DEEPER_RESNET = 10_000  # training pictures from which a ResNet-32 is tried after the ResNet-20
MAX_LEN, CONV1D_MIN_LEN = 500, 43  # the documents' length; the Conv1D's layers need 43
# The bag-of-n-grams candidates train as the linear baseline does (`tfkit.baseline`): about
# 1,500 steps of batch 32, at least 10 epochs and at most 100, early stopped.
STEPS, MIN_EPOCHS, MAX_EPOCHS, BATCH_SIZE = 1_500, 10, 100, 32


def ngram_epochs(rows):
    """Epochs for `rows` training rows (a fifth of them held out for validation)."""
    steps = max(1, -(-round(rows * (1 - VALIDATION_SHARE)) // BATCH_SIZE))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, -(-STEPS // steps))))


@dataclasses.dataclass
class Candidate:
    """One recipe run of the ladder."""

    name: str
    recipe: str
    flags: list  # the recipe's own flags that make this candidate
    reason: str

    def command(self, common):
        """The command line of this candidate, with the flags all candidates share."""
        return [sys.executable, "-m", f"recipes.{self.recipe}", *self.flags, *common]


def plan(reading):
    """`(candidates, skipped)`: the ladder for `reading`, and `(name, why)` of those left out."""
    if reading.kind == "pictures":
        return picture_ladder(reading)
    return text_ladder(reading)


def text_ladder(reading):
    ratio = reading.rows / max(reading.mean_words, 1.0)
    # TF-IDF weighed as scikit-learn's TfidfVectorizer(sublinear_tf=True) does, rows of unit
    # length, at 10x the recipe's learning rate (unit rows need weights 10x larger). On
    # 2,880 docstrings of 6 packages: linear 0.803 -> 0.828 test accuracy, ngrams-64 0.803
    # -> 0.825; on 12,473 Debian package lines of 20 sections: 0.665 -> 0.663, 0.684 -> 0.686.
    ngrams = ["--norm", "l2", "--sublinear-tf", "--learning-rate", "1e-2",
              "--epochs", str(ngram_epochs(reading.rows))]  # fmt: skip
    ladder = [
        Candidate("linear", "text_ngrams", ["--units", "0", "--dropout", "0", "--optimizer", "adam",
                                            *ngrams],
                  "the baseline: TF-IDF of word 1-2-grams and one Dense layer (Adam)"),
        Candidate("ngrams-16", "text_ngrams", ngrams,
                  "a bag of 1-2-grams with a hidden layer of 16 (Deep Learning with Python, "
                  "ch. 11): the strongest model for small corpora"),
        Candidate("ngrams-64", "text_ngrams", ["--units", "64", *ngrams],
                  "the same, 64 wide: more capacity where there are more texts"),
    ]  # fmt: skip
    skipped = []
    conv1d = f"texts / mean words per text = {reading.rows:,} / {reading.mean_words:.0f} = {ratio:,.0f}"
    if ratio >= SEQUENCE_RATIO:
        ladder.append(Candidate("conv1d", "imdb_conv1d", ["--learning-rate", "auto",
                                                          *sequence_length(reading, CONV1D_MIN_LEN)],
                                f"a sequence model: {conv1d} >= {SEQUENCE_RATIO:,}"))  # fmt: skip
    else:
        why = (f"{conv1d} < {SEQUENCE_RATIO:,}: n-grams beat a sequence model here (Google's "
               "text-classification guide)")
        skipped.append(("conv1d", why))
    # Batches of 64, not the recipe's 512: a few thousand texts still make steps enough.
    batch = ["--batch-size", "64"] if reading.rows < SMALL_CORPUS else []
    ladder.append(Candidate("lstm", "imdb_rnn", ["--cell", "lstm", "--learning-rate", "auto", *batch,
                                                 *sequence_length(reading, 1)],
                            "an LSTM, the costliest: last, if time is left"))  # fmt: skip
    return ladder, skipped


def sequence_length(reading, minimum):
    """`--max-len` for a sequence model: the words of 95% of the texts, rounded up to 16,
    within [minimum, 500] (the documents' 500; a 20-word text then runs 32 steps, not 500)."""
    length = -(-max(reading.long_words, 1) // 16) * 16
    return ["--max-len", str(min(MAX_LEN, max(minimum, length)))]


def picture_ladder(reading):
    ladder = [
        Candidate("linear", "pixels_linear", [],
                  "the baseline: the pixels (32x32) and one Dense layer"),
        # Adam at the recipe's 1e-3, not --learning-rate auto: on 1,437 handwritten digits
        # the LR test chose 0.057, and validation accuracy was 0.25 after 3 epochs (0.96 at
        # 1e-3; 0.99 on test after 15), so the ResNet was stopped as behind.
        Candidate("resnet-20", "cifar10_resnet", [],
                  "a ResNet-20 (He et al. 2016): 0.99 on 1,437 handwritten digits in 15 epochs"),
    ]  # fmt: skip
    if reading.rows < DEEPER_RESNET:
        why = (f"{reading.rows:,} pictures < {DEEPER_RESNET:,}: a ResNet-20 already fits them; "
               "depth pays on CIFAR-10's 50,000 (He et al. 2016)")
        return ladder, [("resnet-32", why)]
    ladder.append(Candidate("resnet-32", "cifar10_resnet", ["--depth", "32"],
                            f"a deeper ResNet: {reading.rows:,} pictures >= {DEEPER_RESNET:,}"))  # fmt: skip
    return ladder, []
