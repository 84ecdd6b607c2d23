"""SavedModel export in the TensorFlow Serving layout: `<base>/<version>/`.

Each export is written beside the others under a temporary name (`tfkit.files`) and
renamed into place as the next free integer version, so TF Serving (which watches the
base path) never sees half a model, earlier versions are never touched, and two
exports into one base at once take two versions.
"""

import os
import re

import tensorflow as tf
import keras

from tfkit import files
from tfkit.data.text import texts_to_ids


def next_version(export_dir):
    """One more than the highest integer version folder under `export_dir` (1 if none)."""
    if not os.path.isdir(export_dir):
        return 1
    # ASCII digits only: "²".isdigit() is True, and int("²") fails.
    versions = [int(name) for name in os.listdir(export_dir) if re.fullmatch("[0-9]+", name)]
    return max(versions, default=0) + 1


def latest_version_dir(export_dir):
    """The folder of the highest version under `export_dir`.

    Raises:
        FileNotFoundError: there is no version folder.
    """
    version = next_version(export_dir) - 1
    if version < 1:
        raise FileNotFoundError(f"no exported version under {export_dir}")
    return os.path.join(export_dir, str(version))


def export_for_serving(export_dir, serve, input_signature, resources):
    """Writes `serve` as the `serving_default` signature of a new version.

    Args:
        export_dir: the model's base path, e.g. `saved_models/imdb_conv1d`.
        serve: a function from named input tensors to a dict of named outputs.
        input_signature: a list of `tf.TensorSpec`, each with a `name`.
        resources: the Keras layers and models `serve` uses, to be tracked.

    Returns:
        The path of the new version folder.
    """
    archive = keras.export.ExportArchive()
    for resource in resources:
        archive.track(resource)
    archive.add_endpoint("serving_default", serve, input_signature=input_signature)

    with files.temporary_folder(export_dir, "export") as staging:
        archive.write_out(staging, verbose=False)
        # The version is chosen and taken under a lock: another export into the same
        # base, at the same moment, takes the next one.
        with files.locked(export_dir):
            final = os.path.join(export_dir, str(next_version(export_dir)))
            files.publish_folder(staging, final)
    return final


def export_text_classifier(
    export_dir, model, vectorizer, sequence_length, class_names=("neg", "pos"), features=None
):
    """Exports raw text in, the class out: the vectorizer and padding inside.

    The signature takes `text` (tf.string, shape [None]) and returns `probabilities`
    (float32, [None, K], in the order of `class_names`) and `label` (the likeliest
    class's name, tf.string, [None]); a two-class model also returns `probability`
    (float32, [None]), its sigmoid output, the probability of `class_names[1]`.
    `features(text)` gives the model's inputs; by default the token ids of
    `texts_to_ids(vectorizer, text, sequence_length)`.
    """
    names = tf.constant(list(class_names))
    features = features or (lambda text: texts_to_ids(vectorizer, text, sequence_length))

    def serve(text):
        probabilities = tf.cast(model(features(text), training=False), tf.float32)
        outputs = {}
        if len(class_names) == 2:  # the sigmoid's output, as clients of earlier exports read it
            outputs["probability"] = tf.reshape(probabilities, [-1])
            probabilities = tf.stack([1.0 - outputs["probability"], outputs["probability"]], 1)
        outputs["probabilities"] = probabilities
        outputs["label"] = tf.gather(names, tf.argmax(probabilities, axis=1))
        return outputs

    features(tf.constant([""]))  # builds an unused layer
    signature = [tf.TensorSpec(shape=[None], dtype=tf.string, name="text")]
    return export_for_serving(export_dir, serve, signature, [vectorizer, model])
