"""`python -m tfkit train DATA`: from a table or a folder to a served model, within a time budget.

1. Read DATA and say what it holds: texts or pictures, the label and text columns, the
   rows, the classes; a test split given, or a fifth held out (stratified, seeded).
2. Train a ladder of candidates, cheapest first, each an ordinary recipe run in
   RUN_DIR/candidates/<name>/: the linear baseline first, exported at once, so a
   served model exists within seconds; then the recipes the data calls for. A
   candidate clearly behind the leader is stopped.
3. Pick on validation (never on test) the cheapest candidate within one standard error
   of the best score, refit it on all the training data
   (train + validation) for the epochs validation chose, when the budget allows, and
   export it as the newest version in --export-dir.
4. Write metrics.json, leaderboard.csv and report.html; every decision is a line of
   journal.jsonl. Killed, the same command continues where it was; finished, it says so.
"""

from tfkit.config import MAX_PIXELS

METRICS = ("accuracy", "macro-F1")


def add_arguments(parser):
    """The flags of `python -m tfkit train` (one place: `tfkit/__main__.py` calls this)."""
    parser.add_argument("data", metavar="DATA", help="a table (.csv .tsv .jsonl .parquet), a "
                        "folder of train.* and test.* tables, or a folder of class folders "
                        "(texts or pictures), with or without train/ and test/")  # fmt: skip
    parser.add_argument("--time-budget", default="10m", help="the whole command's time, e.g. "
                        "90s, 10m, 1h: the candidates share it, a refit and the export included")  # fmt: skip
    parser.add_argument("--run-dir", default=None, help="where the journal, the candidates' runs "
                        "and the report go; default runs/train/<DATA's name>")  # fmt: skip
    parser.add_argument("--export-dir", default=None, help="the TF Serving base path the "
                        "model is exported to; default saved_models/<DATA's name>")  # fmt: skip
    parser.add_argument("--text", default=None, metavar="COL[,COL]", help="the column(s) "
                        "of the texts, joined in this order; default: the columns of long strings")  # fmt: skip
    parser.add_argument("--label", default=None, metavar="COL", help="the column of the "
                        "labels; default: one named label/target/class/category..., else the "
                        "one column with few distinct values")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1337, help="the splits, the order, the weights")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N", help="pictures: "
                        "leave out one whose header declares more pixels (Pillow's limit); the "
                        "exported model refuses them too")  # fmt: skip
    parser.add_argument("--deterministic", action="store_true", help="deterministic ops: a run "
                        "killed and continued ends as one never stopped (when the budget did not bind)")  # fmt: skip
    parser.add_argument("--metric", default="accuracy", choices=METRICS, help="what the pick "
                        "maximises on validation: accuracy, the default, as most comparisons "
                        "report it; macro-F1 when a small class matters as much as a large one")  # fmt: skip
