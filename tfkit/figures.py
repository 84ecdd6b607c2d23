"""The figures of a run: learning curves and the confusion matrix, as matplotlib Figures.

Built with `matplotlib.figure.Figure` (no pyplot, no global state, no display), so
they can be saved as PNGs in a run folder or embedded in the report.
"""

from tfkit import files


def plot_history(history_csv, png_path, pairs=None, title=None):
    """Plots learning curves from `history.csv` into `png_path` (see `history_figure`)."""
    import pandas as pd

    save_figure(history_figure(pd.read_csv(history_csv), pairs, title), png_path)


def save_figure(figure, png_path):
    """Writes a matplotlib Figure as a PNG, atomically."""
    with files.atomic_path(png_path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")


def confusion_figure(matrix, class_names, title=None):
    """A confusion matrix (rows the true class) as a matplotlib Figure, counts in the cells."""
    import numpy as np
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    size = 2 + 0.6 * len(class_names)
    figure = Figure(figsize=(size + 1, size))
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for (row, column), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axis.text(
            column, row, int(count), ha="center", va="center", color="white" if dark else "black"
        )
    figure.colorbar(image)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


def history_figure(history, pairs=None, title=None):
    """Learning curves, one panel per metric with its `val_` twin, as a matplotlib Figure.

    Args:
        history: the run's history (a DataFrame of `history.csv`).
        pairs: the metric names to plot, one panel each; by default loss, accuracy
            and AUC where the history has them.
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    pairs = [name for name in (pairs or ("loss", "accuracy", "auc")) if name in history]
    figure = Figure(figsize=(5 * max(1, len(pairs)), 3.5))
    axes = figure.subplots(1, max(1, len(pairs)), squeeze=False)
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
    return figure
