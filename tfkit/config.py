"""The settings every recipe shares: one flat dataclass whose fields are the flags.

A recipe subclasses `TrainConfig`, adds its own fields and overrides defaults.
`tfkit.cli.parse_config` turns the fields into command-line flags, so each flag is
defined exactly once, here or in the recipe. Nothing in this module imports
TensorFlow: bad values are rejected before any heavy work starts.
"""

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import ClassVar

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "nadam", "adagrad", "adadelta")
DATA_SOURCES = ("tfds", "dir", "synthetic")
MIXED_PRECISION = ("auto", "off", "bf16", "fp16")
JIT_COMPILE = ("auto", "on", "off")
TUNERS = ("random", "bayesian", "hyperband", "grid")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")
INITIAL_BIAS = ("none", "auto")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
VERBOSITY = ("auto", "0", "1", "2")
# Pillow's Image.MAX_IMAGE_PIXELS: the decompression-bomb limit Python users know.
MAX_PIXELS = 89_478_485


def derived(default, help):
    """A config field the data decides, not a flag (the classes of a dataset)."""
    return field(default=default, metadata={"help": help, "derived": True})


def flag(default, help, choices=None, name=None):
    """A config field that is also a command-line flag with this help text.

    `name` overrides the flag's spelling, for a field whose natural flag is a Python
    keyword (the GAN's `--class` is the field `image_class`).
    """
    metadata = {"help": help}
    if choices:
        metadata["choices"] = choices
    if name:
        metadata["name"] = name
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Settings shared by every recipe, classifier or GAN. Each field is a `--flag-name`."""

    # What --objective may name: quantities this kind of model logs, the default first.
    OBJECTIVES: ClassVar[tuple] = ("loss",)
    LR_FIND_LOSS: ClassVar[str] = "loss"  # the logged loss the LR range test reads

    # Data.
    data: str = flag("tfds", "where the data comes from", DATA_SOURCES)
    data_dir: str | None = flag(
        None, "TFDS data directory (--data tfds) or the dataset's local copy (--data dir)"
    )
    max_examples: int | None = flag(None, "cap each split at N examples, for a quick run")
    max_pixels: int = flag(
        MAX_PIXELS, "pictures: skip one whose header declares more pixels, before decoding it "
        "(Pillow's limit); the export refuses them too"
    )
    init_from: str | None = flag(
        None, "fine-tune: start from a finished run's best model (RUN_DIR) or a MODEL.keras"
    )
    seed: int = flag(1337, "seed for the data split and order, synthetic data, weights, dropout")
    deterministic: bool = flag(
        False, "deterministic TensorFlow ops: a re-run or a resumed run repeats bit for bit"
    )

    # Optimisation.
    epochs: int = flag(10, "passes over the training data (002 §2.2 and §3.6 run 10)")
    time_limit: float = flag(
        0.0, "stop training after N seconds (the best epoch's weights kept), then evaluate "
        "and export as usual; 0: no limit"
    )
    batch_size: int = flag(128, "global batch size (002 §1.22: minibatch 128)")
    optimizer: str = flag("rmsprop", "Keras optimizer name (the documents use RMSprop)", OPTIMIZERS)
    learning_rate: float | str = flag(
        1e-3, "initial learning rate (Keras's RMSprop default); auto: the LR range test's"
    )
    clipnorm: float | None = flag(
        None, "clip each gradient to this L2 norm (000: 1.0; 002 §1.22: RNNs 5..15)"
    )
    clipvalue: float | None = flag(None, "clip each gradient element to ±this (000: 0.5)")
    global_clipnorm: float | None = flag(
        None, "clip all gradients together to this L2 norm, keeping their direction (preferred)"
    )

    # Learning-rate schedule, set every step (003, 004 "学习率衰减").
    lr_schedule: str = flag("constant", "the LR over training, step by step", LR_SCHEDULES)
    warmup_epochs: float = flag(0.0, "first raise the LR linearly from near 0 over W epochs")
    lr_decay_epochs: float = flag(3.0, "step, exponential: multiply the LR by the factor per N")
    lr_decay_factor: float = flag(0.5, "step, exponential: the factor (002 §1.22: halve it)")
    min_learning_rate: float = flag(0.0, "cosine: the LR at the last step")

    # Distribution.
    strategy: str = flag(
        "auto",
        "auto: MirroredStrategy when more than one GPU is visible; multi_worker reads TF_CONFIG",
        STRATEGIES,
    )
    logical_cpus: int = flag(0, "split the CPU into N devices, to try --strategy mirrored")

    # Speed.
    jit_compile: str = flag(
        "auto", "XLA: auto picks what measured fastest for this model", JIT_COMPILE
    )
    mixed_precision: str = flag(
        "auto",
        "auto picks what measured fastest on this hardware without losing accuracy",
        MIXED_PRECISION,
    )

    # Outputs.
    run_dir: str | None = flag(
        None, "run folder; default runs/<recipe>/<timestamp>/. Re-use it to resume a killed run"
    )
    export_dir: str | None = flag(
        None, "SavedModel base path; default saved_models/<recipe>. Each export adds version N+1"
    )
    export: bool = flag(True, "export the trained model for TF Serving")
    backup_every: int = flag(
        0, "back up every N steps too; 0: every epoch, and every 5 minutes within long epochs"
    )
    verbose: str = flag(
        "auto",
        "Keras's log: 1 a live progress bar, 2 one line per epoch, 0 none; auto: 1 on a "
        "terminal, 2 when the output goes to a file or a pipe",
        VERBOSITY,
    )
    overwrite: bool = flag(False, "train afresh in an existing --run-dir (or search folder)")

    # Diagnostics (tfkit.diagnostics): they read training, never change it.
    grad_norm_every: int = flag(
        10, "gradient norms to gradients.csv every N steps (NaN checked every step); 0: off"
    )
    lr_find: bool = flag(
        False, "run the LR range test instead of training: lr_find.csv/.png/.json (004)"
    )

    # Hyperparameter search (002 §7.6), over the recipe's search_space.
    tune: bool = flag(False, "search hyperparameters with keras-tuner instead of one run")
    tuner: str = flag("random", "search algorithm (002 §7.6: grid, random, Bayesian)", TUNERS)
    max_trials: int = flag(10, "trials to run (Hyperband spends --epochs instead)")
    executions_per_trial: int = flag(1, "trainings per trial, averaged, to tame noise")
    objective: str | None = flag(None, "logged quantity to optimise; default: the recipe's")
    retrain_best: str | None = flag(
        None, "retrain the best trial of the search in DIR on train+validation, then export"
    )

    @property
    def scheduled(self):
        """True when the learning rate follows a schedule rather than staying put."""
        return self.lr_schedule != "constant" or self.warmup_epochs > 0

    def check_given(self, given):
        """Checks that need to know which flags the command gave, not only their values."""

    def fit_verbosity(self):
        """Keras's `verbose` for `fit`, from `--verbose`.

        Under auto: the live progress bar (1) on a terminal only. Written to a file or a
        pipe (a batch job, nohup, `| tee`) it is a stream of carriage-return redraws,
        so there one line per epoch (2), as Keras advises for non-interactive runs.
        """
        if self.verbose != "auto":
            return int(self.verbose)
        return 1 if hasattr(sys.stdout, "isatty") and sys.stdout.isatty() else 2

    @property
    def mode(self):
        """What runs instead of the training: "tune", "lr-find", "overfit-batches", or None."""
        return next(iter(self._modes()), None)

    def _modes(self):
        asked = {
            "tune": self.tune,
            "lr-find": self.lr_find,
            "overfit-batches": getattr(self, "overfit_batches", 0),  # classifiers only
        }
        return [mode for mode, value in asked.items() if value]

    def __post_init__(self):
        if isinstance(self.learning_rate, int):
            self.learning_rate = float(self.learning_rate)
        # First, for every float field, a recipe's own included: NaN slips through every
        # comparison (nan < 0 is False) and inf through most, so the ranges below assume
        # numbers they can compare.
        check_finite(self)
        check_at_least(self, 1, "epochs", "max_trials", "executions_per_trial", "max_pixels")
        _check(self.max_pixels < 2**63, "max_pixels must be < 2**63 (a 64-bit count)",
               max_pixels=self.max_pixels)  # fmt: skip
        check_at_least(self, 0, "logical_cpus", "backup_every", "grad_norm_every")
        check_at_least(self, 0, "warmup_epochs", "min_learning_rate", "time_limit")
        check_above(self, 0, "lr_decay_epochs")
        check_inside(self, 0, 1, "lr_decay_factor")
        _check(
            self.verbose in VERBOSITY,
            f"verbose must be one of {', '.join(VERBOSITY)}",
            verbose=self.verbose,
        )
        _check(
            not (self.tune and self.strategy == "multi_worker"),
            "--tune spreads over machines with keras-tuner's own chief and workers "
            "(docs/search.md), not with --strategy multi_worker",
            strategy=self.strategy,
        )
        _check(
            self.retrain_best is None
            or os.path.isfile(os.path.join(self.retrain_best, "best.json")),
            "retrain_best must be a --tune search folder holding best.json",
            retrain_best=self.retrain_best,
        )
        _check(
            not (self.tune and self.retrain_best),
            "--tune searches and --retrain-best trains the result; use one at a time",
            tune=self.tune,
            retrain_best=self.retrain_best,
        )
        _check(
            self.objective is None or self.objective in self.OBJECTIVES,
            f"objective must be one this model logs: {', '.join(self.OBJECTIVES)}",
            objective=self.objective,
        )
        _check(self.batch_size >= 1, "batch_size must be >= 1", batch_size=self.batch_size)
        _check(
            self.learning_rate == "auto"
            or (isinstance(self.learning_rate, float) and self.learning_rate > 0),
            "learning_rate must be > 0, or auto (the LR range test's suggestion)",
            learning_rate=self.learning_rate,
        )
        _check(
            not (self.tune and self.learning_rate == "auto"),
            "--tune searches the learning rate itself; give a number or leave the flag out",
            learning_rate=self.learning_rate,
        )
        _check(
            len(self._modes()) <= 1,
            "--tune, --lr-find and --overfit-batches each replace the training; use one",
            tune=self.tune,
            lr_find=self.lr_find,
        )
        for name in ("clipnorm", "clipvalue", "global_clipnorm"):
            value = getattr(self, name)
            _check(
                value is None or value > 0,
                f"{name} must be > 0 (Keras treats 0 as 'no clipping'; leave the flag out "
                "for that)",
                **{name: value},
            )
        clipping = {
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }
        _check(
            sum(value is not None for value in clipping.values()) <= 1,
            "Keras takes only one of clipnorm, clipvalue and global_clipnorm; choose one",
            **clipping,
        )
        _check(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {', '.join(OPTIMIZERS)}",
            optimizer=self.optimizer,
        )
        _check(
            self.max_examples is None or self.max_examples >= 2,
            "max_examples must be >= 2 (one for training, one for validation)",
            max_examples=self.max_examples,
        )
        _check(
            self.init_from is None or os.path.exists(self.init_from),
            "init_from must be a finished run's folder or a .keras file",
            init_from=self.init_from,
        )
        sources = _field(self, "data").metadata["choices"]  # a recipe may offer more
        _check(self.data in sources, f"data must be one of {', '.join(sources)}", data=self.data)
        _check(
            self.data in ("tfds", "synthetic") or self.data_dir is not None,
            f"--data {self.data} needs --data-dir pointing at the data",
            data_dir=self.data_dir,
        )
        _check(  # csv and images: the loader names what is there instead (exit 1)
            self.data != "dir" or os.path.isdir(self.data_dir),
            "data_dir is not a folder; give the path of the dataset's local copy",
            data_dir=self.data_dir,
        )


@dataclass
class ClassifierConfig(TrainConfig):
    """What a classifier adds: validation, class weights, regularisation, LR callbacks."""

    OBJECTIVES: ClassVar[tuple] = tuple(
        prefix + name
        for prefix in ("val_", "")
        for name in ("loss", "accuracy", "auc", "pr_auc", "precision", "recall", "f1")
    )

    data: str = flag(
        "tfds",
        "IMDB from tfds or synthetic; dir: aclImdb/ or any train/<class>/*.txt tree; csv: a "
        "table (.csv .tsv .jsonl .parquet) of texts and labels",
        (*DATA_SOURCES, "csv"),
    )
    text_column: str = flag("text", "--data csv: the column of the texts")
    label_column: str = flag("label", "--data csv: the column of the labels (any names)")
    baseline: bool = flag(
        True, "first train a linear baseline on the same splits (TF-IDF 1-2-grams or pixels)"
    )
    validation_split: float = flag(
        0.2, "fraction of the training split held out for validation (002 §2.2 uses 0.2)"
    )

    # Imbalanced classes (000, 004): weight the loss, or resample, or both with the bias.
    class_weight: str = flag(
        "none", "none | balanced (from label counts) | explicit, e.g. 0=1,1=3 (000, 004)"
    )
    oversample: bool = flag(False, "repeat the smaller classes: each epoch sees all equally often")
    undersample: bool = flag(
        False,
        "each epoch, only as many of every class as the smallest has (another part each time)",
    )
    initial_bias: str = flag(
        "none", "auto: start the output at the log prior of the classes trained on", INITIAL_BIAS
    )

    # Decided by the data, not a flag: two classes keep the documents' sigmoid output,
    # more get a softmax over K (`tfkit.metrics.classifier_head`).
    class_names: tuple = derived(("neg", "pos"), "the classes in label order")

    # Regularisation.
    l2: float = flag(0.0, "L2 kernel regulariser on the layers that have kernels (000, 001)")
    dropout: float = flag(0.0, "dropout rate before the output layer (002 §1.9)")

    # Callbacks.
    early_stopping_patience: int = flag(
        3, "epochs without val_loss improvement before stopping, best weights restored (004)"
    )
    reduce_lr_patience: int = flag(
        2, "epochs without val_loss improvement before the LR is cut (002 §1.22)"
    )
    reduce_lr_factor: float = flag(0.5, "factor the LR is cut by (002 §1.22: halve it)")

    # Fine-tuning a trained model (002 §7.5; 000: at 1e-4 to 1e-6), with --init-from.
    freeze: str | None = flag(
        None, "keep this layer (as model.summary() names it) and all before it fixed"
    )
    unfreeze_after_epochs: int = flag(
        0, "unfreeze --freeze's layers after N epochs, at the LR / --fine-tune-lr-factor; 0: never"
    )
    fine_tune_lr_factor: float = flag(10.0, "divide the LR by this when the layers unfreeze")

    # Cross-validation (003, 004 §2.2: when data is small).
    kfold: int = flag(
        0, "K trainings, each validated on another K-th of the training data: kfold.csv"
    )
    final: bool = flag(
        True, "after --kfold: one model on all training data for the mean best epoch, tested"
    )

    # Diagnostics.
    overfit_batches: int = flag(
        0, "capacity check instead of training: learn N fixed batches by heart (004)"
    )

    def __post_init__(self):
        super().__post_init__()
        check_at_least(
            self,
            0,
            "l2",
            "early_stopping_patience",
            "reduce_lr_patience",
            "overfit_batches",
            "unfreeze_after_epochs",
        )
        # The LR is divided by it at the unfreeze, epochs into the run: 0 would divide by zero.
        check_above(self, 0, "fine_tune_lr_factor")
        _check(0 <= self.dropout < 1, "dropout must be in [0, 1)", dropout=self.dropout)
        check_inside(self, 0, 1, "reduce_lr_factor")
        _check(0 <= self.validation_split < 1, "validation_split must be in [0, 1) (0: train on "
               "all the training data, for --epochs)", validation_split=self.validation_split)
        parse_class_weight(self.class_weight)  # raises ValueError when malformed
        _check(
            self.kfold == 0 or self.kfold >= 2, "kfold must be >= 2 (or 0: off)", kfold=self.kfold
        )
        _check(
            not (self.kfold and (self.mode or self.retrain_best)),
            "--kfold trains K models and a final one; it does not combine with --tune, "
            "--retrain-best, --lr-find or --overfit-batches",
            kfold=self.kfold,
            mode=self.mode or "retrain-best",
        )
        _check(
            not (self.oversample and self.undersample),
            "--oversample and --undersample are two ways to balance the classes; choose one",
            oversample=self.oversample,
            undersample=self.undersample,
        )
        _check(
            not (self.resample and self.class_weight != "none"),
            "class weights and resampling both correct the class mix, and together they "
            "over-correct it; use --class-weight or --oversample/--undersample",
            class_weight=self.class_weight,
            oversample=self.oversample,
            undersample=self.undersample,
        )

    @property
    def resample(self):
        """ "over", "under", or None: how the training split is balanced each epoch."""
        return "over" if self.oversample else "under" if self.undersample else None

    def check_given(self, given):
        super().check_given(given)
        if self.scheduled and "reduce_lr_patience" in given:
            raise ValueError(
                "--lr-schedule/--warmup-epochs and --reduce-lr-patience cannot go together: the "
                "LR cut on plateau would overwrite the scheduled LR (Keras cannot set a "
                "scheduled LR). Drop one of them"
            )


def parse_class_weight(text):
    """Parses `--class-weight`: "none", "balanced", or "label=weight,...".

    Returns:
        None, the string "balanced", or a dict {int label: float weight}.
    """
    if text in ("none", "balanced"):
        return None if text == "none" else text
    weights = {}
    try:
        for item in text.split(","):
            label, weight = item.split("=")
            weights[int(label)] = float(weight)
    except ValueError:
        raise ValueError(
            "class_weight must be none, balanced or label=weight pairs such as 0=1,1=3. "
            f"Received: class_weight={text!r}"
        ) from None
    if not all(math.isfinite(weight) and weight > 0 for weight in weights.values()):
        raise ValueError(f"class weights must be > 0 and finite. Received: class_weight={text!r}")
    return weights


def check_at_least(config, minimum, *names):
    """Raises ValueError naming the first of the `names` fields of `config` below `minimum`."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value}")


def check_finite(config):
    """Raises ValueError naming the first float field of `config` that is NaN or infinite."""
    for config_field in dataclasses.fields(config):
        value = getattr(config, config_field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"{config_field.name} must be a finite number. "
                f"Received: {config_field.name}={value}"
            )


def check_above(config, minimum, *names):
    """Raises ValueError naming the first of the `names` fields of `config` not above `minimum`."""
    for name in names:
        value = getattr(config, name)
        _check(value > minimum, f"{name} must be > {minimum}", **{name: value})


def check_inside(config, low, high, *names):
    """Raises ValueError naming the first of the `names` fields not strictly between the bounds."""
    for name in names:
        value = getattr(config, name)
        _check(low < value < high, f"{name} must be in ({low}, {high})", **{name: value})


def to_dict(config):
    """The config as a plain dict, for config.json."""
    return dataclasses.asdict(config)


def _field(config, name):
    return next(field for field in dataclasses.fields(config) if field.name == name)


def _check(condition, message, **received):
    if not condition:
        shown = ", ".join(f"{name}={value!r}" for name, value in received.items())
        raise ValueError(f"{message}. Received: {shown}")
