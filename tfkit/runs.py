"""Run folders: where each run's config, history, metrics, checkpoint and plots go.

A run folder belongs to the config that made it, and to one process at a time.
"""

import dataclasses
import datetime
import json
import os
import shutil

from tfkit import signals
from tfkit.distribute import chief_or_temporary, describe, is_chief
from tfkit.errors import RunComplete, RunStateError, UsageError
from tfkit.figures import confusion_figure, plot_history, save_figure
from tfkit.files import LOCK_FILE, TEMPORARY, FolderLock, plain, remove_temporaries, write_json
from tfkit.metrics import without_predictions
from tfkit.session import new_session

# Flags that say where and how a run goes, not what it trains: they may differ when a
# run folder is reused. Every other flag must match the config.json of the folder.
NOT_TRAINING_FLAGS = frozenset(
    {
        "run_dir", "export_dir", "export", "overwrite", "backup_every", "grad_norm_every",
        "strategy", "logical_cpus", "jit_compile", "verbose", "time_limit",
        "tune", "tuner", "max_trials", "executions_per_trial", "objective", "retrain_best",
        "lr_find", "overfit_batches", "baseline",
        "class_names",  # what the data holds, recorded once it is read
    }
)  # fmt: skip
# Flags that name a file or folder: recorded and compared resolved.
PATH_FLAGS = ("data_dir", "init_from", "run_dir", "export_dir", "retrain_best")


def default_run_dir(recipe):
    """`runs/<recipe>/<timestamp>/`, unique to the second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", recipe, stamp)


def default_search_dir(recipe, tuner):
    """`runs/<recipe>/tune-<tuner>/`: a re-run of the same search resumes it."""
    return os.path.join("runs", recipe, f"tune-{tuner}")


@dataclasses.dataclass
class Run:
    """A run folder held by this process, and what the run did that metrics.json records."""

    recipe: str
    dir: str
    config: object
    strategy: object
    lock: "FolderLock | None" = None
    resumed: list = dataclasses.field(default_factory=list)  # filled by the backup callback
    checks: dict = dataclasses.field(default_factory=dict)  # what the start checks found
    results: dict = dataclasses.field(default_factory=dict)  # a mode's, for metrics.json
    # What the baseline trains on, left by the data step: ("text", raw-text splits) or
    # ("pixels", picture splits); `tfkit.baseline.train_baseline` trains it before a training.
    baseline_data: tuple | None = None

    def release(self):
        """Lets go of the folder's lock, once the run or mode is over."""
        if self.lock:
            self.lock.release()


def start_run(recipe, config, strategy):
    """Seeds the run, claims its folder, and returns the `Run`.

    Every random draw is seeded from `--seed` (and under `--deterministic` TensorFlow's
    ops are made deterministic). The folder, `--run-dir` or `runs/<recipe>/<timestamp>/`
    (a search's: `runs/<recipe>/tune-<tuner>/`), belongs to the config that made it:

    - the same command on a finished run raises `RunComplete` and changes nothing;
    - other training flags (see `NOT_TRAINING_FLAGS`) raise `UsageError` naming them,
      unless `--overwrite`, which empties the folder and trains afresh (never a folder
      of another recipe, or a search's for a run and a run's for a search);
    - a folder in use by a live process raises `UsageError` naming its process id;
    - otherwise a run left unfinished resumes from its backup (a search, its trials).

    On a non-chief worker of a multi-worker run the folder is a temporary one.

    Raises:
        RunComplete, UsageError: as above.
        RunStateError: the folder cannot be written.
    """
    # A new Keras session: layers get the names they get in a new process (which
    # `--freeze LAYER` refers to), whatever this process built before.
    new_session(config.seed, config.deterministic, policy="float32")
    record = config_record(recipe, config)
    if config.tune:
        folder = config.run_dir or default_search_dir(recipe, config.tuner)
        # Distributed searches share one folder: one lock per keras-tuner process.
        tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
        lock = _claim(folder, f"{LOCK_FILE}{'-' + tuner_id if tuner_id else ''}", record,
                      config.overwrite, search=True)  # fmt: skip
        _record_config(folder, record, replace=config.overwrite)
        return Run(recipe, folder, config, strategy, lock)

    folder = chief_or_temporary(config.run_dir or default_run_dir(recipe), strategy)
    lock = None
    if is_chief(strategy):
        lock = _claim(folder, LOCK_FILE, record, config.overwrite, mode=config.mode)
        if config.overwrite:
            _empty_folder(folder, keep=LOCK_FILE)
    _record_config(folder, record)
    signals.install()
    if config.data == "synthetic":
        print(f"[{recipe}] data: SYNTHETIC (generated, learnable; not the real dataset)")
    print(f"[{recipe}] run folder: {folder}")
    layout = describe(strategy, config.batch_size)
    print(
        f"[{recipe}] strategy {layout['strategy']}: {layout['replicas']} replica(s), global "
        f"batch {config.batch_size}, {layout['per_replica_batch']:g} per replica"
    )
    return Run(recipe, folder, config, strategy, lock)


def config_record(recipe, config):
    """What config.json holds: the recipe and every field, path flags resolved.

    Paths are made absolute with symlinks followed, so `d/x.csv`, `./d/x.csv` and a link
    to it are the same run wherever the command is typed from.
    """
    record = {"recipe": recipe, **dataclasses.asdict(config)}
    for name in PATH_FLAGS:
        record[name] = resolved_path(record.get(name))
    return record


def resolved_path(path):
    """`path` absolute, `~` expanded and symlinks followed (None stays None)."""
    return None if path is None else os.path.realpath(os.path.expanduser(path))


def _claim(folder, lock_name, record, overwrite, search=False, mode=None):
    """Locks `folder`, then checks that it is this run's or search's (see `start_run`).

    The checks run under the lock, so two processes never both find a folder free.
    """
    try:
        lock = FolderLock(folder, lock_name).acquire()
    except OSError as error:
        raise RunStateError(
            f"--run-dir {folder} cannot be written ({error.strerror}); choose a folder you can "
            "write to"
        ) from None
    try:
        _check_folder_belongs(folder, record, overwrite, search=search, mode=mode)
    except BaseException:
        lock.release()
        raise
    if not search:  # a search folder is shared by its tuner processes: theirs may be live
        for stale in (folder, os.path.join(folder, "backup")):
            remove_temporaries(stale)  # half-written files of a killed run
    return lock


def record_in_config(run, config, **derived):
    """`config` with the fields the data decided (`class_names`), also written to config.json."""
    update_config_json(run.dir, **derived)
    return dataclasses.replace(config, **derived)


def update_config_json(folder, **fields):
    """Adds `fields` to `folder`'s config.json; a file that already says so is left untouched."""
    path = os.path.join(folder, "config.json")
    with open(path) as file:
        record = json.load(file)
    news = json.loads(json.dumps(fields, default=plain))  # tuples as JSON lists, to compare
    if any(record.get(name) != value for name, value in news.items()):
        write_json(path, {**record, **news})


def finish_run(run, splits=None, curves=None, **metrics):
    """Writes `metrics.json`, `curves.png` (and `confusion.png`), prints the diagnosis, lets
    go of the folder.

    `metrics.json` holds `metrics` (e.g. `test`), the data source, the split sizes and
    `class_counts`, the strategy, `resumed` (each resume of the run as
    `{"epoch": E, "step": S}`), `diagnosis` (`tfkit.diagnostics.verdict`) and what a
    mode left in `run.results` (the k-fold summary). It is
    written last: a run folder with it is complete, and its backup is removed.
    `curves` names the metrics `curves.png` plots. The per-example `predicted` ids that
    `evaluate_classifier` leaves in the scores go to the verdict (paired with the
    baseline's, on the splits' labels), not into metrics.json.
    """
    record = {**metrics, **describe(run.strategy, run.config.batch_size), "resumed": run.resumed}
    record.update(run.results)
    if splits is not None:
        record.update(data=splits.source, class_counts=splits.class_counts(), **splits.sizes())
        if splits.dropped_rows:
            record["dropped_rows"] = splits.dropped_rows
    matrix = (metrics.get("test") or {}).get("confusion_matrix")
    if matrix is not None and splits is not None:
        figure = confusion_figure(matrix, splits.class_names, f"{run.recipe}: test split")
        save_figure(figure, os.path.join(run.dir, "confusion.png"))
    history = os.path.join(run.dir, "history.csv")
    if os.path.exists(history):
        source = record.get("data", run.config.data)
        source = "SYNTHETIC" if source == "synthetic" else source
        plot_history(
            history,
            os.path.join(run.dir, "curves.png"),
            pairs=curves,
            title=f"{run.recipe} on {source} data",
        )
        labels = None if splits is None else {"val": splits.val[1], "test": splits.test[1]}
        record["diagnosis"] = _diagnose(run, history, record, labels)
    record = without_predictions(record)
    write_json(os.path.join(run.dir, "metrics.json"), record)
    shutil.rmtree(os.path.join(run.dir, "backup"), ignore_errors=True)
    run.release()
    return record


def _diagnose(run, history_csv, record, labels=None):
    """The fit verdict from the run's history and gradients; printed as a block.

    `labels` ({split: true class ids}) pair the model's and the baseline's answers."""
    import pandas as pd

    from tfkit.diagnostics import verdict

    gradients_csv = os.path.join(run.dir, "gradients.csv")
    gradient_rows = []
    if os.path.exists(gradients_csv):
        gradient_rows = pd.read_csv(gradients_csv).to_dict("records")
    try:
        diagnosis = verdict.diagnose(
            pd.read_csv(history_csv),
            gradient_rows,
            run.checks,
            record.get("class_counts"),
            record.get("test"),
            val=record.get("val"),
            baseline=record.get("baseline"),
            labels=labels,
            recipe=run.recipe,
        )
        against_baseline = verdict.compare_with_baseline(record)
    except Exception as error:  # the doctor must never cost a run its metrics
        print(f"diagnosis: failed ({type(error).__name__}: {error}); the run's metrics stand")
        return {
            "fit": "unknown",
            "why": f"the diagnosis failed: {error}",
            "gradients": "unknown",
            "gradients_why": "",
            "best_epoch": None,
            "advice": [],
        }
    if against_baseline:
        print(against_baseline)
    print(verdict.describe(diagnosis))
    print(f"report: python -m tfkit report {run.dir}")
    return diagnosis


def training_differences(saved, current):
    """The training flags on which two config records differ: {flag: (saved, current)}.

    Path flags compare as paths (a folder recorded relative, before paths were resolved,
    is read from the current directory).
    """
    keys = (set(saved) | set(current)) - NOT_TRAINING_FLAGS

    def value(record, key):
        return resolved_path(record.get(key)) if key in PATH_FLAGS else record.get(key)

    return {
        key: (saved.get(key), current.get(key))
        for key in sorted(keys)
        if value(saved, key) != value(current, key)
    }


def _check_folder_belongs(folder, record, overwrite, search=False, mode=None):
    """Refuses a folder that is not this run's or search's (or says the run is complete)."""
    config_path = os.path.join(folder, "config.json")
    kind = "search" if search else "run"
    if not os.path.exists(config_path):
        # Locks, and another process's file half-written under its temporary name (the
        # processes of a distributed search start in the same folder at once).
        others = [n for n in _listdir(folder) if not n.startswith((LOCK_FILE, TEMPORARY))]
        if search and "search.json" in others:
            return  # a search from before searches kept their config: resumed as it was
        if others:
            raise UsageError(
                f"--run-dir {folder} is not empty and not a {kind} folder (no config.json); "
                "choose an empty or new folder"
            )
        return
    try:
        with open(config_path) as file:
            saved = json.load(file)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{config_path} cannot be read ({error}); move that folder away or use another "
            "--run-dir"
        ) from None
    saved_kind = "search" if saved.get("tune") else "run"
    if saved.get("recipe") != record["recipe"] or saved_kind != kind:
        # Not even --overwrite: it would empty another recipe's run, or a search.
        raise UsageError(
            f"{folder} holds a {saved_kind} of {saved.get('recipe')}, not a {kind} of "
            f"{record['recipe']}; use another --run-dir"
        )
    if overwrite:
        return
    if record.get("learning_rate") == "auto" and saved.get("learning_rate_source") == "lr-find":
        record = {
            **record,
            "learning_rate": saved["learning_rate"],
            "learning_rate_source": "lr-find",
        }
    differences = training_differences(saved, record)
    if differences and not search and not _started(folder):
        # A command that failed before training (a bad --init-from, a missing file, a
        # kill while reading data) left only its config: nothing to protect.
        print(f"{folder}: its run with other flags never started training; this one starts there")
        _empty_folder(folder, keep=LOCK_FILE)
        return
    if differences:
        shown = ", ".join(
            f"--{key.replace('_', '-')} {now!r} (the run's: {then!r})"
            for key, (then, now) in differences.items()
        )
        raise UsageError(
            f"{folder} holds a {kind} made with other training flags: {shown}. Use another "
            "--run-dir, or --overwrite to train afresh in this one"
        )
    if not search and not mode and os.path.exists(os.path.join(folder, "metrics.json")):
        raise RunComplete(
            f"{folder} is a complete run of this command; its metrics are in "
            f"{os.path.join(folder, 'metrics.json')} (--overwrite trains it again)"
        )


def _started(folder):
    """Whether a run folder holds what training writes: an epoch's history, a backup, a result."""
    written = ("history.csv", "backup", "best.keras", "metrics.json", "kfold.csv")
    return any(name in written or name.startswith("fold-") for name in _listdir(folder))


def _record_config(folder, record, replace=False):
    """Writes `config.json` into a new folder (or, `replace`d, one started afresh); a
    resumed folder keeps the one that made it."""
    path = os.path.join(folder, "config.json")
    if replace or not os.path.exists(path):
        write_json(path, record)


def _empty_folder(folder, keep):
    for name in _listdir(folder):
        if name == keep:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _listdir(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []
