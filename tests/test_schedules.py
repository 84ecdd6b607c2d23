"""Learning-rate schedules: set every step, logged per epoch, refused beside the plateau cut."""

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from recipes import imdb_conv1d
from tfkit.optim import scheduled_learning_rate


def config(schedule, **overrides):
    values = dict(
        lr_schedule=schedule,
        warmup_epochs=0.0,
        lr_decay_epochs=2.0,
        lr_decay_factor=0.5,
        min_learning_rate=1e-5,
        epochs=5,
    )
    return SimpleNamespace(**{**values, **overrides})


def rates(schedule, steps=50, **overrides):
    return [
        scheduled_learning_rate(config(schedule, **overrides), s, 10, 1e-3) for s in range(steps)
    ]


def test_each_schedule_as_a_function_of_the_step():
    assert rates("constant") == [1e-3] * 50
    step = rates("step")
    assert step[0] == step[19] == 1e-3 and step[20] == step[39] == 5e-4 and step[40] == 2.5e-4
    exponential = rates("exponential")
    assert exponential[10] == pytest.approx(1e-3 * 0.5**0.5) and exponential[20] == pytest.approx(
        5e-4
    )
    cosine = rates("cosine")
    assert cosine[0] == 1e-3 and cosine[-1] == pytest.approx(1e-5)  # the minimum at the last step
    assert all(a >= b for a, b in zip(cosine, cosine[1:]))
    warm = rates("cosine", warmup_epochs=1)
    assert warm[:10] == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])  # linear warm-up
    assert warm[10] == 1e-3 and warm[-1] == pytest.approx(1e-5)


def test_the_lr_column_shows_a_cosine_with_warm_up(tmp_path):
    run = tmp_path / "run"
    flags = ["--data", "synthetic", "--max-examples", "320", "--batch-size", "32", "--epochs", "4",
             "--no-baseline"]
    schedule = ["--lr-schedule", "cosine", "--warmup-epochs", "1", "--learning-rate", "1e-3"]
    imdb_conv1d.main(flags + schedule + ["--run-dir", str(run), "--no-export"])
    history = pd.read_csv(run / "history.csv")
    steps = 10  # 320 examples in batches of 32
    scheduled = config("cosine", warmup_epochs=1.0, min_learning_rate=0.0, epochs=4)
    expected = [scheduled_learning_rate(scheduled, e * steps, steps, 1e-3) for e in range(4)]
    assert list(history["lr"]) == pytest.approx(expected, rel=1e-6)  # each epoch's first step
    assert history["lr"].iloc[0] == pytest.approx(1e-4) and history["lr"].iloc[1] == pytest.approx(
        1e-3
    )
    assert json.loads((run / "config.json").read_text())["lr_schedule"] == "cosine"


@pytest.mark.parametrize("schedule", [["--lr-schedule", "step"], ["--warmup-epochs", "1"]])
def test_a_schedule_beside_an_explicit_plateau_cut_is_refused(schedule, capsys):
    with pytest.raises(SystemExit) as exit_:
        imdb_conv1d.main(["--data", "synthetic", *schedule, "--reduce-lr-patience", "3"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--reduce-lr-patience cannot go together" in error


def test_after_the_unfreeze_the_schedule_runs_divided_by_the_fine_tune_factor():
    plain = rates("step")
    fine_tuned = rates("step", freeze="embedding", unfreeze_after_epochs=3, fine_tune_lr_factor=4)
    assert fine_tuned[:30] == plain[:30]  # 10 steps an epoch: frozen until step 30
    assert fine_tuned[30:] == pytest.approx([rate / 4 for rate in plain[30:]])
    # Nothing frozen, or never unfrozen: no division.
    assert rates("step", unfreeze_after_epochs=3, fine_tune_lr_factor=4) == plain
    assert rates("step", freeze="embedding", unfreeze_after_epochs=0) == plain


def test_cosine_decays_to_its_minimum_over_the_run():
    values = rates("cosine", steps=50, min_learning_rate=0.0)
    assert values[25] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 25 / 49)))
