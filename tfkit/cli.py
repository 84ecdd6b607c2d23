"""The command-line edge: flags from a config dataclass, and errors as one line.

Only this module turns exceptions into an exit status: 2 for a bad setting, 1 for a
failure such as missing data, 0 for a run already complete, 128 + the signal's number
for a run stopped by SIGTERM or SIGINT. Inside tfkit and the recipes they are exceptions.
"""

import argparse
import dataclasses
import os
import shlex
import sys
import types
import typing

from tfkit.errors import DataError, RunComplete, RunStateError, UsageError
from tfkit.files import write_failure
from tfkit.signals import TrainingStopped

USAGE_ERROR = 2
FAILURE = 1


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not usage text plus error."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default, and the recipe's docstring as written."""


def build_parser(config_class, prog=None, description=None):
    """An argument parser with one `--flag` per field of `config_class`."""
    parser = OneLineParser(
        prog=prog,
        description=description,
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    hints = typing.get_type_hints(config_class)
    for config_field in dataclasses.fields(config_class):
        if config_field.metadata.get("derived"):
            continue
        name = config_field.metadata.get("name") or "--" + config_field.name.replace("_", "-")
        kind = _base_type(hints[config_field.name])
        options = {
            "default": config_field.default,
            "help": config_field.metadata.get("help", " "),
            "dest": config_field.name,
        }
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind
            options["metavar"] = name.lstrip("-").replace("-", "_").upper()
            if "choices" in config_field.metadata:
                options["choices"] = config_field.metadata["choices"]
                options["metavar"] = "{" + ",".join(config_field.metadata["choices"]) + "}"
        parser.add_argument(name, **options)
    return parser


def parse_config(config_class, argv=None, prog=None, description=None):
    """Parses flags into a validated `config_class`; exits with status 2 on a bad value."""
    parser = build_parser(config_class, prog=prog, description=description)
    argv = sys.argv[1:] if argv is None else list(argv)
    namespace = parser.parse_args(argv)
    try:
        config = config_class(**vars(namespace))
        config.check_given(_given(parser, argv))
    except ValueError as error:
        parser.error(str(error))
    return config


def _given(parser, argv):
    """The config fields whose flags `argv` spells out (a default is not a choice)."""
    words = {word.split("=", 1)[0] for word in argv if word.startswith("--")}
    return {
        action.dest
        for action in parser._actions
        if any(option in words for option in action.option_strings)
    }


def run(main, argv=None):
    """Runs a recipe's `main`, turning a user-fixable error into one line and an exit status."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except DataError as error:
        # Not sys.exit: a failed TFDS download leaves non-daemon threads retrying for
        # minutes, and the interpreter would wait for them before exiting.
        _fail(FAILURE, f"error: {error}", exit=os._exit)
    except RunStateError as error:
        _fail(FAILURE, f"error: {error}")
    except UsageError as error:
        _fail(USAGE_ERROR, f"error: {error}")
    except RunComplete as done:
        print(done)
        sys.exit(0)
    except (TrainingStopped, KeyboardInterrupt) as stop:
        _stopped(stop)
    except Exception as error:
        stop = _wrapped_stop(error)
        if stop is not None:
            _stopped(stop)
        # A full disk or a folder not writable, where no writer said so.
        failure = write_failure(error)
        if failure is None:
            raise
        _fail(FAILURE, f"error: {failure}")


def _stopped(stop):
    if isinstance(stop, TrainingStopped):
        _fail(stop.exit_status, str(stop))
    _fail(130, "interrupted; re-run the same command with the same --run-dir to resume")


def _wrapped_stop(error):
    """The signal's stop inside `error`: Keras 3.15 turns a `TrainingStopped` raised in a
    layer's `call` (a SIGTERM while `TextVectorization` reads) into a `RuntimeError`."""
    while error is not None:
        if isinstance(error, (TrainingStopped, KeyboardInterrupt)):
            return error
        error = error.__cause__ or error.__context__
    return None


def _fail(status, line, exit=sys.exit):
    print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    exit(status)


def command_line(prog, config, **changes):
    """The command that makes `config` with `changes`: `prog` and each flag off its default."""
    config = dataclasses.replace(config, **changes)
    words = [prog]
    for config_field in dataclasses.fields(config):
        value = getattr(config, config_field.name)
        if value == config_field.default or config_field.metadata.get("derived"):
            continue
        name = config_field.metadata.get("name") or "--" + config_field.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(name if value else "--no-" + name[2:])
        elif value is not None:
            words += [name, shlex.quote(str(value))]
    return " ".join(words)


def _number_or_word(text):
    """A flag that takes a number or a word (`--learning-rate 3e-4` or `auto`)."""
    try:
        return float(text)
    except ValueError:
        return text


def _base_type(hint):
    """`int | None` -> int; `str` -> str; `float | str` -> a number or a word."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _number_or_word if set(kinds) == {float, str} else kinds[0]
    return hint
