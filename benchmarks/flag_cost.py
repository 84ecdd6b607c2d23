"""What a flag costs: training examples/s of a recipe with and without it.

Both settings are the recipe's own command line on the same synthetic reviews, the
same batch and epochs, one device, XLA off (as `benchmarks/scaling.py` runs them);
they take turns, round after round, and each reports its best epoch after the first.
Prints one JSON line per setting.

    python benchmarks/flag_cost.py [--flags=--deterministic] [--recipe imdb_conv1d] [--cell lstm]
    python benchmarks/flag_cost.py --baseline="--grad-norm-every 0" --flags=""   # gradient health
"""

import argparse
import json
import os
import tempfile

from scaling import run_once


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="imdb_conv1d", help="imdb_conv1d or imdb_rnn")
    parser.add_argument("--cell", default=None, help="imdb_rnn's --cell")
    parser.add_argument("--rounds", type=int, default=2, help="turns each setting takes")
    parser.add_argument("--examples", type=int, default=2560, help="synthetic reviews")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--baseline", default="", help="the flags measured against")
    parser.add_argument("--flags", default="--deterministic", help="the flags measured")
    args = parser.parse_args()

    common = ["--strategy", "default"] + (["--cell", args.cell] if args.cell else [])
    settings = {
        args.baseline or "default": common + args.baseline.split(),
        args.flags or "default": common + args.flags.split(),
    }
    baseline = args.baseline or "default"
    best, metrics = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, flags in settings.items():
                run_dir = os.path.join(folder, f"{name}-{round_}")
                speed, metrics[name] = run_once(args.recipe, [], flags, args, run_dir)
                best[name] = max(best.get(name, 0.0), speed)
    for name, speed in best.items():
        record = {
            "recipe": args.recipe + (f" --cell {args.cell}" if args.cell else ""),
            "setting": name,
            "mixed_precision": metrics[name]["mixed_precision"],
            "examples_per_second": round(speed, 1),
            "vs_baseline": round(speed / best[baseline], 3),
            "test_accuracy": round(metrics[name]["test"]["accuracy"], 4),
        }
        print(json.dumps(record))


if __name__ == "__main__":
    main()
