"""Starting from a trained model: `--init-from`, `--freeze`, `--unfreeze-after-epochs` (002 §7.5).

The source is a finished run's best model (`RUN_DIR/best.keras`; the GAN's
`generator.keras` and `discriminator.keras`) or any `.keras` file, loaded with `safe_mode=True` and refused if its layers' weights do not have the
shapes this config builds. Its weights are copied into the recipe's own model, so the
model code stays the recipe's and only the starting point changes. A text model's
token ids mean the words of the vocabulary it was trained with: that vocabulary
(`vocabulary.txt` beside the model) comes with it.
"""

import os

import keras
import numpy as np

from tfkit.errors import RunStateError, UsageError

VOCABULARY_FILE = "vocabulary.txt"


def source_model_path(init_from, name="best.keras"):
    """The model file `--init-from` names: `RUN_DIR/<name>`, or the `.keras` file itself."""
    path = os.path.join(init_from, name) if os.path.isdir(init_from) else init_from
    if not os.path.isfile(path):
        raise UsageError(
            f"--init-from {init_from}: there is no {path}; give a finished run's folder (it "
            f"holds {name}) or a .keras file"
        )
    return path


def vocabulary_path(init_from):
    """`vocabulary.txt` beside the model `--init-from` names (a run folder holds both)."""
    path = os.path.join(os.path.dirname(source_model_path(init_from)), VOCABULARY_FILE)
    if not os.path.isfile(path):
        raise UsageError(
            f"--init-from {init_from}: no {VOCABULARY_FILE} beside the model; a text model's "
            "token ids need the words it was trained with: use the run folder it came from"
        )
    return path


def copy_weights_from(model, path):
    """Loads the model at `path` (safe mode) and copies its weights into `model`.

    Raises:
        UsageError: the two models' weights differ in number or shape.
        RunStateError: the file cannot be loaded, or safe mode refuses it (a `Lambda`
            layer holds Python code that loading would run).
    """
    try:
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunStateError(f"--init-from {path} cannot be loaded: {reason}") from None
    ours = [(weight.path, tuple(weight.shape)) for weight in model.weights]
    theirs = [(weight.path, tuple(weight.shape)) for weight in source.weights]
    mismatch = next(
        (f"{a[0]} {a[1]} here, {b[1]} there" for a, b in zip(ours, theirs) if a[1] != b[1]),
        None,
    )
    if len(ours) != len(theirs):
        mismatch = f"{len(ours)} weights here, {len(theirs)} there"
    if mismatch:
        raise UsageError(
            f"--init-from {path}: its architecture does not match this config ({mismatch}); "
            "give the model flags it was trained with (its run's config.json)"
        )
    for target, weight in zip(model.weights, source.weights):
        target.assign(weight)
    print(f"fine-tuning: weights from {path}")


def layers_up_to(model, name):
    """`model`'s layers from the first to the one named `name`, as `model.summary()` names it."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise UsageError(f"--freeze {name}: the model has no such layer; its layers: {names}")
    return model.layers[: names.index(name) + 1]


class FineTune(keras.callbacks.Callback):
    """Starts training from `--init-from`'s weights; keeps `--freeze`'s layers fixed until
    `--unfreeze-after-epochs`, then trains them too at the LR / `--fine-tune-lr-factor`.

    `trainable` takes effect when the train step is built, so each change rebuilds it
    (what a recompile does for it), keeping the optimizer: it was built with every
    variable at the start, so the unfrozen ones start with fresh slots. Put it before
    the backup, which then restores a resumed run's own weights over the source's.
    Under an LR schedule the schedule divides the LR instead (`fine_tuning` passes
    `lr_factor=1`).
    """

    def __init__(
        self, init_from=None, freeze=None, unfreeze_after_epochs=0, lr_factor=10.0, parts=None
    ):
        super().__init__()
        self.init_from = init_from
        self.parts = parts
        self.freeze = freeze
        self.unfreeze_after_epochs = unfreeze_after_epochs
        self.lr_factor = lr_factor
        self.lr_divided = False

    def backup_state(self):
        return {"lr_divided": self.lr_divided}

    def restore_state(self, state):
        self.lr_divided = state["lr_divided"]

    def on_train_begin(self, logs=None):
        if self.init_from and self.parts:  # a model of several networks, each in its file
            for attribute, name in self.parts.items():
                path = source_model_path(self.init_from, name)
                copy_weights_from(getattr(self.model, attribute), path)
        elif self.init_from:
            copy_weights_from(self.model, source_model_path(self.init_from))
        optimizer = self.model.optimizer
        if not optimizer.built:  # with every variable, so unfreezing needs no new optimizer
            optimizer.build(self.model.trainable_variables)
        self.frozen_layers = layers_up_to(self.model, self.freeze) if self.freeze else []
        self._frozen = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.frozen_layers:
            return
        frozen = not self.unfreeze_after_epochs or epoch < self.unfreeze_after_epochs
        if frozen != self._frozen:
            for layer in self.frozen_layers:
                layer.trainable = not frozen
            self.model.make_train_function(force=True)
            self._frozen = frozen
            names = ", ".join(layer.name for layer in self.frozen_layers)
            print(f"fine-tuning: {names} {'frozen' if frozen else 'unfrozen'} from epoch {epoch}")
        if not frozen and not self.lr_divided:
            optimizer = self.model.optimizer
            optimizer.learning_rate = float(np.asarray(optimizer.learning_rate)) / self.lr_factor
            self.lr_divided = True


def fine_tuning(config, parts=None):
    """`[FineTune]` when the config starts from a model or freezes layers, else `[]`.

    `parts` maps the model's networks to the files of a run folder that hold them, for
    a model saved as several (the GAN's {"generator": "generator.keras", ...}).
    """
    freeze = getattr(config, "freeze", None)
    if not (config.init_from or freeze):
        return []
    # Under a schedule, which sets the LR every step, the schedule divides it
    # (`tfkit.optim.scheduled_learning_rate`); a division here would be overwritten.
    lr_factor = 1.0 if config.scheduled else getattr(config, "fine_tune_lr_factor", 10.0)
    return [
        FineTune(
            config.init_from,
            freeze,
            getattr(config, "unfreeze_after_epochs", 0),
            lr_factor,
            parts,
        )
    ]
