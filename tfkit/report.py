"""`python -m tfkit report RUN_DIR`: one self-contained `report.html` for a run folder.

Everything a person looks at to judge a run, on one page that needs no network (plots
and pictures are embedded as data URIs): the diagnosis and its advice, the test
metrics with the confusion matrix and per-class metrics, the linear baseline's scores
beside the model's (the GAN: its image grids and scores), the learning curves, the
learning rate by epoch, the gradient norms, the LR range test and the capacity check
if they ran, and the config. It reads only the files the run wrote.

Class names, file names, flags and the folder's name are the user's: `table_html` escapes
every cell it is given as text, so the sections pass plain text and never escape it
themselves; a cell that is HTML already (`Markup`) escaped its text where it was built.
"""

import base64
import html
import io
import json
import os

import numpy as np
import pandas as pd

from tfkit.diagnostics.verdict import confusion, per_class, said_ignored
from tfkit.errors import DataError
from tfkit.figures import history_figure
from tfkit.files import write_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 3px 10px; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.8em 1.2em; border-radius: 6px; margin: 1em 0; }
.ok { background: #e8f5e9; border-left: 6px solid #2e7d32; }
.alarm { background: #fff3e0; border-left: 6px solid #ef6c00; }
img { max-width: 100%; } .grids img { width: 32%; margin-right: 1%; image-rendering: pixelated; }
.muted { color: #777; }
"""
HEALTHY = ("good", "still improving")
SKIPPED_SHOWN = 20  # skipped files named on the page; metrics.json names them all
# The scores set beside the baseline's, as `evaluate_classifier` names them.
BASELINE_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "loss": "loss", "auc": "AUC"}
# What `tfkit.runs.finish_run` writes into every metrics.json, and into every diagnosis:
# without them the file was cut short or edited, and the page would say what is not so.
FINISHED_KEYS = ("strategy", "resumed")
DIAGNOSIS_KEYS = ("fit", "why", "gradients", "gradients_why", "best_epoch", "advice")
REWRITE = "rerun the run's command (with --overwrite if it finished) to write it again"


class Markup(str):
    """A table cell that is HTML already: `table_html` writes it as it is."""


def _bold(label, text=None):
    """`<b>label</b>: text` as a cell, both escaped."""
    cell = f"<b>{html.escape(label)}</b>"
    return Markup(cell if text is None else f"{cell}: {html.escape(text)}")


def write_report(run_dir, out=None):
    """Writes `report.html` (or `out`) for the run folder `run_dir`; returns its path."""
    run = _read_run(run_dir)
    sections = [
        _diagnosis_section(run),
        _results_section(run),
        _curves_section(run),
        _gradients_section(run),
        _lr_find_section(run),
        _capacity_section(run),
        _kfold_section(run),
        _config_section(run),
    ]
    title = f"{run['config'].get('recipe', 'run')}: {os.path.abspath(run_dir)}"
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='muted'>{html.escape(_status(run))}</p>"
        + "".join(section for section in sections if section)
        + "</body></html>"
    )
    path = out or os.path.join(run_dir, "report.html")
    write_text(path, page)
    return path


def _read_run(run_dir):
    """The run folder's files, each None where absent.

    Raises:
        DataError: a file is empty or cannot be parsed, or metrics.json is not a finished
            run's (see `_check_metrics`).
    """

    def read_json(name):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as file:
                return json.load(file)
        except ValueError as error:
            said = "is empty" if os.path.getsize(path) == 0 else f"is not JSON ({error})"
            raise DataError(f"{path} {said}; {REWRITE}") from None

    def read_csv(name):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            return None
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty; {REWRITE}") from None
        except pd.errors.ParserError as error:
            raise DataError(f"{path} is not a table ({error}); {REWRITE}") from None

    samples = os.path.join(run_dir, "samples")
    run = {
        "dir": run_dir,
        "config": read_json("config.json") or {},
        "metrics": read_json("metrics.json"),
        "history": read_csv("history.csv"),
        "gradients": read_csv("gradients.csv"),
        "lr_find": read_json("lr_find.json"),
        "lr_find_rows": read_csv("lr_find.csv"),
        "overfit": read_json("overfit.json"),
        "kfold": read_csv("kfold.csv"),
        "grids": sorted(os.path.join(samples, name) for name in os.listdir(samples))
        if os.path.isdir(samples)
        else [],
    }
    if not isinstance(run["config"], dict):
        raise DataError(f"{os.path.join(run_dir, 'config.json')} is not a run's config; {REWRITE}")
    if os.path.exists(os.path.join(run_dir, "metrics.json")):
        _check_metrics(os.path.join(run_dir, "metrics.json"), run["metrics"])
    return run


def _check_metrics(path, metrics):
    """Raises `DataError` unless `metrics` holds what `finish_run` always writes, and a
    diagnosis and scores the report can read."""
    if not isinstance(metrics, dict):
        raise DataError(f"{path} is not a run's record (a JSON object); {REWRITE}")
    lacking = [key for key in FINISHED_KEYS if key not in metrics]
    diagnosis = metrics.get("diagnosis")
    if diagnosis is not None:
        lacking += [f"diagnosis.{key}" for key in DIAGNOSIS_KEYS if key not in (diagnosis or {})]
    if lacking:
        raise DataError(
            f"{path} is partial: it lacks {', '.join(lacking)}, which a finished run writes; "
            f"{REWRITE}"
        )
    for split in ("val", "test"):
        if metrics.get(split) is not None and not isinstance(metrics[split], dict):
            raise DataError(f"{path} is partial: its {split!r} is not a table of scores; {REWRITE}")


def _status(run):
    if run["metrics"]:
        epochs = len(run["history"]) if run["history"] is not None else 0
        resumed = len(run["metrics"].get("resumed", []))
        return f"complete: {epochs} epochs on {run['metrics'].get('data', '?')} data" + (
            f", resumed {resumed} time(s)" if resumed else ""
        )
    if run["history"] is not None:
        return f"not finished: {len(run['history'])} epochs so far"
    if run["lr_find"] or run["overfit"]:
        return "a diagnostic run (no training)"
    return "nothing recorded yet"


def _diagnosis_section(run):
    diagnosis = (run["metrics"] or {}).get("diagnosis")
    if not diagnosis:
        return ""
    healthy = diagnosis["fit"] in HEALTHY and diagnosis["gradients"] == "ok"
    rows = [
        ("fit", _bold(diagnosis["fit"], diagnosis["why"])),
        ("gradients", _bold(diagnosis["gradients"], diagnosis["gradients_why"])),
        ("best epoch", f"{diagnosis['best_epoch']} (counted from 0, as in history.csv)"),
    ]
    first = diagnosis.get("first_loss")
    if first:
        verdict = "as expected" if first["ok"] else "far off: check the output layer and labels"
        rows.append(
            (
                "first loss",
                f"{first['value']:.4f}, expected about {first['expected']:.4f}: {verdict}",
            )
        )
        # Class weights weigh the training loss only: validation starts elsewhere.
        val_expected = first.get("val_expected")
        if val_expected and abs(val_expected - first["expected"]) > 1e-3 * first["expected"]:
            rows.append(("first validation loss", f"about {val_expected:.4f} (no class weights)"))
    baseline = diagnosis.get("majority_baseline")
    if baseline:
        rows.append(
            (
                "majority baseline",
                f"always '{baseline['class']}': accuracy "
                f"{baseline['accuracy']:.3f} on {baseline['split']}, AUC 0.5",
            )
        )
    if diagnosis.get("baseline"):
        rows.append(("linear baseline", diagnosis["baseline"]))
    if diagnosis.get("ignored_classes"):
        rows.append(("ignored classes", said_ignored(diagnosis["ignored_classes"])))
    advice = "".join(f"<li>{html.escape(line)}</li>" for line in diagnosis["advice"])
    return (
        f"<h2>Diagnosis</h2><div class='verdict {'ok' if healthy else 'alarm'}'>"
        + table_html(rows, header=False)
        + (f"<p>What to do:</p><ul>{advice}</ul>" if advice else "")
        + "</div>"
    )


def _results_section(run):
    metrics = run["metrics"] or {}
    parts = []
    test = metrics.get("test")
    if test:
        scalars = [(name, _number(value)) for name, value in test.items() if _is_number(value)]
        parts.append(table_html(scalars, ("metric", "test")))
        counts = (metrics.get("class_counts") or {}).get("test")
        matrix = confusion(test, counts or {})
        if matrix is not None:
            matrix = np.rint(matrix).astype(int)
            names = list(counts)
            parts.append("<p>Confusion matrix on the test split (rows: true class):</p>")
            parts.append(
                table_html(
                    [
                        (f"true {name}", *(int(v) for v in matrix[i]))
                        for i, name in enumerate(names)
                    ],
                    ("", *(f"predicted {name}" for name in names)),
                )
            )
            parts.append(
                table_html(_per_class(matrix, names), ("class", "precision", "recall", "examples"))
            )
    if metrics.get("baseline"):
        parts.append(_baseline_part(metrics))
    if run["grids"]:
        chosen = sorted({run["grids"][0], run["grids"][len(run["grids"]) // 2], run["grids"][-1]})
        images = "".join(
            f"<img src='{_file_uri(path)}' alt='{html.escape(os.path.basename(path))}'>"
            for path in chosen
        )
        parts.append(
            f"<p>Generated images, first, middle and last epoch:</p><div class='grids'>{images}</div>"
        )
        scores = [
            (k, _number(metrics[k])) for k in ("best_pixel_kid", "final_pixel_kid") if k in metrics
        ]
        if scores:
            parts.append(table_html(scores, ("score (lower is closer to the real images)", "")))
    if metrics.get("class_counts"):
        rows = [
            (split, ", ".join(f"{c} {n}" for c, n in counts.items()))
            for split, counts in metrics["class_counts"].items()
        ]
        parts.append(table_html(rows, ("split", "examples per class")))
    skipped = metrics.get("skipped_files") or []
    if skipped:
        shown = skipped[:SKIPPED_SHOWN]
        parts.append(
            f"<p>{len(skipped)} file(s) could not be read and were skipped"
            + (f"; the first {len(shown)}:" if len(shown) < len(skipped) else ":")
            + "</p>"
        )
        parts.append(table_html([(e["file"], e["error"]) for e in shown], ("file", "why")))
    return "<h2>Results</h2>" + "".join(parts) if parts else ""


def _baseline_part(metrics):
    """The model's scores beside the linear baseline's, on validation and test."""
    baseline = metrics["baseline"]
    splits = [s for s in ("val", "test") if metrics.get(s) or baseline.get(s)]
    columns = ["metric"]
    for split in splits:
        columns += [f"model ({split})", f"baseline ({split})"]
    rows = []
    for name, label in BASELINE_METRICS.items():
        ours = [(metrics.get(split) or {}).get(name) for split in splits]
        theirs = [(baseline.get(split) or {}).get(name) for split in splits]
        pairs = list(zip(ours, theirs))
        # A score only one of them has (AUC: the baseline may not log it) compares nothing.
        if any(a is not None and b is not None for a, b in pairs):
            cells = ["–" if value is None else _number(value) for pair in pairs for value in pair]
            rows.append((label, *cells))
    seconds = baseline.get("seconds")
    trained = f", trained in {float(seconds):.1f} s" if seconds is not None else ""
    about = f"{baseline.get('model', 'a linear model')}{trained}"
    return f"<p>Against the baseline ({html.escape(about)}):</p>" + table_html(rows, columns)


def _curves_section(run):
    history = run["history"]
    if history is None or history.empty:
        return ""
    pairs = ("d_loss", "g_loss", "pixel_kid") if "pixel_kid" in history else None
    parts = [f"<img src='{_figure_uri(history_figure(history, pairs))}' alt='learning curves'>"]
    if "lr" in history:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5, 3))
        axis = figure.subplots()
        axis.plot(history["epoch"], history["lr"], "o-")
        axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_title("learning rate by epoch")
        figure.tight_layout()
        parts.append(f"<img src='{_figure_uri(figure)}' alt='learning rate by epoch'>")
    return "<h2>Learning curves</h2>" + "".join(parts)


def _gradients_section(run):
    rows = run["gradients"]
    if rows is None or rows.empty:
        return ""
    from matplotlib.figure import Figure

    layers = [c for c in rows.columns if c not in ("epoch", "step", "grad_norm")]
    figure = Figure(figsize=(10, 4))
    axis = figure.subplots()
    axis.plot(rows["step"], rows["grad_norm"], "k-", linewidth=2, label="global")
    for layer in layers:
        axis.plot(rows["step"], rows[layer], "-", linewidth=1, label=layer)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_title("gradient norm (before clipping)")
    axis.legend(fontsize=7, ncol=2, loc="best")
    figure.tight_layout()
    return (
        "<h2>Gradient norms</h2>"
        f"<img src='{_figure_uri(figure)}' alt='gradient norms'>"
        "<p class='muted'>First layers far below the last: vanishing gradients; norms growing by "
        "orders of magnitude: exploding (000 §30-33).</p>"
    )


def _lr_find_section(run):
    found = run["lr_find"]
    if not found or run["lr_find_rows"] is None:
        return ""
    from tfkit.diagnostics import lr_find

    figure = lr_find.figure(run["lr_find_rows"], found["suggested_learning_rate"], "LR range test")
    rows = [
        ("suggested learning rate", f"{found['suggested_learning_rate']:.3g}"),
        ("rule", found["rule"]),
        ("diverged at", _number(found["diverged_at"]) if found["diverged_at"] else "did not"),
        *[(k, f"{v:.3g}") for k, v in found.get("other_suggestions", {}).items()],
    ]
    return f"<h2>LR range test</h2><img src='{_figure_uri(figure)}' alt='LR range test'>" + table_html(
        rows, header=False
    )


def _capacity_section(run):
    result = run["overfit"]
    if not result:
        return ""
    said = "fits" if result["fits"] else "cannot fit"
    rows = [
        ("verdict", _bold(said)),
        ("training loss", f"{result['first_loss']:.4f} → {result['final_loss']:.4f}"),
        ("steps", result["steps"]),
        ("batches", result["batches"]),
    ]
    advice = "".join(f"<li>{html.escape(line)}</li>" for line in result["advice"])
    return (
        "<h2>Capacity check</h2>"
        + table_html(rows, header=False)
        + (f"<ul>{advice}</ul>" if advice else "")
    )


def _kfold_section(run):
    table = run["kfold"]
    if table is None:
        return ""
    rows = [
        [value if isinstance(value, str) else _number(value) for value in row]
        for row in table.itertuples(index=False)
    ]
    return (
        "<h2>Cross-validation</h2><p class='muted'>each fold's run folder is fold-N/ "
        "(its own report: python -m tfkit report RUN_DIR/fold-N)</p>"
        + table_html(rows, list(table.columns))
    )


def _config_section(run):
    rows = [(k, json.dumps(v)) for k, v in sorted(run["config"].items())]
    return "<h2>Config</h2>" + table_html(rows, ("flag", "value")) if rows else ""


def _per_class(matrix, names):
    return [
        (name, _number(c["precision"]), _number(c["recall"]), c["examples"])
        for name, c in per_class(matrix, names, undefined=float("nan")).items()
    ]


def table_html(rows, columns=None, header=True):
    """An HTML table; numbers right-aligned, text escaped (`Markup` written as it is)."""
    head = ""
    if header and columns:
        head = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='number'>{cell}</td>"
            if isinstance(cell, (int, float))
            else f"<td>{cell if isinstance(cell, Markup) else html.escape(str(cell))}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value):
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)  # text: `table_html` escapes it


def _figure_uri(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=80, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _file_uri(path):
    with open(path, "rb") as file:
        return "data:image/png;base64," + base64.b64encode(file.read()).decode()
