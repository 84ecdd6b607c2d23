"""The imbalance options side by side on a 10:1 corpus: what each does to test AUC and recall.

Writes a held-out aclImdb/ folder of synthetic reviews, ten negatives to each positive
in both splits, with most cue words blanked out (`--keep-cues`) so that the classes
overlap as real reviews do, then runs the recipe's own command once per option with
the default epochs. The first row, no option, is the document's script on this data.
Prints one JSON line per option.

    python benchmarks/imbalance.py [--recipe imdb_conv1d] [--train 11000] [--test 5500]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfkit.data.imdb import synthetic_reviews  # noqa: E402

OPTIONS = {
    "none": [],
    "class-weight balanced": ["--class-weight", "balanced"],
    "oversample": ["--oversample"],
    "undersample": ["--undersample"],
    "initial-bias auto": ["--initial-bias", "auto"],
    "class-weight balanced + initial-bias auto": [
        "--class-weight", "balanced", "--initial-bias", "auto",
    ],
    "oversample + initial-bias auto": ["--oversample", "--initial-bias", "auto"],
}  # fmt: skip
CUE = re.compile(rb"\b(good|bad)\d+\b")


def write_corpus(root, train, test, negatives_per_positive, keep_cues, seed):
    """An aclImdb/ tree with `negatives_per_positive`:1 classes; returns its path."""
    texts, labels = synthetic_reviews(3 * (train + test), seed)
    rng = np.random.default_rng(seed)
    unused = np.ones(len(labels), bool)
    for split, size in (("train", train), ("test", test)):
        positives = round(size / (negatives_per_positive + 1))
        chosen = np.concatenate(
            [
                np.flatnonzero((labels == 1) & unused)[:positives],
                np.flatnonzero((labels == 0) & unused)[: size - positives],
            ]
        )
        unused[chosen] = False
        for number, index in enumerate(chosen):
            folder = os.path.join(root, "aclImdb", split, "pos" if labels[index] else "neg")
            os.makedirs(folder, exist_ok=True)
            text = CUE.sub(lambda cue: cue[0] if rng.random() < keep_cues else b"w1", texts[index])
            with open(os.path.join(folder, f"{number}_0.txt"), "wb") as file:
                file.write(text)
    return os.path.join(root, "aclImdb")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="imdb_conv1d")
    parser.add_argument("--train", type=int, default=11_000, help="training reviews")
    parser.add_argument("--test", type=int, default=5_500, help="test reviews")
    parser.add_argument("--ratio", type=int, default=10, help="negatives per positive")
    parser.add_argument("--keep-cues", type=float, default=0.25, help="share of cue words kept")
    parser.add_argument("--options", default=",".join(OPTIONS), help="comma-separated names")
    parser.add_argument("--flags", default="", help="more flags for every run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = write_corpus(folder, args.train, args.test, args.ratio, args.keep_cues, seed=7)
        for name in args.options.split(","):
            run_dir = os.path.join(folder, name.replace(" ", "_"))
            command = [
                sys.executable, "-m", f"recipes.{args.recipe}",
                "--data", "dir", "--data-dir", data, "--run-dir", run_dir, "--no-export",
                *OPTIONS[name], *args.flags.split(),
            ]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
            seconds = time.perf_counter() - start
            with open(os.path.join(run_dir, "metrics.json")) as file:
                metrics = json.load(file)
            test = metrics["test"]
            record = {
                "recipe": args.recipe,
                "option": name,
                **{key: round(test[key], 3) for key in ("auc", "pr_auc", "recall", "precision")},
                "accuracy": round(test["accuracy"], 4),
                "fit": metrics["diagnosis"]["fit"],
                "epochs": sum(1 for _ in open(os.path.join(run_dir, "history.csv"))) - 1,
                "seconds": round(seconds),
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
