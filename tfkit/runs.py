"""Run folders: where each run's config, history, metrics, checkpoint and plots go."""

import contextlib
import dataclasses
import datetime
import json
import os
import tempfile

from tfkit.distribute import chief_or_temporary, describe


def default_run_dir(recipe):
    """`runs/<recipe>/<timestamp>/`, unique to the second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", recipe, stamp)


def start_run(recipe, config, strategy):
    """Creates the run folder and writes `config.json`; returns the folder's path.

    Re-using an existing `--run-dir` is how a killed run resumes: its history,
    checkpoint and backup are kept. On a non-chief worker of a multi-worker run the
    folder is a temporary one, removed at exit.
    """
    run_dir = chief_or_temporary(config.run_dir or default_run_dir(recipe), strategy)
    os.makedirs(run_dir, exist_ok=True)
    write_json(
        os.path.join(run_dir, "config.json"), {"recipe": recipe, **dataclasses.asdict(config)}
    )
    if config.data == "synthetic":
        print(f"[{recipe}] data: SYNTHETIC (generated, learnable; not the real dataset)")
    print(f"[{recipe}] run folder: {run_dir}")
    layout = describe(strategy, config.batch_size)
    print(
        f"[{recipe}] strategy {layout['strategy']}: {layout['replicas']} replica(s), global "
        f"batch {config.batch_size}, {layout['per_replica_batch']:g} per replica"
    )
    return run_dir


def finish_run(run_dir, test_metrics, splits, **extra):
    """Writes `metrics.json` (test metrics, data source, split sizes) and `curves.png`."""
    metrics = {
        "test": {name: float(value) for name, value in test_metrics.items()},
        "data": splits.source,
        **splits.sizes(),
        **extra,
    }
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    history = os.path.join(run_dir, "history.csv")
    if os.path.exists(history):
        title = "SYNTHETIC data" if splits.source == "synthetic" else f"{splits.source} data"
        plot_history(history, os.path.join(run_dir, "curves.png"), title=title)
    return metrics


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, renamed onto it if the block succeeds.

    Readers (and a resumed run) then see the old file or the new one, never half of one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file in the same folder and a rename."""
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        file.write(text)


def write_json(path, data):
    """Writes `data` as indented JSON, atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def plot_history(history_csv, png_path, pairs=None, title=None):
    """Plots learning curves from `history.csv`: each metric with its `val_` twin.

    Args:
        history_csv: the run's `history.csv`.
        png_path: where the PNG goes.
        pairs: the metric names to plot, one panel each; by default loss, accuracy
            and AUC where the history has them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    history = pd.read_csv(history_csv)
    pairs = [name for name in (pairs or ("loss", "accuracy", "auc")) if name in history]
    figure, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.5), squeeze=False)
    for axis, name in zip(axes[0], pairs):
        axis.plot(history["epoch"], history[name], "o-", label=f"train {name}")
        if f"val_{name}" in history:
            axis.plot(history["epoch"], history[f"val_{name}"], "o-", label=f"validation {name}")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(png_path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    plt.close(figure)
