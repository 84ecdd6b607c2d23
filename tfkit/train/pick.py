"""The pick: the leaderboard of the candidates, and the one chosen, on validation only.

A candidate's scores are what its recipe wrote to `metrics.json` (`val` and `test`,
from the weights of its best epoch). The pick is the cheapest finished candidate (the
earliest in the ladder) whose validation score under `--metric` is within one standard
error of the best one's: the one-standard-error rule (Breiman et al. 1984; Hastie,
Tibshirani and Friedman, ESL 7.10), since a lead smaller than that is what another draw of
the validation examples could reverse. The test scores are shown beside, never used for
a decision.
"""

import json
import math
import os

import pandas as pd

# --metric -> the key of that score in a recipe's metrics.json (`val`, `test`).
SCORE_KEYS = {"accuracy": "accuracy", "macro-F1": "macro_f1"}
# ...and the column of history.csv the stopping rule reads while a candidate trains.
HISTORY_KEYS = {"accuracy": "accuracy", "macro-F1": "f1"}


def candidate_scores(run_dir):
    """`{"val": {...}, "test": {...}, "best_epoch": e}` from a finished candidate's folder."""
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)
    history = pd.read_csv(os.path.join(run_dir, "history.csv"))
    monitor = "val_loss" if "val_loss" in history else "loss"
    keep = ("accuracy", "macro_f1", "loss")
    return {
        "val": {k: v for k, v in (metrics.get("val") or {}).items() if k in keep},
        "test": {k: v for k, v in (metrics.get("test") or {}).items() if k in keep},
        "best_epoch": int(history[monitor].idxmin()),  # the epoch whose weights were kept
        "epochs": len(history),
        "train_seconds": float(history["epoch_seconds"].sum()) if "epoch_seconds" in history else None,
    }


def standard_error(score, examples):
    """The standard error of a score on `examples` examples, as a binomial proportion's
    (exact for accuracy; a macro-F1 is taken alike)."""
    return math.sqrt(max(score * (1 - score), 1e-4) / max(examples, 1))


def best(finished, metric):
    """The name of the best of `finished` ({name: finish line}, in ladder order) on
    validation; a tie goes to the cheaper one."""
    key = SCORE_KEYS[metric]
    scored = [(name, line["val"][key]) for name, line in finished.items() if line["val"].get(key) is not None]
    return max(scored, key=lambda pair: pair[1])[0] if scored else None


def pick(finished, metric, val_examples):
    """`(name, why)`: the cheapest of `finished` (ladder order) within one standard error
    of the best validation score on `val_examples` examples."""
    key = SCORE_KEYS[metric]
    leader = best(finished, metric)
    if leader is None:
        return None, "no finished candidate has a validation score"
    top = finished[leader]["val"][key]
    error = standard_error(top, val_examples)
    scores = ", ".join(f"{name} {line['val'].get(key, float('nan')):.4f}" for name, line in finished.items())
    chosen = next(name for name, line in finished.items()
                  if line["val"].get(key) is not None and line["val"][key] >= top - error)  # fmt: skip
    if chosen == leader:
        return chosen, f"the best validation {metric} of the finished candidates ({scores})"
    return chosen, (f"the cheapest within one standard error ({error:.4f}, {val_examples:,} validation "
                    f"examples) of the best validation {metric}, {leader}'s {top:.4f} ({scores})")


def leaderboard(plan_lines, outcomes, metric):
    """One row per candidate of the plan: its flags, scores, epochs, seconds and outcome."""
    rows = []
    for candidate in plan_lines:
        line = outcomes.get(candidate["candidate"], {})
        row = {
            "candidate": candidate["candidate"],
            "recipe": candidate["recipe"],
            "flags": " ".join(candidate["flags"]),
            "outcome": line.get("event", "not run"),
            f"val_{SCORE_KEYS[metric]}": line.get("val", {}).get(SCORE_KEYS[metric]),
            f"test_{SCORE_KEYS[metric]}": line.get("test", {}).get(SCORE_KEYS[metric]),
            "epochs": line.get("epochs"),
            "seconds": line.get("seconds"),
            "why": line.get("reason", ""),
        }
        rows.append(row)
    # Object columns: epochs stay whole numbers, and a candidate not run has None (JSON null).
    return pd.DataFrame(rows, dtype=object)


def served_comparison(pick_export, baseline_export, test_input, folder):
    """The pick against the baseline on the test split, from their served labels.

    Each export labels `test_input` (the test table, or the test folder of class
    folders of pictures) as `python -m tfkit predict` would
    (`predictions/<pick|baseline>.jsonl`); McNemar's exact test pairs the answers.

    Returns:
        `{"b", "c", "p", "pick_accuracy", "baseline_accuracy"}`: b counts the test
        examples only the pick gets right, c those only the baseline gets right.
    """
    import tfkit.quiet  # noqa: F401  (first: TensorFlow's start-up lines hidden)
    from tfkit.diagnostics.verdict import mcnemar_p
    from tfkit.predict import predict
    from tfkit.tables import read_table

    right = {}
    for name, export in (("pick", pick_export), ("baseline", baseline_export)):
        out = os.path.join(folder, f"{name}.jsonl")
        predict(export, test_input, out, "text", 256)
        served = read_table(out)
        if os.path.isdir(test_input):  # pictures: the class is the path's first folder
            key = served["path"].astype(str)
            truth = key.str.split("/", n=1).str[0]
        else:
            key = served.index.to_series()
            truth = read_table(test_input)["label"].astype(str)
        right[name] = pd.Series((served["predicted_label"].astype(str) == truth).to_numpy(), key)
    # Pictures neither could decode are in neither table; pair the others by file.
    pick_right, baseline_right = right["pick"].align(right["baseline"], join="inner")
    pick_right, baseline_right = pick_right.to_numpy(), baseline_right.to_numpy()
    b = int((pick_right & ~baseline_right).sum())
    c = int((~pick_right & baseline_right).sum())
    return {"b": b, "c": c, "p": mcnemar_p(b, c),
            "pick_accuracy": float(pick_right.mean()),
            "baseline_accuracy": float(baseline_right.mean())}  # fmt: skip
