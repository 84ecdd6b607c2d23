"""Flags every recipe shares: numbers checked before any work, and how Keras logs."""

import dataclasses
import importlib
import io
import sys
import typing

import pytest

from recipes import dcgan_cifar10
from tfkit.__main__ import recipe_files
from tfkit.config import TrainConfig
from tfkit.runs import training_differences

RECIPES = [importlib.import_module(f"recipes.{name}") for name in recipe_files()]


def float_flags(config_class):
    """The `--flag` of every field of `config_class` that holds a number with a fraction."""
    hints = typing.get_type_hints(config_class)
    return [
        field.metadata.get("name") or "--" + field.name.replace("_", "-")
        for field in dataclasses.fields(config_class)
        if float in (typing.get_args(hints[field.name]) or (hints[field.name],))
    ]


@pytest.mark.parametrize(
    "recipe, flag",
    [(recipe, flag) for recipe in RECIPES for flag in float_flags(recipe.Config)],
    ids=lambda value: getattr(value, "RECIPE", value),
)
def test_every_float_flag_of_every_recipe_refuses_nan_and_inf(recipe, flag, tmp_path, capsys):
    # Small enough to end soon should the check let a value through.
    quick = ["--data", "synthetic", "--max-examples", "32", "--epochs", "1", "--no-export"]
    for bad in ("nan", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            recipe.main([flag, bad, *quick, "--run-dir", str(tmp_path / "run")])
        assert exit_info.value.code == 2
        error_lines = capsys.readouterr().err.strip().splitlines()
        assert len(error_lines) == 1 and "must be a finite number" in error_lines[0]
    assert not (tmp_path / "run").exists()  # refused before any run folder


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_auto_verbosity_is_a_progress_bar_on_a_terminal_only(monkeypatch):
    config = TrainConfig()
    monkeypatch.setattr(sys, "stdout", Stream(tty=False))  # a file, a pipe, a batch job
    assert config.fit_verbosity() == 2
    monkeypatch.setattr(sys, "stdout", Stream(tty=True))
    assert config.fit_verbosity() == 1
    for given in ("0", "1", "2"):  # the flag overrides
        assert TrainConfig(verbose=given).fit_verbosity() == int(given)


def test_verbose_is_not_a_training_flag():
    # A run resumed or re-run with another --verbose is the same run.
    saved, given = {"epochs": 3, "verbose": "auto"}, {"epochs": 3, "verbose": "2"}
    assert training_differences(saved, given) == {}


def test_a_run_written_to_a_file_logs_one_line_per_epoch(tmp_path, capsys):
    # capsys stands for a file: its stdout is no terminal.
    dcgan_cifar10.main([
        "--generator-filters", "8", "--discriminator-filters", "8", "--data", "synthetic",
        "--max-examples", "64", "--batch-size", "16", "--quality-samples", "16",
        "--epochs", "2", "--grad-norm-every", "0", "--no-export",
        "--run-dir", str(tmp_path / "run"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out  # no progress-bar redraws
    lines = out.splitlines()
    epochs = [index for index, line in enumerate(lines) if line.startswith("Epoch ")]
    assert len(epochs) == 2
    for index in epochs:  # each epoch: its header, then one line of its 4 steps' metrics
        assert lines[index + 1].startswith("4/4 - ") and "d_loss" in lines[index + 1]
