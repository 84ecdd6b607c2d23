"""Hyperparameter search with keras-tuner, from a recipe's own flags and model code.

A recipe declares `search_space(hp)`, which returns config overrides in 002 §7.3's
order of importance, and keeps one `build_model(config)`; a trial's model is
`build_model(replace(config, **search_space(hp)))`. The search folder holds
keras-tuner's own state (so a re-run resumes), `trials.csv` (rewritten as each
trial ends), `best.json`, and `search.json`, which records what the folder was
made with so that a resume never mixes tuners or keras-tuner versions.
"""

import dataclasses
import json
import os
import time

import keras_tuner
import keras_tuner.engine.hyperparameters as kinds
import pandas as pd

from tfkit.errors import UsageError
from tfkit.files import write_json, write_text
from tfkit.runs import default_search_dir

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
    "grid": keras_tuner.GridSearch,
}
PROJECT = "search"  # keras-tuner's own subfolder
MULTICLASS_LOGS = ("loss", "accuracy", "f1")  # what a softmax classifier logs


def direction(objective):
    """ "min" for losses and distances, "max" for scores such as accuracy or AUC."""
    return "min" if objective.endswith(("loss", "kid")) else "max"


def best_config(recipe, config):
    """`config` with the best trial's hyperparameters of `config.retrain_best` and its epochs.

    This retrains the best hyperparameters; it does not reuse the search's saved model,
    whose weights are a trial's best epoch, not a fresh training (keras-tuner#548).
    """
    with open(os.path.join(config.retrain_best, "search.json")) as file:
        searched = json.load(file)["recipe"]
    if searched != recipe:
        raise UsageError(
            f"{config.retrain_best} is a search of {searched}, not {recipe}; run "
            f"python -m recipes.{searched} --retrain-best {config.retrain_best}"
        )
    with open(os.path.join(config.retrain_best, "best.json")) as file:
        best = json.load(file)
    epochs = best["best_epoch"] + 1
    print(
        f"retraining trial {best['trial_id']}'s hyperparameters ({best['objective']} "
        f"{best['score']:.4g}) for {epochs} epochs on train + validation data"
    )
    # The search space's names are config fields; a tuner may store its own beside
    # them (Hyperband: tuner/epochs, tuner/bracket, ...), which are no settings.
    fields = {config_field.name for config_field in dataclasses.fields(config)}
    chosen = {name: value for name, value in best["hyperparameters"].items() if name in fields}
    return dataclasses.replace(config, epochs=epochs, **chosen)


def objective_of(config):
    """`--objective`, or the recipe's default (the first of its config's OBJECTIVES)."""
    return config.objective or config.OBJECTIVES[0]


def trial_callbacks(config):
    """What every trial trains with: NaN stop, and early stopping on the objective."""
    import keras

    from tfkit.callbacks import learning_rate_schedule

    callbacks = [*learning_rate_schedule(config), keras.callbacks.TerminateOnNaN()]
    patience = getattr(config, "early_stopping_patience", None)
    if patience is not None:
        objective = objective_of(config)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=objective, mode=direction(objective), patience=patience
            )
        )
    return callbacks


class RecipeHyperModel(keras_tuner.HyperModel):
    """Builds and fits a recipe's model for one trial's hyperparameters."""

    def __init__(self, config, search_space, build_model, fit_arguments):
        super().__init__()
        self.config = config
        self.search_space = search_space
        self.build_model = build_model
        self.fit_arguments = fit_arguments

    def trial_config(self, hp):
        return dataclasses.replace(self.config, **self.search_space(hp))

    def build(self, hp):
        return self.build_model(self.trial_config(hp))

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        config = self.trial_config(hp)
        arguments = self.fit_arguments(config)
        # The recipe's callbacks first: the others must see what they log (pixel_kid).
        arguments["callbacks"] = [
            *arguments.get("callbacks", []),
            *trial_callbacks(config),
            *callbacks,
        ]
        kwargs.setdefault("epochs", config.epochs)  # Hyperband sets its own
        return model.fit(*args, verbose=config.fit_verbosity(), **arguments, **kwargs)


def search(recipe, config, build_model, search_space, fit_arguments, strategy=None, run=None):
    """Runs (or resumes) the search `--tune` asks for; returns the search folder.

    Args:
        recipe: the recipe's name, for the default folder `runs/<recipe>/tune-<tuner>/`.
        config: the recipe's config; its flags apply inside every trial.
        build_model: `config -> compiled keras.Model`.
        search_space: `hp -> dict` of config overrides.
        fit_arguments: `config -> dict` of `model.fit` arguments (data, callbacks...).
        strategy: the run's `tf.distribute.Strategy`; keras-tuner builds each trial's
            model in its scope (wrapping `search` in a scope breaks it, keras-tuner#686).
        run: the `Run` from `start_run`, which holds the search folder's lock; it is
            let go when the search ends.

    Raises:
        UsageError: the folder holds a search this one must not resume.
    """
    directory = run.dir if run else config.run_dir or default_search_dir(recipe, config.tuner)
    try:
        _search(recipe, config, build_model, search_space, fit_arguments, strategy, directory)
    finally:
        if run:
            run.release()
    return directory


def _search(recipe, config, build_model, search_space, fit_arguments, strategy, directory):
    objective = objective_of(config)
    classes = len(getattr(config, "class_names", ()))
    if classes > 2 and objective.removeprefix("val_") not in MULTICLASS_LOGS:
        raise UsageError(
            f"--objective {objective}: a model of {classes} classes logs "
            f"{', '.join(MULTICLASS_LOGS)} (and their val_ twins); choose one of those"
        )
    record = {
        "recipe": recipe,
        "tuner": config.tuner,
        "objective": objective,
        "keras_tuner": keras_tuner.__version__,
    }
    _check_resumable(directory, record, config.overwrite)
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "search.json"), record)

    tuner = _recording_tuner(config.tuner)(
        hypermodel=RecipeHyperModel(config, search_space, build_model, fit_arguments),
        hyperparameters=pinned_to_the_source(config, search_space, build_model),
        objective=keras_tuner.Objective(objective, direction(objective)),
        directory=directory,
        project_name=PROJECT,
        overwrite=config.overwrite,
        seed=config.seed,
        distribution_strategy=strategy if _distributed(strategy) else None,
        **_budget(config),
    )
    tuner.search()  # on a distributed chief: serves the oracle until the workers finish
    if not tuner._is_worker():
        write_results(tuner, directory, objective)


def pinned_to_the_source(config, search_space, build_model):
    """Under `--init-from`, the searched choices that would change weight shapes, fixed.

    Every trial of a fine-tuning search starts from the source's weights, so a choice
    such as a layer's width stays the config's (one probe model per value tells which);
    the learning rate, optimizer, dropout and the like are searched as usual.
    """
    pinned = keras_tuner.HyperParameters()
    if not config.init_from:
        return pinned
    probe = keras_tuner.HyperParameters()
    search_space(probe)
    shapes = _weight_shapes(build_model(config))
    for entry in probe.space:
        if isinstance(entry, kinds.Choice):
            values = entry.values
        elif isinstance(entry, kinds.Int):
            values = [entry.min_value, entry.max_value]
        else:  # Float, Boolean, Fixed: no weight shape depends on them in these recipes
            continue
        if any(
            _weight_shapes(build_model(dataclasses.replace(config, **{entry.name: value})))
            != shapes
            for value in values
        ):
            pinned.Fixed(entry.name, getattr(config, entry.name))
            print(f"search: {entry.name} stays {getattr(config, entry.name)} (--init-from's model)")
    return pinned


def _weight_shapes(model):
    return [tuple(weight.shape) for weight in model.weights]


def write_results(tuner, directory, objective):
    """Writes `trials.csv` (every trial so far) and `best.json` (the best finished one)."""
    log = _load_trial_log(tuner.project_dir)
    rows = []
    for trial in tuner.oracle.trials.values():
        rows.append(
            {
                "trial_id": trial.trial_id,
                **trial.hyperparameters.values,
                objective: trial.score,
                "epochs": log.get(trial.trial_id, {}).get("epochs"),
                "best_epoch": trial.best_step,
                "seconds": log.get(trial.trial_id, {}).get("seconds"),
                "status": trial.status,
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        ascending = direction(objective) == "min"
        table = table.sort_values(objective, ascending=ascending, na_position="last")
    write_text(os.path.join(directory, "trials.csv"), table.to_csv(index=False))
    best = tuner.oracle.get_best_trials(1)
    if best:
        write_json(
            os.path.join(directory, "best.json"),
            {
                "trial_id": best[0].trial_id,
                "objective": objective,
                "score": best[0].score,
                "best_epoch": best[0].best_step,
                "hyperparameters": best[0].hyperparameters.values,
            },
        )


def _recording_tuner(kind):
    """The keras-tuner class for `kind`, rewriting the results as each trial ends."""

    class RecordingTuner(TUNERS[kind]):
        def run_trial(self, trial, *args, **kwargs):
            start = time.perf_counter()
            histories = super().run_trial(trial, *args, **kwargs)
            # One log per tuner: distributed workers share the folder.
            log = _read_json(self._trial_log_path())
            log[trial.trial_id] = {
                "seconds": round(time.perf_counter() - start, 2),
                "epochs": max(len(history.epoch) for history in histories),
            }
            write_json(self._trial_log_path(), log)
            return histories

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if not self._is_worker():  # a worker's oracle is a client without the trials
                write_results(self, os.path.dirname(self.project_dir), self.oracle.objective.name)

        def _trial_log_path(self):
            return os.path.join(self.project_dir, f"trial_log_{self.tuner_id}.json")

    return RecordingTuner


def _load_trial_log(project_dir):
    """{trial id: {"seconds", "epochs"}} from every tuner's log beside keras-tuner's state."""
    log = {}
    if os.path.isdir(project_dir):
        for name in sorted(os.listdir(project_dir)):
            if name.startswith("trial_log_") and name.endswith(".json"):
                log.update(_read_json(os.path.join(project_dir, name)))
    return log


def _read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        return json.load(file)


def _distributed(strategy):
    import tensorflow as tf

    return strategy is not None and strategy is not tf.distribute.get_strategy()


def _budget(config):
    if config.tuner == "hyperband":
        # Hyperband spends epochs, not trials: --epochs is its largest training budget.
        return {"max_epochs": config.epochs, "executions_per_trial": config.executions_per_trial}
    return {"max_trials": config.max_trials, "executions_per_trial": config.executions_per_trial}


def _check_resumable(directory, record, overwrite):
    path = os.path.join(directory, "search.json")
    if overwrite or not os.path.exists(path):
        return
    with open(path) as file:
        previous = json.load(file)
    for key in ("recipe", "tuner", "objective", "keras_tuner"):
        if previous.get(key) != record[key]:
            raise UsageError(
                f"{directory} holds a search with {key}={previous.get(key)!r}, not "
                f"{record[key]!r}; resume it with the same settings, pass --overwrite to start "
                "afresh, or choose another --run-dir"
            )
    if record["tuner"] == "grid":
        # keras-tuner 1.4.8 crashes with KeyError resuming a GridSearch (keras-tuner#1055).
        raise UsageError(
            f"{directory} holds a grid search, and keras-tuner {record['keras_tuner']} cannot "
            "resume one (keras-tuner#1055); pass --overwrite to run it again from the start, "
            "or choose another --run-dir"
        )


def report(directory, png_path=None, top=3):
    """The ranked trials table of a search folder, and a PNG of the objective.

    The PNG plots the objective against the first `top` hyperparameters of the
    search space, which the recipes order by importance (002 §7.3), learning rate
    on a log scale.

    Returns:
        The ranked `pandas.DataFrame`.
    """
    from matplotlib.figure import Figure

    from tfkit.figures import save_figure

    path = os.path.join(directory, "trials.csv")
    if not os.path.exists(path):
        raise UsageError(f"{directory} has no trials.csv; give the folder of a --tune search")
    with open(os.path.join(directory, "search.json")) as file:
        objective = json.load(file)["objective"]
    table = pd.read_csv(path)
    table = table.sort_values(objective, ascending=direction(objective) == "min")
    first = list(table.columns).index("trial_id") + 1
    hyperparameters = list(table.columns[first : list(table.columns).index(objective)])[:top]
    figure = Figure(figsize=(4.5 * len(hyperparameters), 3.5))
    axes = figure.subplots(1, len(hyperparameters), squeeze=False)
    for axis, name in zip(axes[0], hyperparameters):
        values = table[name]
        numeric = pd.api.types.is_numeric_dtype(values)
        axis.scatter(values if numeric else values.astype(str), table[objective])
        if name == "learning_rate":
            axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.set_ylabel(objective)
    figure.tight_layout()
    save_figure(figure, png_path or os.path.join(directory, "objective.png"))
    return table
