"""A few thousand short texts: `text_ngrams`'s whole command, where its time goes, and scikit-learn.

The users who bring 2,000-5,000 short texts compare with scikit-learn's TF-IDF + logistic
regression, which fits in a second. This times, on one table:

1. the whole command a user types (`python -m recipes.text_ngrams --data csv ...`, its
   baseline included), start to exit, best of `--rounds`;
2. where the time goes, in one more run of the recipe's `main()` in a child process with
   its steps timed (a step called inside another, as the baseline's `fit`, counted in the outer one): Python and
   TensorFlow's import, reading and vectorising the table, the baseline, building and
   training the model (`fit`), evaluation, export, and the run record and report;
3. scikit-learn on the same table (when installed): TF-IDF of word 1-2-grams and
   logistic regression, fit and test accuracy on the same 20% test split's size.

The table: `--table` (a CSV with `text` and `label`), else `--rows` one-line descriptions
of Debian's packages labelled by section (`benchmarks/train_calibration.py`), else as many
synthetic reviews cut to 12 words. Prints one JSON line per part.

    python benchmarks/small_data.py [--table my.csv] [--rows 4000] [--rounds 2]
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

STARTED = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The recipe's steps, timed by `child`: (module, function, name in the breakdown).
STEPS = [
    ("recipes.text_ngrams", "load_data", "reading and vectorising"),
    ("tfkit.modes", "train_baseline", "baseline"),
    ("keras.Model", "fit", "training"),
    ("recipes.text_ngrams", "evaluate_classifier", "evaluation"),
    ("recipes.text_ngrams", "export_text_classifier", "export"),
    ("recipes.text_ngrams", "finish_run", "run record and report"),
]


def make_table(path, rows):
    """A table of `rows` short texts: Debian's package descriptions, else short reviews."""
    import pandas as pd

    try:
        from train_calibration import debian_packages

        table = debian_packages()
        sections = table["label"].value_counts().index[:20]
        table = table[table["label"].isin(sections)]
        source = "Debian 12 package descriptions, 20 sections"
    except (OSError, subprocess.CalledProcessError):
        from tfkit.data.imdb import synthetic_reviews

        texts, labels = synthetic_reviews(rows, seed=0)
        table = pd.DataFrame({"text": [" ".join(t.split()[:12]) for t in texts], "label": labels})
        source = "synthetic reviews cut to 12 words"
    table = table.sample(min(rows, len(table)), random_state=0)
    table.to_csv(path, index=False)
    return source, len(table)


def recipe_command(table, folder):
    return [sys.executable, "-m", "recipes.text_ngrams", "--data", "csv", "--data-dir", table,
            "--text-column", "text", "--label-column", "label", "--run-dir",
            os.path.join(folder, "run"), "--export-dir", os.path.join(folder, "export"),
            "--verbose", "2"]  # fmt: skip


def whole_command(table, rounds):
    """Seconds of the whole command, start to exit, best of `rounds` (a new run folder each)."""
    seconds = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            subprocess.run(recipe_command(table, folder), cwd=ROOT, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
    return seconds


def child(table):
    """Runs the recipe's main() with its steps timed; prints the breakdown as JSON."""
    import importlib

    import tfkit.quiet  # noqa: F401
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    from recipes import text_ngrams

    own = {"import": time.perf_counter() - STARTED}
    running = []  # the step running: one called inside another (the baseline's fit) is its

    def timed(function, name):
        @functools.wraps(function)
        def run(*args, **kwargs):
            if running:
                return function(*args, **kwargs)
            running.append(name)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                running.pop()
                own[name] = own.get(name, 0.0) + time.perf_counter() - start

        return run

    for module_name, attribute, name in STEPS:
        if module_name == "keras.Model":
            owner = keras.Model
        else:
            owner = importlib.import_module(module_name)
        setattr(owner, attribute, timed(getattr(owner, attribute), name))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        text_ngrams.main(recipe_command(table, folder)[3:])
        total = time.perf_counter() - start
    own["other (flags, run folder, summaries)"] = total - sum(v for k, v in own.items() if k != "import")
    print(json.dumps({k: round(v, 2) for k, v in own.items()}))


def sklearn_result(table):
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return None
    import pandas as pd
    from train_calibration import text_reference

    frame = pd.read_csv(table)
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=0)
    start = time.perf_counter()
    model = text_reference()
    model.fit(train["text"], train["label"].astype(str))
    accuracy = model.score(test["text"], test["label"].astype(str))
    return {"seconds": round(time.perf_counter() - start, 2), "test_accuracy": round(accuracy, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", help="a CSV with text and label columns")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    folder = tempfile.mkdtemp(prefix="small_data-")
    table, source = args.table, args.table
    if table is None:
        table = os.path.join(folder, "table.csv")
        source, _ = make_table(table, args.rows)
    import pandas as pd

    rows = len(pd.read_csv(table))
    about = {"table": source, "rows": rows}
    seconds = whole_command(table, args.rounds)
    print(json.dumps({**about, "part": "whole command", "seconds": [round(s, 1) for s in seconds],
                      "best": round(min(seconds), 1)}), flush=True)  # fmt: skip
    breakdown = subprocess.run([sys.executable, __file__, "--child", table], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    print(json.dumps({**about, "part": "where the time goes (seconds)",
                      **json.loads(breakdown.strip().splitlines()[-1])}), flush=True)  # fmt: skip
    reference = sklearn_result(table)
    if reference:
        print(json.dumps({**about, "part": "scikit-learn TF-IDF + logistic regression", **reference}))


if __name__ == "__main__":
    main()
