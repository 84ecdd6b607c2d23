"""What a recipe's command can run instead of, or before, its training: in one place.

- `--tune`: a keras-tuner search over the recipe's `search_space` (`tfkit.tune`);
- `--lr-find`: the LR range test (`tfkit.diagnostics.lr_find`);
- `--overfit-batches N`: the capacity check (`tfkit.diagnostics.capacity`);
- `--learning-rate auto`: the LR range test, then the training with its suggestion;
- `--kfold K`: K trainings on the folds of the training data (`kfold.csv`), then,
  unless `--no-final`, the recipe's training on all of it for the folds' best epoch.

A recipe calls `run_mode` once, between its data and its training, with what every
mode needs: `build_model(config)` and `fit_arguments(config)`, the `fit` arguments
(`x`, `validation_data`, `class_weight`, the callbacks the data needs) at that
config's batch size; a classifier also passes its `splits`, which k-fold deals out
(`fit_arguments(config, splits=fold)`).
"""

import dataclasses
import json
import math
import os

import pandas as pd

from tfkit import cli
from tfkit.baseline import train_baseline
from tfkit.data.splits import kfold_splits
from tfkit.diagnostics import capacity, lr_find
from tfkit.files import write_json, write_text
from tfkit.runs import config_record, update_config_json
from tfkit.session import new_session, seed_everything
from tfkit.tune import search


def run_mode(recipe, config, build_model, search_space, fit_arguments, strategy, run, splits=None):
    """Runs the mode the config asks for; returns the config to train with, or None.

    None means a mode ran instead of the training (`--tune`, `--lr-find`,
    `--overfit-batches`, `--kfold` with `--no-final`): the recipe returns. Otherwise
    the returned config is what the recipe trains: `--learning-rate auto` replaced by
    the LR test's suggestion, `--kfold`'s epochs by the folds' mean best epoch.
    """
    if config.tune:
        search(recipe, config, build_model, search_space, fit_arguments, strategy, run)
        return None
    if config.lr_find:
        find_learning_rate(recipe, config, build_model, fit_arguments, strategy, run)
        run.release()
        return None
    if config.learning_rate == "auto":
        config = auto_learning_rate(recipe, config, build_model, fit_arguments, strategy, run)
    if getattr(config, "overfit_batches", 0):
        check_capacity(config, build_model, fit_arguments, strategy, run)
        run.release()
        return None
    train_baseline(run, config)  # what the training below is judged against
    if getattr(config, "kfold", 0):
        return cross_validate(recipe, config, build_model, fit_arguments, splits, strategy, run)
    return config


def find_learning_rate(recipe, config, build_model, fit_arguments, strategy, run):
    """Runs the LR range test on a new model; writes lr_find.csv/.png/.json; returns the LR.

    The suggestion is for this config's training: `--epochs` x the steps of an epoch
    set how far below the loss's minimum it stays (`lr_find.budget_factor`).
    """
    seed_everything(config.seed, config.deterministic)  # the initial weights of a training
    plain = without_augmentation(config)
    with strategy.scope():
        model = build_model(dataclasses.replace(plain, learning_rate=lr_find.START_LR))
    arguments = fit_arguments(plain)
    train = arguments.pop("x")
    arguments.pop("validation_data", None)  # the test reads training batches only
    test = lr_find.LRRangeTest(loss=config.LR_FIND_LOSS)
    arguments["callbacks"] = [*arguments.get("callbacks", []), test]
    print(f"LR range test: {lr_find.STEPS} steps from {lr_find.START_LR:g} to {lr_find.MAX_LR:g}")
    # One epoch of STEPS steps over the data repeated: a small dataset's many short
    # epochs cost more in Keras's per-epoch work than in its steps (an LSTM on 150 texts:
    # 34 epochs of 3 steps).
    model.fit(train.repeat(), steps_per_epoch=lr_find.STEPS, epochs=1, verbose=0, **arguments)

    total_steps = config.epochs * train.epoch_order.steps_per_epoch
    # A curve that never blew up has no edge to stay below: its minimum may just be where
    # the test ended (an LSTM's went to 0.42), so the cautious tenth holds there.
    budget = total_steps if test.diverged_at else None
    suggestions = lr_find.suggest(test.rows, total_steps=budget)
    suggested = suggestions[lr_find.SUGGESTION]
    write_text(os.path.join(run.dir, "lr_find.csv"), pd.DataFrame(test.rows).to_csv(index=False))
    write_json(
        os.path.join(run.dir, "lr_find.json"),
        {
            "suggested_learning_rate": suggested,
            "rule": lr_find.RULE,
            "diverged_at": test.diverged_at,
            "steps": len(test.rows),
            "loss": config.LR_FIND_LOSS,
            "training_steps": total_steps,
            "factor": lr_find.budget_factor(budget),
            "other_suggestions": {k: v for k, v in suggestions.items() if k != lr_find.SUGGESTION},
        },
    )
    lr_find.plot(
        test.rows, suggested, os.path.join(run.dir, "lr_find.png"), f"LR range test: {recipe}"
    )
    stop = f"diverged at {test.diverged_at:.2g}" if test.diverged_at else "did not diverge"
    print(
        f"LR range test: the loss {stop}; suggested learning rate {suggested:.2g} (its "
        f"minimum's / {lr_find.budget_factor(budget):.2g}, for {total_steps} training steps)"
    )
    command = cli.command_line(
        f"python -m recipes.{recipe}",
        config,
        lr_find=False,
        run_dir=None,
        learning_rate=float(f"{suggested:.2g}"),
    )
    print(f"train with it: {command}")
    print(f"(plot: {os.path.join(run.dir, 'lr_find.png')})")
    return suggested


def auto_learning_rate(recipe, config, build_model, fit_arguments, strategy, run):
    """The config with the LR test's suggestion; the model to train starts afresh.

    The test trains a model of its own. A new Keras session, seeded again, makes the
    recipe's model start from the same initial weights (and layer names) the test
    started from, with a new optimizer: a run with `--learning-rate auto` trains as
    one given the suggestion, and as its own resume, which skips the test.
    """
    # Every worker of a multi-worker run reads the chief's record, as it reads its backup.
    with open(os.path.join(config.run_dir or run.dir, "config.json")) as file:
        record = json.load(file)
    if record.get("learning_rate_source") == "lr-find":
        learning_rate = record["learning_rate"]
        print(f"learning rate {learning_rate:.2g}, from this run's LR range test (config.json)")
        return dataclasses.replace(config, learning_rate=learning_rate)

    learning_rate = find_learning_rate(recipe, config, build_model, fit_arguments, strategy, run)
    update_config_json(run.dir, learning_rate=learning_rate, learning_rate_source="lr-find")
    new_session(config.seed, config.deterministic)
    return dataclasses.replace(config, learning_rate=learning_rate)


def check_capacity(config, build_model, fit_arguments, strategy, run):
    """Trains on the same `--overfit-batches` batches until they are learnt or the budget ends."""
    config = without_augmentation(config)  # the same batches, not new variations of them
    train = fit_arguments(config)["x"]
    batches = min(config.overfit_batches, train.epoch_order.steps_per_epoch)
    fixed = train.take(batches).cache()  # the first batches of epoch 0, every epoch
    with strategy.scope():
        model = build_model(config)
    stop = capacity.StopWhenFitted()
    print(
        f"capacity check: the same {batches} batch(es) until the training loss is "
        f"{capacity.FITS_FRACTION:g} of its start, at most {capacity.STEP_BUDGET} steps"
    )
    model.fit(fixed, epochs=max(1, capacity.STEP_BUDGET // batches), verbose=0, callbacks=[stop])
    result = capacity.verdict(stop.losses, batches, steps=len(stop.losses) * batches)
    write_json(os.path.join(run.dir, "overfit.json"), result)
    change = f"training loss {result['first_loss']:.4f} -> {result['final_loss']:.4f}"
    if result["fits"]:
        print(f"fits: {change} in {result['steps']} steps on {batches} batch(es)")
    else:
        print(f"cannot fit: {change} after {result['steps']} steps; " + "; ".join(result["advice"]))
    return result


def without_augmentation(config):
    """`config` with a recipe's training-time augmentation (`augment`, `mixup`) turned off.

    The LR range test and the capacity check read the loss of the data as it is: an
    augmented batch is a new one every step.
    """
    off = {"augment": "none", "mixup": 0.0}
    return dataclasses.replace(config, **{k: v for k, v in off.items() if hasattr(config, k)})


def cross_validate(recipe, config, build_model, fit_arguments, splits, strategy, run):
    """`--kfold K`: a sub-run per fold, then `kfold.csv`; returns the final model's config.

    Fold i trains in `fold-i/` (a run folder of its own: history, best model,
    diagnosis) on the other folds and validates on fold i, from the same initial
    weights each time. Inputs prepared by a step fitted on training data (a text
    vocabulary, an IDF: `Splits.prepare`) are prepared again from each fold's training
    part, so no fold sees its validation texts through them. A fold with its
    `metrics.json` is done and skipped, so a stopped k-fold resumes with the fold it
    was in. The final model trains on all
    training examples for the folds' mean best epoch (rounded half up) + 1 epochs; None
    with `--no-final`.
    """
    from tfkit.callbacks import standard_callbacks
    from tfkit.runs import Run, finish_run

    rows = []
    for number, fold in enumerate(kfold_splits(splits, config.kfold, config.seed), start=1):
        name = f"fold-{number}"
        fold_config = dataclasses.replace(
            config, run_dir=config.run_dir and os.path.join(config.run_dir, name)
        )
        fold_run = Run(recipe, os.path.join(run.dir, name), fold_config, strategy)
        # Every worker of a multi-worker run reads the chief's folder, as for its backup.
        done = os.path.join(config.run_dir or run.dir, name, "metrics.json")
        if os.path.exists(done):
            with open(done) as file:
                rows.append(json.load(file)["fold"])
            print(f"fold {number}/{config.kfold}: done before ({name}/metrics.json)")
            continue
        print(
            f"fold {number}/{config.kfold}: training on {len(fold.train[1])} examples, "
            f"validating on {len(fold.val[1])}"
        )
        write_json(
            os.path.join(fold_run.dir, "config.json"),
            config_record(recipe, fold_config),
        )
        if splits.prepare is not None:  # its vocabulary (and IDF) from its training part only
            fold = splits.prepare(fold, fold_run.dir)
        new_session(config.seed, config.deterministic)  # every fold starts from the same initial weights
        with strategy.scope():
            model = build_model(config)
        arguments = fit_arguments(config, splits=fold)
        arguments["callbacks"] = standard_callbacks(fold_config, fold_run, arguments["x"], fold)
        model.fit(epochs=config.epochs, verbose=config.fit_verbosity(), **arguments)
        row = _fold_row(number, fold, os.path.join(fold_run.dir, "history.csv"))
        finish_run(fold_run, fold, fold=row)
        rows.append(row)

    table = _kfold_table(rows)
    write_text(os.path.join(run.dir, "kfold.csv"), table.to_csv(index=False))
    print(f"{config.kfold}-fold cross-validation (kfold.csv):")
    shown = table.map(lambda value: f"{value:.4g}" if isinstance(value, float) else value)
    print(shown.to_string(index=False))
    epochs = math.floor(table.set_index("fold").loc["mean", "best_epoch"] + 0.5) + 1
    run.results["kfold"] = {
        "folds": config.kfold,
        **{kind: _numbers(table, kind) for kind in ("mean", "std")},
        "final_epochs": epochs if config.final else None,
    }
    if not config.final:
        finish_run(run, splits)
        return None
    print(
        f"final model: all {len(splits.train[1])} training examples, {epochs} epoch(s) "
        "(the folds' mean best epoch), then the test split"
    )
    new_session(config.seed, config.deterministic)
    return dataclasses.replace(config, epochs=epochs)


def _fold_row(number, fold, history_csv):
    """A fold's row of kfold.csv: its sizes, best epoch (least val_loss) and metrics there."""
    history = pd.read_csv(history_csv)
    best = history["val_loss"].idxmin()
    return {
        "fold": str(number),
        "train_examples": len(fold.train[1]),
        "val_examples": len(fold.val[1]),
        "epochs": len(history),
        "best_epoch": int(history.loc[best, "epoch"]),
        **{name: float(history.loc[best, name]) for name in history if name.startswith("val_")},
    }


def _kfold_table(rows):
    """The folds' rows, then a `mean` and a `std` row (sample standard deviation) of each column."""
    folds = pd.DataFrame(rows)
    first = ["fold", "train_examples", "val_examples", "epochs", "best_epoch"]
    folds = folds[first + sorted(set(folds.columns) - set(first))]  # then val_ metrics
    numbers = folds.drop(columns="fold")
    summary = pd.DataFrame([numbers.mean(), numbers.std()])
    summary.insert(0, "fold", ["mean", "std"])
    # Object columns, so the folds' counts stay whole numbers beside the means.
    return pd.concat([folds.astype(object), summary.astype(object)], ignore_index=True)


def _numbers(table, kind):
    row = table.set_index("fold").loc[kind]
    return {name: float(value) for name, value in row.items()}
