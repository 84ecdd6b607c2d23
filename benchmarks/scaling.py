"""Training examples/s of one recipe on one device, mirrored, and on several workers.

Each setting is the recipe's own command line on the same synthetic reviews, the
same global batch and the same epochs, in fresh processes (logical devices and
multi-worker collectives must be set up before TensorFlow starts):

- default: one process, the default strategy;
- mirrored: one process, MirroredStrategy over `--logical-cpus N`;
- workers: `python -m tfkit launch --workers N`, MultiWorkerMirroredStrategy over
  gRPC on 127.0.0.1.

The settings take turns, round after round, and each reports its best epoch after
the first (which includes tracing), from the run's `history.csv`. On one CPU no
speed-up is expected: the replicas share the same cores and pay for the all-reduce.
These figures show what distribution costs, not what it gains; on several GPUs or
machines each replica brings its own hardware. Prints one JSON line per setting.

    python benchmarks/scaling.py [--recipe imdb_conv1d] [--replicas 2] [--rounds 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings(replicas):
    """{setting: (launcher prefix, strategy flags)}."""
    launch = [sys.executable, "-m", "tfkit", "launch", "--workers", str(replicas), "--"]
    return {
        "default": ([], ["--strategy", "default"]),
        "mirrored": ([], ["--strategy", "mirrored", "--logical-cpus", str(replicas)]),
        "workers": (launch, ["--strategy", "multi_worker"]),
    }


def run_once(recipe, prefix, strategy_flags, args, run_dir):
    """Runs the recipe once; returns (best examples/s after the first epoch, metrics.json)."""
    command = [
        *prefix, sys.executable, "-m", f"recipes.{recipe}",
        "--data", "synthetic", "--max-examples", str(args.examples),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--early-stopping-patience", "99", "--no-export", "--run-dir", run_dir,
        # XLA is off under any strategy; off everywhere compares like with like.
        "--jit-compile", "off",
        *strategy_flags,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    history = pd.read_csv(os.path.join(run_dir, "history.csv"))
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)
    return float(history["examples_per_second"].iloc[1:].max()), metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="imdb_conv1d", help="imdb_conv1d or imdb_rnn")
    parser.add_argument("--replicas", type=int, default=2, help="logical CPUs / workers")
    parser.add_argument("--rounds", type=int, default=2, help="turns each setting takes")
    parser.add_argument("--examples", type=int, default=2560, help="synthetic reviews")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    args = parser.parse_args()

    best, metrics = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, (prefix, flags) in settings(args.replicas).items():
                run_dir = os.path.join(folder, f"{name}-{round_}")
                speed, metrics[name] = run_once(args.recipe, prefix, flags, args, run_dir)
                best[name] = max(best.get(name, 0.0), speed)
    for name, speed in best.items():
        print(
            json.dumps(
                {
                    "recipe": args.recipe,
                    "setting": name,
                    "replicas": metrics[name]["replicas"],
                    "global_batch": args.batch_size,
                    "mixed_precision": metrics[name]["mixed_precision"],
                    "examples_per_second": round(speed, 1),
                    "vs_default": round(speed / best["default"], 3),
                    "cpus": os.cpu_count(),
                }
            )
        )


if __name__ == "__main__":
    main()
