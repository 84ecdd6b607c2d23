"""The procedure of `python -m tfkit train`, step by step (see `tfkit.train`)."""

import dataclasses
import functools
import hashlib
import json
import math
import os
import shlex
import shutil
import sys

from tfkit.errors import RunStateError, UsageError, WriteFailed
from tfkit.files import FolderLock, publish_folder, temporary_folder, write_json
from tfkit.tables import write_table
from tfkit.train.budget import Clock, describe, parse_duration
from tfkit.train.candidates import Outcome, behind, read_history, run_candidate
from tfkit.train.journal import Journal
from tfkit.train.pick import (
    HISTORY_KEYS,
    SCORE_KEYS,
    candidate_scores,
    best,
    leaderboard,
    pick,
    served_comparison,
)
from tfkit.train.plan import VALIDATION_SHARE, plan
from tfkit.train.reading import read_data


class TrainFailed(RuntimeError):
    """No candidate finished: nothing to pick or export (exit status 1)."""


# What a candidate needs besides its training: Python and TensorFlow starting, reading
# the data, evaluating and exporting. Measured on the first candidate; this until then.
FIRST_OVERHEAD = 25.0
# Seconds kept back at the end for the export, the predictions and the report (10 s
# measured on 240 texts: TensorFlow imported, two exports loaded, five reports drawn).
FINAL_RESERVE = 15.0
# A candidate is started only with at least this many seconds of training ahead.
MIN_TRAINING = 10.0
TRAIN_FILE = "train.json"
# Written into each version it exports (TF Serving reads assets.extra/ as extra files).
ORIGIN_FILE = os.path.join("assets.extra", "tfkit_train.json")


def main(args):
    """Runs the whole procedure for parsed `args`; returns the exit status."""
    try:
        seconds = parse_duration(args.time_budget)
    except ValueError as error:
        raise UsageError(f"--time-budget: {error}") from None
    if seconds <= 0:
        raise UsageError(f"--time-budget must be more than 0; got {args.time_budget}")
    if not 1 <= args.max_pixels < 2**63:
        raise UsageError(f"--max-pixels must be from 1 to 2**63 - 1; got {args.max_pixels}")
    name = _data_name(args.data)
    run_dir = args.run_dir or os.path.join("runs", "train", name)
    export_dir = args.export_dir or os.path.join("saved_models", name)
    record = {
        "data": os.path.realpath(args.data), "text": args.text, "label": args.label,
        "seed": args.seed, "deterministic": args.deterministic, "metric": args.metric,
        "max_pixels": args.max_pixels,
        "time_budget_seconds": seconds, "data_files": _fingerprint(args.data),
        "export_dir": os.path.realpath(export_dir),
    }  # fmt: skip
    for flag, folder in (("--run-dir", run_dir), ("--export-dir", export_dir)):
        _check_writable(flag, folder)
    journal = _finished_or_resumed(run_dir, record)
    clock = Clock(run_dir, seconds, journal.events if journal else ())  # reads; writes later

    # 1. The data: read and said before anything is written.
    reading = read_data(args.data, args.text, args.label, args.seed, args.max_pixels)
    for line in reading.lines:
        print(line)
    lock = FolderLock(run_dir).acquire()
    try:
        return _train(args, record, reading, run_dir, export_dir, clock, journal)
    finally:
        if os.path.exists(os.path.join(run_dir, TRAIN_FILE)):
            clock.tick(force=True)  # stopped or failed: what it spent counts on the next run
        lock.release()


def _train(args, record, reading, run_dir, export_dir, clock, journal):
    write_json(os.path.join(run_dir, TRAIN_FILE), record)
    seconds = clock.budget
    journal = journal or Journal(run_dir)
    journal.clock = clock
    print(f"run folder: {run_dir}; time budget {describe(seconds)}, "
          f"{describe(max(clock.left(), 0))} left")  # fmt: skip
    data_dir = os.path.join(run_dir, "data")
    if not journal.last("split"):
        journal.write("read", kind=reading.kind, path=record["data"], layout=reading.layout,
                      label=reading.label_column, text=list(reading.text_columns),
                      classes=list(reading.class_names), class_counts=reading.class_counts,
                      dropped=reading.dropped, lines=reading.lines)  # fmt: skip
        _write_data(reading, data_dir)
        journal.write("split", train=len(reading.train), test=len(reading.test),
                      test_given=reading.test_given, seed=args.seed,
                      validation="20% of train, stratified, seeded (each recipe's own split)")  # fmt: skip
    candidates, skipped = plan(reading)
    if not journal.last("plan"):
        journal.write("plan", candidates=[_plan_line(c) for c in candidates],
                      skipped=[{"candidate": n, "reason": why} for n, why in skipped])  # fmt: skip
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    data = (["--data", "images", "--data-dir", data_dir, "--max-pixels", str(args.max_pixels)]
            if reading.kind == "pictures" else
            ["--data", "csv", "--data-dir", data_dir, "--text-column", "text", "--label-column", "label"])  # fmt: skip
    common = [
        *data, "--seed", str(args.seed), "--no-baseline",
        # Keras's bar (it redraws through a pipe) on a terminal, a line an epoch in a log.
        "--verbose", "1" if sys.stdout.isatty() else "2",
        *(["--deterministic"] if args.deterministic else []),
    ]  # fmt: skip
    for number, candidate in enumerate(candidates, start=1):
        overhead = _overhead(journal, candidate.recipe)
        outcome = journal.outcome(candidate.name)
        if outcome:
            print(f"[{number}/{len(candidates)}] {candidate.name}: {outcome['event']} before "
                  f"({outcome.get('reason') or 'see journal.jsonl'})")  # fmt: skip
            continue
        folder = os.path.join(run_dir, "candidates", candidate.name)
        reserve = FINAL_RESERVE + _refit_estimate(journal, _leader(journal, args.metric))
        training = clock.left() - reserve - overhead
        baseline = number == 1  # always trained: without it there is nothing to serve
        if training < MIN_TRAINING and not baseline:
            journal.write("stop", candidate=candidate.name, reason=(
                f"not started: {describe(max(clock.left(), 0))} left, {overhead:.0f} s for "
                f"starting and exporting and {reserve:.0f} s kept for the refit and export"))  # fmt: skip
            print(f"[{number}/{len(candidates)}] {candidate.name}: no time left; not started")
            continue
        flags = [*common, "--run-dir", folder, "--export-dir", os.path.join(run_dir, "exports", candidate.name)]
        command = candidate.command(flags)
        if not journal.last("start", candidate.name):
            journal.write("start", candidate=candidate.name, recipe=candidate.recipe,
                          flags=candidate.flags, reason=candidate.reason,
                          command=_shown(command))  # fmt: skip
        print(f"[{number}/{len(candidates)}] {candidate.name}: {candidate.reason}; "
              f"{describe(clock.left())} left")  # fmt: skip
        leader = _leader(journal, args.metric)
        judge = None
        if leader:
            judge = functools.partial(
                behind,
                leader_history=read_history(os.path.join(run_dir, "candidates", leader)),
                metric=HISTORY_KEYS[args.metric],
                val_examples=_val_examples(reading),
            )

        time_limit = ["--time-limit", f"{max(training, MIN_TRAINING):.0f}"]
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
        # Stopped when it reaches the time kept for the refit: its start-up and an LR test
        # run outside its --time-limit. The baseline never is (only its own --time-limit
        # ends its training): without it nothing is served, whatever the budget.
        result = run_candidate(command + time_limit, folder,
                               os.path.join(run_dir, "logs", candidate.name + ".log"),
                               clock, -math.inf if baseline else reserve, judge,
                               floor=FINAL_RESERVE)  # fmt: skip
        _record(journal, candidate.name, result, folder)
        if result.status == "finished" and candidate.name == candidates[0].name:
            _publish(journal, run_dir, candidate.name, export_dir)  # served within seconds

    # 3. The pick, on validation only; its refit on all the training data; the export.
    finished = {line["candidate"]: line for line in journal.events if line["event"] == "finish"}
    if not finished:
        clock.tick(force=True)
        why = "; ".join(f"{line['candidate']}: {line['reason']}" for line in journal.events
                        if line["event"] == "stop")  # fmt: skip
        raise TrainFailed(f"no candidate finished ({why}); their logs: {os.path.join(run_dir, 'logs')}")
    if not journal.last("pick"):
        chosen, why = pick(finished, args.metric, _val_examples(reading))
        journal.write("pick", candidate=chosen, metric=args.metric, reason=why)
    chosen = journal.last("pick")["candidate"]
    print(f"pick: {journal.last('pick')['candidate']}: {journal.last('pick')['reason']}")
    recipe = next(c.recipe for c in candidates if c.name == chosen)
    exported = _refit(args, journal, run_dir, candidates, chosen, common, clock,
                      _overhead(journal, recipe))  # fmt: skip
    path = _publish(journal, run_dir, exported, export_dir)
    _finish(args, journal, run_dir, reading, chosen, exported, path, clock, export_dir)
    return 0


def _refit(args, journal, run_dir, candidates, chosen, common, clock, overhead):
    """Trains the pick again on train + validation for its best epoch count; returns what to export.

    Skipped (the pick's own model is exported) when the budget cannot hold it, and when
    the refit's time limit cut its training short (it would have fewer epochs than the
    validation chose, with nothing to tell whether that is better).
    """
    done = journal.last("refit")
    if done:
        return "refit" if done["refit"] else chosen
    line = journal.outcome(chosen)
    epochs = line["best_epoch"] + 1
    estimate = _refit_estimate(journal, chosen)
    if clock.left() - FINAL_RESERVE < estimate:
        journal.write("refit", candidate=chosen, refit=False, reason=(
            f"not enough time: about {estimate:.0f} s needed, {max(clock.left(), 0):.0f} s left "
            f"of which {FINAL_RESERVE:.0f} s are kept for the export and the report"))  # fmt: skip
        print(f"refit: skipped, {journal.last('refit')['reason']}; exporting {chosen} as trained")
        return chosen
    candidate = next(c for c in candidates if c.name == chosen)
    flags = list(candidate.flags)
    for name in ("--learning-rate", "--epochs"):  # the refit's own: the rate the pick trained at
        if name in flags:
            del flags[flags.index(name):flags.index(name) + 2]
    learning_rate = _run_config(os.path.join(run_dir, "candidates", chosen))["learning_rate"]
    flags += ["--learning-rate", f"{learning_rate:.6g}", "--validation-split", "0",
              "--epochs", str(epochs)]  # fmt: skip
    folder = os.path.join(run_dir, "candidates", "refit")
    refit_dirs = ["--run-dir", folder, "--export-dir", os.path.join(run_dir, "exports", "refit")]
    command = dataclasses.replace(candidate, flags=flags).command([*common, *refit_dirs])
    print(f"refit: {chosen} on all the training data for {epochs} epoch(s) (its best on validation)")
    limit = max(clock.left() - FINAL_RESERVE - overhead, MIN_TRAINING)
    result = run_candidate([*command, "--time-limit", f"{limit:.0f}"], folder,
                           os.path.join(run_dir, "logs", "refit.log"), clock, FINAL_RESERVE)
    history = read_history(folder)
    trained = 0 if history is None else len(history)
    ok = result.status == "finished" and trained >= epochs
    reason = ("trained on train + validation" if ok else
              f"{result.status} after {trained} of {epochs} epochs: {result.reason or 'time limit'}")  # fmt: skip
    journal.write("refit", candidate=chosen, refit=ok, epochs=epochs, command=_shown(command),
                  seconds=round(result.seconds, 1), reason=reason,
                  test=candidate_scores(folder)["test"] if result.status == "finished" else None)  # fmt: skip
    print(f"refit: {'done' if ok else 'not used'}: {reason}")
    return "refit" if ok else chosen


def _finish(args, journal, run_dir, reading, chosen, exported, path, clock, export_dir):
    """metrics.json, leaderboard.csv and the journal's last line."""
    plan_lines = journal.last("plan")["candidates"]
    outcomes = {p["candidate"]: journal.outcome(p["candidate"]) or {} for p in plan_lines}
    table = leaderboard(plan_lines, outcomes, args.metric)
    write_table(table, os.path.join(run_dir, "leaderboard.csv"))
    refit = journal.last("refit")
    test = refit["test"] if refit and refit["refit"] else journal.outcome(chosen)["test"]
    baseline_name = plan_lines[0]["candidate"]
    baseline = journal.outcome(baseline_name) or {}
    start = journal.last("start", chosen)
    comparison = None
    if baseline.get("event") == "finish":
        comparison = served_comparison(
            os.path.join(run_dir, "exports", exported), os.path.join(run_dir, "exports", baseline_name),
            _test_input(reading, os.path.join(run_dir, "data")), os.path.join(run_dir, "predictions"),
        )  # fmt: skip
    metrics = {
        "test": test,
        "baseline": baseline.get("test"),
        "pick": {"candidate": chosen, "command": start["command"] if start else None,
                 "refit": bool(refit and refit["refit"]), "exported": exported},
        "leaderboard": table.astype(object).where(table.notna(), None).to_dict("records"),
        "mcnemar_p": comparison and comparison["p"],
        "mcnemar": comparison,
        "metric": args.metric,
        "export": os.path.abspath(path),
        "seconds": round(clock.spent(), 1),
        "time_budget_seconds": clock.budget,
    }
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    from tfkit.train.report import write_report  # TensorFlow's import: at the end only

    report = write_report(run_dir)
    print(f"report: {report}")
    clock.tick(force=True)
    journal.write("done", pick=chosen, export=os.path.abspath(path), seconds=round(clock.spent(), 1))
    key = SCORE_KEYS[args.metric]
    shown = [f"test {args.metric} {test[key]:.4f}"] if key in test else []
    if key != "accuracy" and "accuracy" in test:
        shown.append(f"accuracy {test['accuracy']:.4f}")
    print(f"done in {describe(clock.spent())} of {describe(clock.budget)}: {chosen} exported at {path}; "
          f"{', '.join(shown)} (shown, never used to choose)")
    served = shlex.quote(export_dir)
    if reading.kind == "pictures":
        print(f"label new pictures: python -m tfkit predict {served} --input FOLDER --output labelled.csv")
        return
    columns = ",".join(reading.text_columns) or "text"  # class folders: a table's text column
    print(f"label new texts: python -m tfkit predict {served} --input NEW_TABLE "
          f"--output labelled.csv --text-column {shlex.quote(columns)}")


def _write_data(reading, data_dir):
    """The splits every candidate reads: `train.jsonl` and `test.jsonl` for texts;
    `train/<class>/` and `test/<class>/` of links to the pictures, made whole then renamed."""
    if reading.kind == "texts":
        write_table(reading.train, os.path.join(data_dir, "train.jsonl"))
        write_table(reading.test, os.path.join(data_dir, "test.jsonl"))
        return
    if os.path.lexists(data_dir):  # links of an attempt killed before the journal's line
        shutil.rmtree(data_dir)
    with temporary_folder(os.path.dirname(data_dir), os.path.basename(data_dir)) as temporary:
        for split, frame in (("train", reading.train), ("test", reading.test)):
            for file, name, label in frame[["file", "name", "label"]].itertuples(index=False):
                link = os.path.join(temporary, split, label, name)
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.abspath(file), link)
        publish_folder(temporary, data_dir)


def _test_input(reading, data_dir):
    """What `predict` labels to compare the pick with the baseline: the test split."""
    return os.path.join(data_dir, "test" if reading.kind == "pictures" else "test.jsonl")


def _run_config(folder):
    with open(os.path.join(folder, "config.json")) as file:
        return json.load(file)


def _record(journal, name, outcome: Outcome, folder):
    if outcome.status == "failed" and f"error: {WriteFailed.PREFIX}" in outcome.reason:
        # A full disk, not the candidate: left unjournalled, the same command retries it.
        raise RunStateError(f"{name}: {outcome.reason.split('error: ', 1)[1]}")
    seconds = _seconds_since_start(journal, name, outcome.seconds)
    if outcome.status == "finished":
        scores = candidate_scores(folder)
        journal.write("finish", candidate=name, seconds=seconds, **scores)
        val = scores["val"]
        print(f"{name}: finished, validation accuracy {val.get('accuracy', float('nan')):.4f}, "
              f"macro-F1 {val.get('macro_f1', float('nan')):.4f}")  # fmt: skip
    else:
        journal.write("stop", candidate=name, reason=outcome.reason, epochs=outcome.epochs,
                      seconds=seconds, failed=outcome.status == "failed")  # fmt: skip
        print(f"{name}: stopped: {outcome.reason}")


def _seconds_since_start(journal, name, launch_seconds):
    """The budget's seconds since candidate `name` started, its launches before a kill
    included (at least `launch_seconds`, this launch's)."""
    started = journal.last("start", name)["spent_seconds"]
    return round(max(journal.clock.spent() - started, launch_seconds), 1)


def _leader(journal, metric):
    """The finished candidate with the best validation score: the one others are judged by."""
    finished = {line["candidate"]: line for line in journal.events if line["event"] == "finish"}
    return best(finished, metric)


def _val_examples(reading):
    """The validation examples each candidate scores on: its recipe's 20% of the training split."""
    return round(len(reading.train) * VALIDATION_SHARE)


def _overhead(journal, recipe=None):
    """Seconds a candidate of `recipe` spends besides training (starting, reading, evaluating,
    exporting): the last finished candidate's of that recipe, from the journal; before
    any, the larger of `FIRST_OVERHEAD` and the last finished candidate's (a ResNet reads
    and exports more than the linear model before it)."""
    recipes = {line["candidate"]: line.get("recipe") for line in journal.events
               if line["event"] == "start"}  # fmt: skip
    seen = [max(5.0, line["seconds"] - line["train_seconds"]) for line in journal.events
            if line["event"] == "finish" and line.get("train_seconds") is not None
            and (recipe is None or recipes.get(line["candidate"]) == recipe)]  # fmt: skip
    if seen:
        return seen[-1]
    return FIRST_OVERHEAD if recipe is None else max(FIRST_OVERHEAD, _overhead(journal))


def _fingerprint(path):
    """A digest of every file of DATA: a changed table is another run (a touched one is not)."""
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)  # fmt: skip
    digest = hashlib.sha256()
    for file in files:
        digest.update(os.path.relpath(file, path).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{len(files)} file(s), sha256 {digest.hexdigest()[:16]}"


def _refit_estimate(journal, name):
    """Seconds the refit of finished candidate `name` would take: its recipe's start-up and
    export, and its training to its best epoch on 25% more data; 0 for no candidate."""
    if name is None:
        return 0.0
    overhead = _overhead(journal, journal.last("start", name)["recipe"])
    line = journal.outcome(name)
    per_epoch = (line.get("train_seconds") or 0.0) / max(line.get("epochs") or 1, 1)
    return overhead + per_epoch * (line["best_epoch"] + 1) * 1.25


def _publish(journal, run_dir, name, export_dir):
    """Copies candidate `name`'s export to the next version of `export_dir`, once."""
    done = [line for line in journal.events if line["event"] == "export" and line["candidate"] == name]
    if done:
        return done[-1]["path"]
    source = os.path.join(run_dir, "exports", name)
    version_dir = os.path.join(source, max(os.listdir(source), key=int))
    origin = {"run_dir": os.path.abspath(run_dir), "candidate": name}
    versions = sorted((int(v) for v in os.listdir(export_dir) if v.isdigit()), reverse=True) \
        if os.path.isdir(export_dir) else []  # fmt: skip
    path = next((os.path.join(export_dir, str(v)) for v in versions
                 if _origin(os.path.join(export_dir, str(v))) == origin), None)  # fmt: skip
    if path is None:  # not published before a kill that came before the journal's line
        path = os.path.join(export_dir, str(max(versions, default=0) + 1))
        with temporary_folder(export_dir, os.path.basename(path)) as temporary:
            shutil.copytree(version_dir, temporary, dirs_exist_ok=True)
            write_json(os.path.join(temporary, ORIGIN_FILE), origin)
            publish_folder(temporary, path)
    journal.write("export", candidate=name, path=os.path.abspath(path))
    print(f"exported {name}: {path}")
    return path


def _check_writable(flag, folder):
    """A UsageError, before any work, for a folder that is a file or cannot be made."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{flag} {folder} is a file, not a folder; give a folder")
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder} cannot be written ({parent} is not a writable folder)")


def _origin(version_dir):
    try:
        with open(os.path.join(version_dir, ORIGIN_FILE)) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def _finished_or_resumed(run_dir, record):
    """The run folder's journal when it holds this command's run; None for a new folder.

    Raises:
        UsageError: the folder holds a train run of other flags or data.
    """
    path = os.path.join(run_dir, TRAIN_FILE)
    if not os.path.exists(path):
        if os.path.isdir(run_dir) and set(os.listdir(run_dir)) - {".lock"}:
            raise UsageError(f"{run_dir} holds files of something else than a train run; give "
                             "an empty or new --run-dir")  # fmt: skip
        return None
    with open(path) as file:
        saved = json.load(file)
    # Another budget continues the run (what it spent still counts); anything else is
    # another run.
    differ = sorted(k for k in set(saved) | set(record)
                    if saved.get(k) != record.get(k) and k != "time_budget_seconds")  # fmt: skip
    if differ:
        raise UsageError(
            f"{run_dir} holds a train run of other settings or data ("
            + ", ".join(f"{k}: {saved.get(k)!r} there, {record.get(k)!r} now" for k in differ)
            + "); give another --run-dir"
        )
    journal = Journal(run_dir)
    done = journal.last("done")
    if done:
        print(f"{run_dir}: finished before; the pick {done.get('pick')} is exported at "
              f"{done.get('export')}; nothing to do")  # fmt: skip
        raise SystemExit(0)
    return journal


def _plan_line(candidate):
    return {"candidate": candidate.name, "recipe": candidate.recipe, "flags": candidate.flags,
            "reason": candidate.reason}  # fmt: skip


def _shown(command):
    """The command as a user would type it: `python -m recipes.x ...`."""
    return " ".join(["python", *map(shlex.quote, command[1:])])


def _data_name(path):
    base = os.path.basename(os.path.normpath(path))
    return os.path.splitext(base)[0] or "data"
