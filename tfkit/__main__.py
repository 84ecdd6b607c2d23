"""`python -m tfkit train | list | cp | sample | tune-report | report | predict | launch`.

Train a classifier on a table or a folder within a time budget (the recipes chosen
for you), list the recipes, copy one to edit, draw images from an exported generator, rank
the trials of a hyperparameter search, write a run's report, label new data with a
classifier export, or start a multi-worker run on this machine.

Recipes are found by reading their header docstrings with `ast`, without importing
them (or TensorFlow), so these commands answer at once.
"""

import argparse
import ast
import importlib.util
import os
import shutil
import signal
import sys

import tfkit.train
from tfkit.cli import FAILURE, USAGE_ERROR, OneLineParser
from tfkit.files import write_failure


def recipe_files():
    """{recipe name: path of its .py file} for every module in the `recipes` package."""
    spec = importlib.util.find_spec("recipes")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = list(spec.submodule_search_locations)[0]
    return {
        name[:-3]: os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.endswith(".py") and not name.startswith("_")
    }


def recipe_header(path):
    """The `Key: value` lines at the top of a recipe's docstring, as a dict."""
    with open(path, encoding="utf-8") as file:
        docstring = ast.get_docstring(ast.parse(file.read())) or ""
    header = {}
    for line in docstring.splitlines():
        key, separator, value = line.partition(":")
        if not separator or " " in key.strip():
            break
        header[key.strip()] = value.strip()
    return header


def list_recipes(args):
    recipes = recipe_files()
    width = max(map(len, recipes), default=0)
    for name, path in recipes.items():
        header = recipe_header(path)
        print(f"{name:<{width}}  {header.get('Title', '')}  [{header.get('Source', '?')}]")
        if header.get("Data"):
            print(f"{'':<{width}}  data: {header['Data']}")
        print(f"{'':<{width}}  run: python -m recipes.{name} --help")


def copy_recipe(args):
    recipes = recipe_files()
    if args.recipe not in recipes:
        _usage_error(f"unknown recipe {args.recipe!r}; known: {', '.join(recipes)}")
    if os.path.exists(args.destination):
        _usage_error(f"{args.destination} exists; choose another name (it is never overwritten)")
    folder = os.path.dirname(args.destination) or "."
    if not os.path.isdir(folder):
        _usage_error(f"{folder} is not a folder; create it first or copy into an existing one")
    try:
        shutil.copyfile(recipes[args.recipe], args.destination)
    except OSError as error:  # e.g. a folder without write permission, a full disk
        _error(f"cannot write {args.destination}: {error.strerror}", FAILURE)
    print(f"copied {args.recipe} to {args.destination}; run it with: python {args.destination}")


def sample_images(args):
    """Draws a grid from the newest exported generator; needs no recipe code."""
    if not os.path.isdir(args.export_dir):
        _usage_error(f"{args.export_dir} is not a folder; give the export base path")
    if args.n < 1:
        _usage_error(f"--n must be >= 1. Received: {args.n}")
    import tfkit.quiet  # noqa: F401
    import numpy as np
    import tensorflow as tf

    from tfkit.export import latest_version_dir
    from tfkit.images import save_grid

    try:
        path = latest_version_dir(args.export_dir)
    except FileNotFoundError:
        _usage_error(f"{args.export_dir} holds no version folder (1/, 2/, ...) to sample from")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    if "latent" not in specs:
        _usage_error(f"{path} takes {sorted(specs)}, not a `latent` input: not a generator")
    latent_dim = specs["latent"].shape[1]
    latent = np.random.default_rng(args.seed).normal(size=(args.n, latent_dim)).astype("float32")
    save_grid(args.out, serve(latent=tf.constant(latent))["images"].numpy())
    print(f"wrote {args.n} images from {path} to {args.out}")


def tune_report(args):
    """Prints a search's ranked trials and writes objective.png beside them."""
    if not os.path.isfile(os.path.join(args.search_dir, "trials.csv")):
        _usage_error(f"{args.search_dir} has no trials.csv; give the folder of a --tune search")
    import tfkit.quiet  # noqa: F401  (keras-tuner imports TensorFlow)
    from tfkit.tune import report

    import pandas as pd

    table = report(args.search_dir)
    with pd.option_context("display.max_columns", None, "display.width", 160):
        print(table.to_string(index=False))
    print(f"plot: {os.path.join(args.search_dir, 'objective.png')}")


def run_report(args):
    """Writes a run folder's self-contained report.html."""
    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        _usage_error(f"{args.run_dir} has no config.json; give a run folder (--run-dir)")
    import tfkit.quiet  # noqa: F401  (the run-folder helpers import TensorFlow)
    from tfkit.errors import DataError
    from tfkit.report import write_report

    try:
        path = write_report(args.run_dir, args.out)
    except DataError as error:  # an empty, cut-short or edited file of the run's
        _error(str(error), FAILURE)
    print(f"wrote {path}")


def predict_labels(args):
    """Labels a table of texts or a folder of pictures with a classifier export."""
    import tfkit.quiet  # noqa: F401
    from tfkit.errors import DataError, UsageError
    from tfkit.predict import predict

    # SIGTERM as Ctrl-C: the output's temporary file is removed on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = predict(args.export_dir, args.input, args.output, args.text_column,
                         args.batch_size)  # fmt: skip
    except UsageError as error:
        _usage_error(str(error))
    except DataError as error:
        _error(str(error), FAILURE)
    except KeyboardInterrupt:
        _error(f"interrupted; {args.output} was not written", 130)
    for name, reason in result["skipped"]:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(f"predicted {result['predicted']}, skipped {len(result['skipped'])}, with "
          f"{result['export']}: wrote {args.output}")  # fmt: skip


def train_data(args):
    """`tfkit train`: candidates, pick, refit and export, within the budget (`tfkit.train`)."""
    from tfkit.errors import DataError, UsageError
    from tfkit.train import command

    received = [signal.SIGINT]

    def stop(number, frame):  # SIGTERM as Ctrl-C: the candidate stops after its step, backed up
        received[0] = number
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        sys.exit(command.main(args))
    except UsageError as error:
        _usage_error(str(error))
    except (DataError, command.TrainFailed) as error:
        _error(str(error), FAILURE)
    except KeyboardInterrupt:
        _error("stopped; run the same command again to continue where it was", 128 + received[0])


def launch_workers(args):
    """Runs the command as --workers local workers of one multi-worker cluster."""
    from tfkit.launch import launch

    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    if not command:
        _usage_error("give the command after --, e.g. launch --workers 2 -- python -m recipes.x")
    if args.workers < 1:
        _usage_error(f"--workers must be >= 1. Received: {args.workers}")
    sys.exit(launch(args.workers, command))


def main(argv=None):
    parser = OneLineParser(prog="python -m tfkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train = commands.add_parser(
        "train", help="train a classifier on a table or a folder, within a time budget",
        description=tfkit.train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tfkit.train.add_arguments(train)
    train.set_defaults(handler=train_data)
    commands.add_parser("list", help="list the recipes").set_defaults(handler=list_recipes)
    copy = commands.add_parser("cp", help="copy a recipe to a file of your own to edit and run")
    copy.add_argument("recipe", help="a recipe name from `python -m tfkit list`")
    copy.add_argument("destination", help="the new file, e.g. my_model.py")
    copy.set_defaults(handler=copy_recipe)
    sample = commands.add_parser("sample", help="draw a grid of images from an exported GAN")
    sample.add_argument("export_dir", help="the export base path, e.g. saved_models/dcgan_cifar10")
    sample.add_argument("--n", type=int, default=16, help="how many images")
    sample.add_argument("--out", default="samples.png", help="the PNG to write")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    sample.set_defaults(handler=sample_images)
    tune = commands.add_parser("tune-report", help="rank a search's trials and plot them")
    tune.add_argument("search_dir", help="the --run-dir of a --tune search")
    tune.set_defaults(handler=tune_report)
    report = commands.add_parser("report", help="write a run folder's report.html")
    report.add_argument("run_dir", help="the run folder, e.g. runs/imdb_conv1d/<timestamp>")
    report.add_argument("--out", default=None, help="where to write; default RUN_DIR/report.html")
    report.set_defaults(handler=run_report)
    labels = commands.add_parser(
        "predict", help="label a table of texts or a folder of pictures with a classifier export"
    )
    labels.add_argument("export_dir", help="an export: a version folder, or its base (newest)")
    labels.add_argument("--input", required=True, help="a table (.csv .tsv .jsonl .parquet) "
                        "of texts, or a folder of pictures (or one picture)")  # fmt: skip
    labels.add_argument("--output", required=True, help="the table to write (.csv .tsv ...)")
    labels.add_argument("--text-column", default="text", help="a table's column of texts; "
                        "COL,COL: several, joined by a line break (as tfkit train joins them)")  # fmt: skip
    labels.add_argument("--batch-size", type=int, default=256, help="inputs per call "
                        "(fewer when their files pass 64 MB)")
    labels.set_defaults(handler=predict_labels)
    start = commands.add_parser(
        "launch", help="run a command as N local workers with TF_CONFIG set (multi-worker)"
    )
    start.add_argument("--workers", type=int, default=2, help="how many worker processes")
    start.add_argument("command_line", nargs=argparse.REMAINDER, help="-- then the command")
    start.set_defaults(handler=launch_workers)
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except Exception as error:  # a full disk or a folder not writable: one line, exit 1
        failure = write_failure(error)
        if failure is None:
            raise
        _error(str(failure), FAILURE)


def _usage_error(message):
    _error(message, USAGE_ERROR)


def _error(message, status):
    print(f"python -m tfkit: error: {message}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
