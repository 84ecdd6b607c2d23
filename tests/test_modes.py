"""The modes a recipe's command runs instead of, or before, its training (tfkit.modes)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from recipes import dcgan_cifar10, imdb_conv1d, text_ngrams
from tfkit.data.ngrams import inverse_document_frequency, vectorize_ngrams
from tfkit.data.splits import Splits, kfold_splits
from tfkit.data.text import text_ids, vectorize
from tfkit.diagnostics import lr_find
from tfkit.errors import RunComplete

TEXT = ["--data", "synthetic", "--max-examples", "400", "--batch-size", "32", "--no-export",
        "--no-baseline"]


def test_lr_find_writes_the_curve_and_a_suggestion_and_trains_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    imdb_conv1d.main(TEXT + ["--lr-find", "--run-dir", str(run)])
    rows = pd.read_csv(run / "lr_find.csv")
    assert list(rows.columns) == ["lr", "loss", "smoothed_loss"]
    assert rows["lr"].iloc[0] == pytest.approx(1e-7)
    ratios = rows["lr"].iloc[1:].to_numpy() / rows["lr"].iloc[:-1].to_numpy()
    np.testing.assert_allclose(ratios, (10 / 1e-7) ** (1 / 99))  # exponential, 100 steps
    # The first batch's loss is the model's loss before any real step: about ln 2.
    assert rows["loss"].iloc[0] == pytest.approx(math.log(2), abs=0.05)
    found = json.loads((run / "lr_find.json").read_text())
    assert rows["lr"].min() <= found["suggested_learning_rate"] <= rows["lr"].max()
    assert {"rule", "diverged_at", "steps", "other_suggestions"} <= set(found)
    # The suggestion is for the run's training: 10 epochs of its batches.
    assert found["training_steps"] > 0 and found["training_steps"] % 10 == 0
    assert found["factor"] == lr_find.budget_factor(found["training_steps"])
    assert found["suggested_learning_rate"] == pytest.approx(
        found["other_suggestions"]["minimum/10"] * 10 / found["factor"]
    )
    assert (run / "lr_find.png").stat().st_size > 1000
    assert not (run / "metrics.json").exists() and not (run / "history.csv").exists()
    out = capsys.readouterr().out
    assert "train with it: python -m recipes.imdb_conv1d" in out
    assert f"--learning-rate {found['suggested_learning_rate']:.2g}" in out


def _range_test_rows(minimum_at=0.01, diverges_at=0.03):
    """An LR test's rows: flat, falling to a minimum at `minimum_at`, then blowing up."""
    rows = []
    for step in range(lr_find.STEPS):
        lr = lr_find.START_LR * (lr_find.MAX_LR / lr_find.START_LR) ** (step / 99)
        if lr > diverges_at:
            break
        fall = max(0.0, math.log10(lr / 1e-4)) if lr <= minimum_at else 0.0
        rise = 20 * math.log10(lr / minimum_at) if lr > minimum_at else 0.0
        loss = 1.6 - 0.3 * fall + rise
        rows.append({"lr": lr, "loss": loss, "smoothed_loss": loss})
    return rows


def test_a_shorter_training_gets_a_bolder_suggestion_never_past_the_minimum():
    rows = _range_test_rows()
    minimum = max(row["lr"] for row in rows if row["lr"] <= 0.01)
    suggested = {
        steps: lr_find.suggest(rows, total_steps=steps)[lr_find.SUGGESTION]
        for steps in [10, 120, 313, 1170, 3000, 100_000]
    }
    values = list(suggested.values())
    assert values == sorted(values, reverse=True)  # more steps: never bolder
    assert suggested[10] == suggested[120] == pytest.approx(minimum / 2)  # the boldest
    assert suggested[313] == pytest.approx(minimum / math.sqrt(313 / 30))
    assert suggested[3000] == suggested[100_000] == pytest.approx(minimum / 10)
    assert all(value <= minimum / 2 for value in values)  # far below the divergence
    # Unknown length: the cautious tenth, which stays recorded beside it.
    both = lr_find.suggest(rows)
    assert both[lr_find.SUGGESTION] == both["minimum/10"] == pytest.approx(minimum / 10)
    assert {"valley", "steepest"} <= set(both)


def test_learning_rate_auto_trains_as_the_suggestion_given_by_hand(tmp_path):
    flags = TEXT + ["--epochs", "2", "--deterministic"]
    auto = tmp_path / "auto"
    imdb_conv1d.main(flags + ["--learning-rate", "auto", "--run-dir", str(auto)])
    config = json.loads((auto / "config.json").read_text())
    assert config["learning_rate_source"] == "lr-find"
    assert (
        config["learning_rate"]
        == json.loads((auto / "lr_find.json").read_text())["suggested_learning_rate"]
    )
    by_hand = tmp_path / "by_hand"
    imdb_conv1d.main(
        flags + ["--learning-rate", repr(config["learning_rate"]), "--run-dir", str(by_hand)]
    )
    # Same initial weights, a fresh optimizer: the same training, bit for bit.
    timings = ["epoch_seconds", "examples_per_second"]
    pd.testing.assert_frame_equal(
        pd.read_csv(auto / "history.csv").drop(columns=timings),
        pd.read_csv(by_hand / "history.csv").drop(columns=timings),
        check_exact=True,
    )
    # The same command again: the run is complete (its LR came from the test).
    with pytest.raises(RunComplete):
        imdb_conv1d.main(flags + ["--learning-rate", "auto", "--run-dir", str(auto)])


def test_overfit_batches_says_whether_the_model_fits(tmp_path, capsys):
    run = tmp_path / "run"
    imdb_conv1d.main(
        TEXT + ["--overfit-batches", "2", "--learning-rate", "1e-3", "--run-dir", str(run)]
        + ["--baseline"]  # asked for, yet not trained: the check trains no model to judge
    )
    result = json.loads((run / "overfit.json").read_text())
    assert result["fits"] is True and result["batches"] == 2
    assert result["final_loss"] <= 0.1 * result["first_loss"]
    assert "fits: training loss" in capsys.readouterr().out
    assert not (run / "metrics.json").exists() and not (run / "baseline.json").exists()


def test_a_model_that_cannot_learn_is_told_so(tmp_path, capsys):
    run = tmp_path / "run"
    # A learning rate of 1e-7 moves nothing within the step budget.
    small = ["--max-len", "50", "--embedding-dim", "8", "--max-features", "500"]
    imdb_conv1d.main(
        TEXT + small + ["--overfit-batches", "1", "--learning-rate", "1e-7", "--run-dir", str(run)]
    )
    assert json.loads((run / "overfit.json").read_text())["fits"] is False
    assert "cannot fit:" in capsys.readouterr().out


def test_the_gan_lr_find_reads_the_discriminator_loss(tmp_path):
    run = tmp_path / "run"
    dcgan_cifar10.main(
        ["--generator-filters", "8", "--discriminator-filters", "8", "--batch-size", "8"]
        + ["--data", "synthetic", "--max-examples", "80", "--quality-samples", "10"]
        + ["--lr-find", "--run-dir", str(run), "--no-export"]
    )
    found = json.loads((run / "lr_find.json").read_text())
    assert found["loss"] == "d_loss" and found["suggested_learning_rate"] > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning-rate", "fast"], "learning_rate must be > 0, or auto"),
        (["--tune", "--learning-rate", "auto"], "--tune searches the learning rate itself"),
        (["--lr-find", "--overfit-batches", "2"], "each replace the training; use one"),
    ],
)
def test_bad_mode_flags_are_one_line_and_exit_2(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        imdb_conv1d.main(TEXT + flags)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def reviews(count):
    """Two classes of short reviews; "zebra" is in the first text only."""
    texts = [f"{'a fine' if i % 2 else 'an awful'} film {i % 5}" for i in range(count)]
    texts[0] += " zebra"
    return pd.DataFrame({"text": texts, "label": ["pos" if i % 2 else "neg" for i in range(count)]})


@pytest.mark.parametrize("to_ids", [vectorize, vectorize_ngrams])
def test_each_fold_is_vectorized_with_its_own_training_texts_vocabulary(tmp_path, to_ids):
    table = reviews(24)
    texts = (np.array([t.encode() for t in table["text"]], dtype=object), np.arange(24) % 2)
    splits = Splits(texts, (texts[0][:0], texts[1][:0]), texts, "csv")
    config = text_ngrams.Config(max_len=60)
    ids, vectorizer = text_ids(config, splits, str(tmp_path), ngrams=2, to_ids=to_ids)
    assert "zebra" in vectorizer.get_vocabulary()

    folds = kfold_splits(ids, 2, seed=0)  # the texts, dealt: each fold is prepared on its own
    assert all(fold.train[0].dtype == object for fold in folds)
    lacking = []
    for number, fold in enumerate(folds, start=1):
        fold_ids = ids.prepare(fold, str(tmp_path / f"fold-{number}"))
        vocabulary = (tmp_path / f"fold-{number}" / "vocabulary.txt").read_text().split("\n")
        validated = b"zebra" in b" ".join(fold.val[0])
        assert ("zebra" not in vocabulary) == validated
        lacking.append(validated)
        if to_ids is vectorize_ngrams:  # and its IDF from its training part only
            idf = inverse_document_frequency(fold_ids.train[0], config.max_features)
            film = vocabulary.index("film")
            assert idf[film] == np.float32(np.log1p(12 / 13))  # N = df = 12 texts, not 24
    assert sorted(lacking) == [False, True]


@pytest.mark.slow
def test_a_kfold_run_writes_each_folds_own_vocabulary(tmp_path):
    reviews(24).to_csv(tmp_path / "train.csv", index=False)
    reviews(6).iloc[1:].to_csv(tmp_path / "test.csv", index=False)
    run = tmp_path / "run"
    text_ngrams.main(
        ["--data", "csv", "--data-dir", str(tmp_path), "--kfold", "2", "--no-final"]
        + ["--epochs", "1", "--no-baseline", "--run-dir", str(run)]
    )

    def vocabulary(folder):
        return (folder / "vocabulary.txt").read_text().split("\n")

    assert "zebra" in vocabulary(run)  # the final model's, from all training texts
    assert sorted("zebra" in vocabulary(run / f"fold-{i}") for i in (1, 2)) == [False, True]
    assert len(pd.read_csv(run / "kfold.csv")) == 4  # two folds, their mean and std
