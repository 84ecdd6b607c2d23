"""
Title: Text classification with a bag of word n-grams (TF-IDF)
Source: 004 (small data: start simple, establish a baseline); Deep Learning with Python, ch. 11
Description: Raw text -> TF-IDF of words and word pairs -> Dense(relu) -> Dropout -> your classes.
Data: IMDB reviews (tfds, an aclImdb/ copy, synthetic); yours: --data csv (a table), --data dir (train/<class>/*.txt), any number of classes
Run: python -m recipes.text_ngrams --data csv --data-dir my_texts.csv

The strongest model for small corpora: while the number of texts divided by their
mean length in words is under about 1,500 (Deep Learning with Python's rule of
thumb), a bag of bigrams beats a sequence model. Each text is turned into the ids of
its known words and word pairs once per run (`tfkit.data.ngrams`); every batch is then
counted and weighted by TF-IDF, as `TextVectorization(ngrams=2, output_mode="tf_idf")`
computes it, in the pipeline and in the exported model, which reads raw text.
"""

import tfkit.quiet  # noqa: F401  (first: hides TensorFlow's C++ start-up lines)

from dataclasses import dataclass
from functools import partial

import keras
from keras import layers

from tfkit import cli
from tfkit.callbacks import standard_callbacks
from tfkit.classifier import classifier_loss, classifier_output
from tfkit.config import ClassifierConfig, check_at_least, flag
from tfkit.data.ngrams import inverse_document_frequency, ngram_ids, tf_idf, vectorize_ngrams
from tfkit.data.text import batched_datasets, text_fit_arguments, text_ids, text_splits
from tfkit.distribute import chief_or_temporary, get_strategy
from tfkit.export import export_text_classifier
from tfkit.hardware import set_mixed_precision, use_jit_compile
from tfkit.metrics import classifier_metrics, evaluate_classifier
from tfkit.modes import run_mode
from tfkit.optim import class_weight_from_labels, optimizer_from_config
from tfkit.runs import finish_run, record_in_config, start_run
from tfkit.session import computed_policy
from tfkit.tune import best_config

RECIPE = "text_ngrams"


@dataclass
class Config(ClassifierConfig):
    ngrams: int = flag(2, "longest word n-gram: 2 counts words and word pairs (DLwP ch. 11)")
    max_features: int = flag(20_000, "n-grams kept, the commonest (DLwP ch. 11: 20,000)")
    max_len: int = flag(2_000, "known n-grams read per text, at most (longer texts are cut)")
    sublinear_tf: bool = flag(False, "count an n-gram 1 + ln(count) times (scikit-learn's sublinear_tf)")
    norm: str = flag("none", "l2: each text's TF-IDF scaled to unit length (scikit-learn's default)",
                     ("none", "l2"))  # fmt: skip
    units: int = flag(16, "width of the hidden Dense layer (DLwP ch. 11: 16); 0: none, a linear model")
    dropout: float = flag(0.5, "dropout before the output (DLwP ch. 11: 0.5)")
    learning_rate: float | str = flag(1e-3, "RMSprop's default; auto: --lr-find's")
    batch_size: int = flag(32, "small batches: many steps even on a few thousand texts")
    early_stopping_patience: int = flag(2, "a bag of n-grams overfits within a few epochs")

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, 1, "ngrams", "max_len")
        check_at_least(self, 0, "units")
        check_at_least(self, 3, "max_features")  # padding, [UNK] and one n-gram


def load_data(config, run):
    """The texts as n-gram ids, the vectorizer, the IDF and the `(train, val, test)` pipelines.

    The vectorizer is adapted on the training text (or comes with `--init-from`'s
    model); the IDF is counted on the training texts; every split is read once, into
    ragged rows of ids (`tfkit.data.ngrams`). Under `--kfold` each fold gets its own
    vocabulary and IDF, from its training part (`text_ids`, `tf_idf_of`).
    """
    texts = text_splits(config, run)  # also the linear baseline's
    splits, vectorizer = text_ids(config, texts, run.dir, config.ngrams, vectorize_ngrams)
    features = tf_idf_of(splits, config)
    datasets = batched_datasets(splits, config.batch_size, config.seed, config.resample, features)
    return splits, vectorizer, features, datasets


def tf_idf_of(splits, config):
    """The batch -> TF-IDF function, with the IDF of `splits`' training n-grams."""
    idf = inverse_document_frequency(splits.train[0], config.max_features)
    return partial(tf_idf, idf=idf, sublinear_tf=config.sublinear_tf, norm=config.norm)


def fit_arguments(config, splits):
    """`model.fit` arguments for the modes; a k-fold fold's TF-IDF has its own IDF."""
    return text_fit_arguments(config, splits, tf_idf_of(splits, config))


def build_model(config):
    """TF-IDF vectors of `max_features` n-grams -> Dense(units, relu) -> Dropout -> classes.

    `--units 0` leaves out the hidden layer: the linear model on TF-IDF, the baseline's.
    """
    l2 = keras.regularizers.L2(config.l2) if config.l2 else None
    num_classes = len(config.class_names)
    hidden = [layers.Dense(config.units, activation="relu", kernel_regularizer=l2)] if config.units else []
    model = keras.Sequential(
        [
            keras.Input(shape=(config.max_features,)),
            *hidden,
            layers.Dropout(config.dropout),
            # Two classes: one sigmoid, as the other text recipes; more: a softmax.
            classifier_output(num_classes),
        ],
        name=RECIPE,
    )
    model.compile(
        optimizer=optimizer_from_config(config),
        loss=classifier_loss(num_classes),
        metrics=classifier_metrics(num_classes),
        jit_compile=use_jit_compile(config.jit_compile, helps_on_cpu=False),
    )
    return model


def search_space(hp):
    """002 §7.3's order: learning rate; then batch size; then dropout, L2, width."""
    return {
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [16, 32, 64]),
        "dropout": hp.Float("dropout", 0.0, 0.6, step=0.1),
        "l2": hp.Choice("l2", [0.0, 1e-5, 1e-4]),
        "units": hp.Choice("units", [16, 32, 64]),
    }


def main(argv=None):
    config = cli.parse_config(Config, argv, prog=f"python -m recipes.{RECIPE}", description=__doc__)
    strategy = get_strategy(config.strategy, config.logical_cpus)  # before any TF op
    if config.retrain_best:  # the best trial of a --tune search, retrained
        config = best_config(RECIPE, config)
    # Seeds everything; claims the run folder (refused if busy or made by other flags).
    run = start_run(RECIPE, config, strategy)
    # Not measured faster under bfloat16 or XLA on CPU: auto keeps float32 there.
    set_mixed_precision(config.mixed_precision, bf16_helps_on_cpu=False)

    # Data: IMDB or your own texts (--data csv|dir), 20% of the training split held out
    # for validation; a linear baseline is trained on the same splits first; the test
    # split is used once, at the end.
    splits, vectorizer, features, (train, val, test) = load_data(config, run)
    config = record_in_config(run, config, class_names=splits.class_names)
    # --tune, --lr-find, --overfit-batches, --kfold and --learning-rate auto: tfkit.modes.
    config = run_mode(
        RECIPE, config, build_model, search_space, partial(fit_arguments, splits=splits),
        strategy, run, splits,
    )  # fmt: skip
    if config is None:
        return

    # Model and training; a killed or stopped run resumes where it was.
    with strategy.scope():
        model = build_model(config)
    model.summary()
    model.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        class_weight=class_weight_from_labels(splits.train[1], config.class_weight),
        callbacks=standard_callbacks(config, run, train, splits),
        verbose=config.fit_verbosity(),  # a progress bar on a terminal, else a line per epoch
    )

    # Evaluate on the validation and test splits, export for TF Serving, record the run.
    val_metrics = evaluate_classifier(model, val, config.class_names) if val else None
    test_metrics = evaluate_classifier(model, test, config.class_names)
    if config.export:
        export_dir = chief_or_temporary(config.export_dir or f"saved_models/{RECIPE}", strategy)
        exported = export_text_classifier(
            export_dir, model, vectorizer, None, config.class_names,
            features=lambda text: features(ngram_ids(vectorizer, text, config.max_len)),
        )  # fmt: skip
        print("exported:", exported)
    finish_run(run, splits, val=val_metrics, test=test_metrics,
               mixed_precision=computed_policy(model))  # what the layers computed in


if __name__ == "__main__":
    cli.run(main)
