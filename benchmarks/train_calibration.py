"""`python -m tfkit train` beside scikit-learn and beside the recipes' defaults, on real corpora.

The corpora are built from what any Debian machine with this project's environment holds
(no network), each with one seeded, stratified 20% test split written once, so that every
system below learns from the same training rows and is scored on the same test rows:

- `debian-20`: the one-line descriptions of Debian 12's packages (one package per source
  package, so that a library and its -dev twin do not straddle the split), labelled by
  their archive section; the 20 largest sections, at most 800 packages each. Short texts
  (about 7 words), many classes.
- `debian-4-small`: 150 packages from each of games, sound, science and admin: a small
  corpus of short texts.
- `docstrings-6`: the docstrings of numpy, pandas, matplotlib, scipy, scikit-learn and
  Keras (the installed packages' sources, read with `ast`), at most 600 each, labelled
  by their package. Longer texts (up to 200 words), written by many people.
- `digits`: scikit-learn's 1,797 handwritten digits (UCI, 8x8 grey) as PNG class folders.

Systems, one JSON line each (`corpus`, `system`, `test_accuracy`, `seconds`, ...):
- `sklearn`: texts: TF-IDF of word 1-2-grams (min_df=2, sublinear tf) + logistic
  regression (C=10); pictures: logistic regression on the pixels;
- `recipe:<name>`: each recipe that reads the data, with its default flags;
- `train:<budget>`: `python -m tfkit train` at each of `--budgets`, its pick and wall time.

    pip install scikit-learn  # the reference, and the digits; not a dependency of tfkit
    python benchmarks/train_calibration.py [--work DIR] [--corpora debian-4-small,digits]
        [--budgets 90s,10m]
"""

import argparse
import ast
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES_LIST = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
TEST_SHARE, SEED = 0.2, 1337
TEXT_RECIPES = ("text_ngrams", "imdb_conv1d")
PICTURE_RECIPES = ("pixels_linear", "cifar10_resnet")


def debian_packages():
    """(description, section) of one binary package per source package of Debian 12."""
    listing = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", PACKAGES_LIST],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows, sources = [], set()
    for block in listing.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(" "))  # fmt: skip
        source = fields.get("Source", fields.get("Package", "")).split(" ")[0]
        if source and source not in sources and "Section" in fields:
            sources.add(source)
            rows.append((fields["Description"], fields["Section"]))
    return pd.DataFrame(rows, columns=["text", "label"])


def docstrings(packages=("numpy", "pandas", "matplotlib", "scipy", "sklearn", "keras")):
    """(docstring, package) of the installed packages' functions and classes, tests left out."""
    import importlib.util

    rows = []
    for package in packages:
        root = os.path.dirname(importlib.util.find_spec(package).origin)
        seen = set()
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(s for s in subfolders if "test" not in s)
            for name in sorted(n for n in names if n.endswith(".py")):
                try:
                    with open(os.path.join(folder, name), encoding="utf-8") as file:
                        tree = ast.parse(file.read())
                except (SyntaxError, UnicodeDecodeError, ValueError):
                    continue
                for node in ast.walk(tree):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        words = (ast.get_docstring(node) or "").split()[:200]
                        text = " ".join(words)
                        if len(words) >= 8 and text not in seen:
                            seen.add(text)
                            rows.append((text, package))
    return pd.DataFrame(rows, columns=["text", "label"])


def capped(frame, classes, per_class):
    """At most `per_class` rows of each of `classes`, drawn with the seed."""
    frame = frame[frame["label"].isin(classes)]
    parts = [rows.sample(min(len(rows), per_class), random_state=SEED)
             for _, rows in frame.groupby("label")]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def split(frame):
    """A stratified, seeded `TEST_SHARE` of the rows as test; the rest as train."""
    from sklearn.model_selection import train_test_split

    return train_test_split(frame, test_size=TEST_SHARE, stratify=frame["label"], random_state=SEED)


def build_corpora(work, names):
    """Writes each corpus of `names` under `work` once; returns {name: (kind, folder)}."""
    built = {}
    packages = None
    for name in names:
        folder = os.path.join(work, name)
        kind = "pictures" if name == "digits" else "texts"
        built[name] = (kind, folder)
        if os.path.isdir(folder):
            continue
        os.makedirs(folder + ".tmp", exist_ok=True)
        if name == "digits":
            write_digits(folder + ".tmp")
        else:
            if name.startswith("debian"):
                packages = debian_packages() if packages is None else packages
                if name == "debian-20":
                    classes = packages["label"].value_counts().index[:20]
                    frame = capped(packages, classes, 800)
                else:
                    frame = capped(packages, ["games", "sound", "science", "admin"], 150)
            else:
                frame = docstrings()
                frame = capped(frame, frame["label"].unique(), 600)
            train, test = split(frame)
            train.to_csv(os.path.join(folder + ".tmp", "train.csv"), index=False)
            test.to_csv(os.path.join(folder + ".tmp", "test.csv"), index=False)
        os.rename(folder + ".tmp", folder)
    return built


def write_digits(folder):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame({"index": np.arange(len(digits.target)), "label": digits.target})
    train, test = split(frame)
    for part, rows in (("train", train), ("test", test)):
        for index, label in rows.itertuples(index=False):
            pixels = (digits.images[index] * (255 / 16)).round().astype("uint8")
            path = os.path.join(folder, part, str(label), f"{index}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(pixels, mode="L").save(path)


def text_reference():
    """scikit-learn's TF-IDF of word 1-2-grams (min_df=2, sublinear tf) + logistic regression (C=10)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(C=10, max_iter=2000))  # fmt: skip


def sklearn_accuracy(kind, folder):
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    if kind == "texts":
        train, test = (pd.read_csv(os.path.join(folder, f"{p}.csv")) for p in ("train", "test"))
        model = text_reference()
        model.fit(train["text"], train["label"].astype(str))
        accuracy = model.score(test["text"], test["label"].astype(str))
    else:
        from PIL import Image

        def read(part):
            files = [(os.path.join(root, n), os.path.basename(root))
                     for root, _, names in os.walk(os.path.join(folder, part)) for n in names]  # fmt: skip
            return (np.stack([np.asarray(Image.open(f), "float32").ravel() / 255 for f, _ in files]),
                    [label for _, label in files])  # fmt: skip

        (x, y), (x_test, y_test) = read("train"), read("test")
        accuracy = LogisticRegression(max_iter=5000).fit(x, y).score(x_test, y_test)
    return accuracy, time.perf_counter() - start


def run(command, log):
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return result.returncode, time.perf_counter() - start


def recipe_accuracy(recipe, kind, folder, work):
    run_dir = os.path.join(work, "runs", f"{os.path.basename(folder)}-{recipe}")
    data = ["--data", "images"] if kind == "pictures" else ["--data", "csv"]
    command = [sys.executable, "-m", f"recipes.{recipe}", *data, "--data-dir", folder,
               "--run-dir", run_dir, "--export-dir", run_dir + "-export", "--verbose", "2"]  # fmt: skip
    code, seconds = run(command, run_dir + ".log")
    if code:
        return None, seconds
    with open(os.path.join(run_dir, "metrics.json")) as file:
        return json.load(file)["test"]["accuracy"], seconds


def train_result(folder, budget, work):
    run_dir = os.path.join(work, "runs", f"{os.path.basename(folder)}-train-{budget}")
    command = [sys.executable, "-m", "tfkit", "train", folder, "--time-budget", budget,
               "--run-dir", run_dir, "--export-dir", run_dir + "-export"]  # fmt: skip
    code, seconds = run(command, run_dir + ".log")
    if code:
        return {"test_accuracy": None, "seconds": round(seconds, 1), "exit": code}
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)
    return {"test_accuracy": metrics["test"]["accuracy"], "seconds": round(seconds, 1),
            "pick": metrics["pick"]["candidate"], "refit": metrics["pick"]["refit"],
            "baseline_accuracy": (metrics["baseline"] or {}).get("accuracy"),
            "mcnemar_p": metrics["mcnemar_p"],
            "finished": [r["candidate"] for r in metrics["leaderboard"] if r["outcome"] == "finish"]}  # fmt: skip


def describe(kind, folder):
    if kind == "pictures":
        count = sum(len(n) for _, _, n in os.walk(os.path.join(folder, "train")))
        return {"rows": count, "classes": len(os.listdir(os.path.join(folder, "train")))}
    train = pd.read_csv(os.path.join(folder, "train.csv"))
    return {"rows": len(train), "classes": int(train["label"].nunique()),
            "mean_words": round(float(train["text"].str.split().str.len().mean()), 1)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/tfkit-calibration")
    parser.add_argument("--corpora", default="debian-4-small,docstrings-6,debian-20,digits")
    parser.add_argument("--budgets", default="90s,10m")
    parser.add_argument("--systems", default="sklearn,recipes,train")
    args = parser.parse_args()
    systems = args.systems.split(",")
    os.makedirs(os.path.join(args.work, "runs"), exist_ok=True)
    for name, (kind, folder) in build_corpora(args.work, args.corpora.split(",")).items():
        about = {"corpus": name, "kind": kind, **describe(kind, folder)}
        if "sklearn" in systems:
            accuracy, seconds = sklearn_accuracy(kind, folder)
            print(json.dumps({**about, "system": "sklearn", "test_accuracy": round(accuracy, 4),
                              "seconds": round(seconds, 1)}), flush=True)  # fmt: skip
        if "recipes" in systems:
            for recipe in TEXT_RECIPES if kind == "texts" else PICTURE_RECIPES:
                accuracy, seconds = recipe_accuracy(recipe, kind, folder, args.work)
                print(json.dumps({**about, "system": f"recipe:{recipe}", "test_accuracy": accuracy,
                                  "seconds": round(seconds, 1)}), flush=True)  # fmt: skip
        if "train" in systems:
            for budget in args.budgets.split(","):
                result = train_result(folder, budget, args.work)
                print(json.dumps({**about, "system": f"train:{budget}", **result}), flush=True)


if __name__ == "__main__":
    main()
