import dataclasses

import pytest

from tfkit.cli import build_parser, parse_config
from tfkit.config import ClassifierConfig, TrainConfig, parse_class_weight


def test_every_field_is_a_flag_with_its_default_in_help():
    help_text = build_parser(ClassifierConfig).format_help()
    for field in dataclasses.fields(ClassifierConfig):
        flag = "--" + field.name.replace("_", "-")
        # A field the data decides (the class names) is no flag.
        assert (flag in help_text) != bool(field.metadata.get("derived"))
    assert "(default: rmsprop)" in help_text
    assert "(default: 0.5)" in help_text  # reduce-lr-factor


def test_flags_become_a_typed_config():
    config = parse_config(
        ClassifierConfig,
        ["--epochs", "3", "--clipnorm", "1.0", "--no-export", "--class-weight", "0=1,1=3"],
    )
    assert config.epochs == 3 and config.clipnorm == 1.0 and config.export is False
    assert config.global_clipnorm is None and config.batch_size == 128


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--epochs", "-1"], "epochs must be >= 1"),
        (["--clipnorm", "0"], "clipnorm must be > 0"),
        (["--clipvalue", "-0.5"], "clipvalue must be > 0"),
        (["--optimizer", "adamax2"], "invalid choice"),
        (["--dropout", "1.0"], "dropout must be in [0, 1)"),
        (["--class-weight", "heavy"], "class_weight must be none, balanced"),
        (["--data", "dir"], "--data dir needs --data-dir"),
        (["--data", "dir", "--data-dir", "/no/such/folder"], "data_dir is not a folder"),
        (["--learning-rate", "0"], "learning_rate must be > 0"),
        (["--clipnorm", "1", "--global-clipnorm", "1"], "only one of clipnorm, clipvalue"),
        (["--clipnorm", "1", "--clipvalue", "0.5"], "only one of clipnorm, clipvalue"),
        (["--epochs", "two"], "invalid int value"),
        (["--tune", "--strategy", "multi_worker"], "keras-tuner's own chief and workers"),
        (["--no-such-flag"], "unrecognized arguments"),
        # Not a number, or no finite one: refused before any range check sees it.
        (["--l2", "nan"], "l2 must be a finite number"),
        (["--l2", "inf"], "l2 must be a finite number"),
        (["--min-learning-rate", "nan"], "min_learning_rate must be a finite number"),
        (["--warmup-epochs", "nan"], "warmup_epochs must be a finite number"),
        (["--warmup-epochs", "inf"], "warmup_epochs must be a finite number"),
        (["--learning-rate", "inf"], "learning_rate must be a finite number"),
        (["--clipnorm", "inf"], "clipnorm must be a finite number"),
        (["--lr-decay-epochs", "inf"], "lr_decay_epochs must be a finite number"),
        (["--fine-tune-lr-factor", "nan"], "fine_tune_lr_factor must be a finite number"),
        (["--class-weight", "0=1,1=nan"], "class weights must be > 0 and finite"),
        (["--class-weight", "0=inf,1=1"], "class weights must be > 0 and finite"),
        # Finite but impossible.
        (["--fine-tune-lr-factor", "0"], "fine_tune_lr_factor must be > 0"),
        (["--fine-tune-lr-factor", "-5"], "fine_tune_lr_factor must be > 0"),
        (["--unfreeze-after-epochs", "-3"], "unfreeze_after_epochs must be >= 0"),
        (["--verbose", "3"], "invalid choice"),
    ],
)
def test_impossible_values_exit_2_with_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(ClassifierConfig, argv, prog="recipe")
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1
    assert words in error_lines[0] and "see --help" in error_lines[0]


def test_every_float_flag_is_checked_finite_including_a_subclass_s_own():
    @dataclasses.dataclass
    class Recipe(ClassifierConfig):  # a recipe adds float fields the generic check must cover
        temperature: float = 1.0

    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match=f"temperature must be a finite number.*{bad}"):
            Recipe(temperature=float(bad))
    assert Recipe(learning_rate="auto").learning_rate == "auto"  # a word is no number


def test_class_weight_forms():
    assert parse_class_weight("none") is None
    assert parse_class_weight("balanced") == "balanced"
    assert parse_class_weight("0=1,1=3.5") == {0: 1.0, 1: 3.5}
    with pytest.raises(ValueError, match="must be > 0"):
        parse_class_weight("0=0,1=1")


def test_a_gan_has_no_classifier_flags():
    help_text = build_parser(TrainConfig).format_help()
    assert "--epochs" in help_text and "--clipvalue" in help_text
    assert "--class-weight" not in help_text and "--early-stopping-patience" not in help_text


def test_a_signal_raised_inside_a_layer_still_stops_with_its_own_line_and_status(capsys):
    # Keras 3.15 wraps an exception raised in a layer's call (a SIGTERM while
    # TextVectorization reads the texts) into a RuntimeError it cannot rebuild it as.
    import keras
    import numpy as np

    from tfkit import cli
    from tfkit.signals import TrainingStopped

    class Reading(keras.layers.Layer):
        def call(self, inputs):
            raise TrainingStopped(15, "stopped by SIGTERM outside training; run it again")

    def main(argv):
        Reading()(np.zeros((2, 3), "float32"))

    with pytest.raises(SystemExit) as stop:
        cli.run(main, [])
    assert stop.value.code == 143
    assert capsys.readouterr().err.strip() == "stopped by SIGTERM outside training; run it again"
