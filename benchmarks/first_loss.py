"""The first loss of every classifier recipe's default initialisation, for K classes.

What `tfkit.diagnostics.verdict.FirstLossCheck` judges: the loss of the first training
step (training mode, regularisation included) on one batch of the recipe's default size,
here of random inputs and uniform labels: token ids for the Conv1D and each RNN cell,
pixels for the ResNet, TF-IDF rows made by the recipe's own functions from Zipf-drawn
texts for text_ngrams (`--text-lengths`: IMDB-like, 100 to 2,000 n-grams, or every text
at the 2,000 cap). Each line gives the loss, ln K, the logit spread it implies (the sigma
whose `untrained_loss` it is), whether the check passes it, and the same for the model
with its output layer's weights scaled 10x (a broken start). One JSON line per model.

    python benchmarks/first_loss.py --recipes imdb_conv1d,cifar10_resnet --seeds 0,1,2
"""

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfkit.quiet  # noqa: F401,E402

import numpy as np  # noqa: E402
import keras  # noqa: E402

from tfkit.diagnostics.verdict import first_loss_range, untrained_loss  # noqa: E402

VARIANTS = {
    "imdb_conv1d": ("imdb_conv1d", {}),
    "imdb_rnn:simple_rnn": ("imdb_rnn", {"cell": "simple_rnn"}),
    "imdb_rnn:lstm": ("imdb_rnn", {"cell": "lstm"}),
    "imdb_rnn:gru": ("imdb_rnn", {"cell": "gru"}),
    "imdb_rnn:cnn_lstm": ("imdb_rnn", {"cell": "cnn_lstm"}),
    "imdb_rnn:bidirectional_lstm": ("imdb_rnn", {"cell": "lstm", "bidirectional": True}),
    "text_ngrams": ("text_ngrams", {}),
    "cifar10_resnet": ("cifar10_resnet", {}),
}


def implied_spread(loss, num_classes):
    """The sigma whose `untrained_loss` is `loss` (0 at or below ln K), by bisection."""
    low, high = 0.0, 100.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if untrained_loss(num_classes, middle) < loss else (low, middle)
    return low


def tf_idf_rows(config, lengths, texts, count, seed):
    """TF-IDF rows as text_ngrams makes them, of `texts` Zipf texts of `lengths` words (the
    IDF, ln(1 + N / (1 + df)), grows with their number N)."""
    import tensorflow as tf

    from tfkit.data.ngrams import inverse_document_frequency, tf_idf, vectorize_ngrams
    from tfkit.data.text import adapt_vectorizer

    rng = np.random.default_rng(seed)
    shares = 1 / np.arange(1, 40_001) ** 1.05
    shares /= shares.sum()
    if lengths == "imdb":  # median about 175 words, a long tail (IMDB's reviews)
        words = np.clip(rng.lognormal(np.log(175), 0.75, size=texts).astype(int), 10, 2500)
    elif lengths == "uniform":
        words = rng.integers(60, 1300, size=texts)
    else:  # every text past the cap
        words = np.full(texts, 1300)
    texts = np.array([" ".join(f"w{i}" for i in rng.choice(40_000, n, p=shares)) for n in words])
    vectorizer = adapt_vectorizer(texts, config.max_features, ngrams=config.ngrams)
    ids = vectorize_ngrams(vectorizer, texts, config.max_len)
    idf = inverse_document_frequency(ids, config.max_features)
    batch = ids[:count]
    if isinstance(batch, tf.RaggedTensor):  # the ids without their padding
        batch = batch.to_tensor(default_value=0)
    return np.asarray(tf_idf(batch, idf))


def inputs(recipe, config, count, rng, rows):
    if recipe == "text_ngrams":
        return rows[rng.choice(len(rows), count, replace=False)]
    if recipe == "cifar10_resnet":
        return rng.integers(0, 256, size=(count, 32, 32, 3)).astype("float32")
    return rng.integers(2, config.max_features, size=(count, config.max_len)).astype("int32")


def first_loss(model, x, y):
    """The loss `fit`'s first step logs: training mode, regularisation included."""
    return float(model.compute_loss(x=x, y=y, y_pred=model(x, training=True), training=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", default=",".join(VARIANTS))
    parser.add_argument("--classes", default="2,3,5,10,20")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--text-lengths", default="imdb", choices=("imdb", "uniform", "cap"))
    parser.add_argument("--texts", type=int, default=3000, help="texts the IDF is counted on")
    args = parser.parse_args()
    rows = None
    for variant in args.recipes.split(","):
        recipe, flags = VARIANTS[variant]
        module = __import__(f"recipes.{recipe}", fromlist=["build_model"])
        for k in map(int, args.classes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                names = tuple(f"class{i}" for i in range(k))
                config = module.Config(class_names=names, jit_compile="off", **flags)
                count = min(config.batch_size, 128)
                if recipe == "text_ngrams" and rows is None:
                    rows = tf_idf_rows(config, args.text_lengths, args.texts, 1000, 0)
                keras.backend.clear_session()
                keras.utils.set_random_seed(seed)
                model = module.build_model(config)
                rng = np.random.default_rng(seed)
                x = inputs(recipe, config, count, rng, rows)
                labels = rng.integers(0, k, size=count)
                y = labels.reshape(-1, 1).astype("float32") if k == 2 else labels.astype("int32")
                low, high = first_loss_range(math.log(k), k)
                loss = first_loss(model, x, y)
                output = model.layers[-1]
                output.set_weights([10 * weights for weights in output.get_weights()])
                scaled = first_loss(model, x, y)
                line = {
                    "recipe": variant,
                    "classes": k,
                    "seed": seed,
                    "text_lengths": args.text_lengths if recipe == "text_ngrams" else None,
                    "texts": args.texts if recipe == "text_ngrams" else None,
                    "first_loss": round(loss, 4),
                    "ln_k": round(math.log(k), 4),
                    "implied_spread": round(implied_spread(loss, k), 2),
                    "passes": low <= loss <= high,
                    "first_loss_10x": round(scaled, 4),
                    "implied_spread_10x": round(implied_spread(scaled, k), 2),
                    "alarms_10x": not low <= scaled <= high,
                }
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
