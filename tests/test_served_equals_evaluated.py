"""Served equals evaluated: for every classifier recipe, the export labels the test split as
the run's own evaluation did (metrics.json's test confusion matrix and accuracy).

A served label that disagrees with training is the worst kind of bug: the run's numbers
look right while the model in production answers something else.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from recipes import cifar10_resnet, imdb_conv1d, imdb_rnn, text_ngrams
from test_own_texts import TOPICS, tickets

pytestmark = pytest.mark.slow


def served(export, **inputs):
    serve = tf.saved_model.load(os.path.join(export, "1")).signatures["serving_default"]
    outputs = serve(**{name: tf.constant(value) for name, value in inputs.items()})
    return [label.decode() for label in outputs["label"].numpy()], outputs["probabilities"].numpy()


def assert_served_as_evaluated(run, labels, true, class_names, probabilities):
    test = json.loads((run / "metrics.json").read_text())["test"]
    index = {name: i for i, name in enumerate(class_names)}
    matrix = np.zeros((len(class_names),) * 2, dtype=int)
    for truth, label in zip(true, labels):
        matrix[index[truth], index[label]] += 1
    assert matrix.tolist() == test["confusion_matrix"]
    assert np.mean(np.array(labels) == np.array(true)) == pytest.approx(test["accuracy"])
    # The label is the likeliest class of the probabilities served with it.
    assert [class_names[i] for i in probabilities.argmax(axis=1)] == labels


@pytest.mark.parametrize(
    "recipe, flags",
    [
        (imdb_conv1d, ["--max-len", "60", "--learning-rate", "3e-3"]),
        (imdb_conv1d, ["--max-len", "60", "--learning-rate", "3e-3", "--mixed-precision", "bf16"]),
        (imdb_rnn, ["--cell", "lstm", "--max-len", "40", "--units", "8"]),
        (text_ngrams, []),
    ],
    ids=["conv1d", "conv1d-bf16", "lstm", "text_ngrams"],
)
def test_a_text_recipes_export_labels_the_test_split_as_evaluated(tmp_path, recipe, flags):
    tickets(320, seed=1).to_csv(tmp_path / "train.csv", index=False)
    test_table = tickets(80, seed=2)
    test_table.to_csv(tmp_path / "test.csv", index=False)
    run, export = tmp_path / "run", tmp_path / "export"
    recipe.main(
        ["--data", "csv", "--data-dir", str(tmp_path), "--text-column", "body"]
        + ["--label-column", "topic", "--run-dir", str(run), "--export-dir", str(export)]
        + ["--epochs", "2", "--batch-size", "32", "--no-baseline", *flags]
    )
    labels, probabilities = served(export, text=list(test_table["body"]))
    assert_served_as_evaluated(run, labels, list(test_table["topic"]), TOPICS, probabilities)


def test_the_image_classifiers_export_labels_the_test_pictures_as_evaluated(tmp_path):
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
    true, files = [], []
    for split, count in (("train", 16), ("test", 6)):
        for name, colour in colours.items():
            folder = tmp_path / "pictures" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(colour, 40, (40, 48, 3)), 0, 255).astype("uint8")
                Image.fromarray(pixels).save(folder / f"{i}.png")
                if split == "test":
                    true.append(name)
                    files.append((folder / f"{i}.png").read_bytes())
    run, export = tmp_path / "run", tmp_path / "export"
    cifar10_resnet.main(
        ["--data", "images", "--data-dir", str(tmp_path / "pictures"), "--depth", "8"]
        + ["--filters", "4", "--epochs", "2", "--batch-size", "16", "--no-baseline"]
        + ["--run-dir", str(run), "--export-dir", str(export)]
    )
    # The test split is read in class order, file by file: as `true` was built.
    labels, probabilities = served(export, image_bytes=files)
    assert_served_as_evaluated(run, labels, true, sorted(colours), probabilities)
