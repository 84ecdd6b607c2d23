"""SavedModel export in the TensorFlow Serving layout: `<base>/<version>/`.

Each export takes the next integer version, is written beside the others under a
temporary name and renamed into place, so TF Serving (which watches the base path)
never sees half a model and earlier versions are never touched.
"""

import os
import shutil
import tempfile

import tensorflow as tf
import keras

from tfkit.data.text import texts_to_ids


def next_version(export_dir):
    """One more than the highest integer version folder under `export_dir` (1 if none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()]
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

    os.makedirs(export_dir, exist_ok=True)
    version = next_version(export_dir)
    staging = tempfile.mkdtemp(dir=export_dir, prefix=f".tmp-{version}-")
    try:
        archive.write_out(staging, verbose=False)
        final = os.path.join(export_dir, str(version))
        os.rename(staging, final)  # fails, rather than overwrite, if the version appeared
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def export_text_classifier(
    export_dir, model, vectorizer, sequence_length, class_names=("neg", "pos")
):
    """Exports raw text in, the class out: the vectorizer and padding inside.

    The signature takes `text` (tf.string, shape [None]) and returns `probabilities`
    (float32, [None, K], in the order of `class_names`) and `label` (the likeliest
    class's name, tf.string, [None]); a two-class model also returns `probability`
    (float32, [None]), its sigmoid output, the probability of `class_names[1]`.
    """
    names = tf.constant(list(class_names))

    def serve(text):
        ids = texts_to_ids(vectorizer, text, sequence_length)
        probabilities = tf.cast(model(ids, training=False), tf.float32)
        outputs = {}
        if len(class_names) == 2:  # the sigmoid's output, as clients of earlier exports read it
            outputs["probability"] = tf.reshape(probabilities, [-1])
            probabilities = tf.stack([1.0 - outputs["probability"], outputs["probability"]], 1)
        outputs["probabilities"] = probabilities
        outputs["label"] = tf.gather(names, tf.argmax(probabilities, axis=1))
        return outputs

    texts_to_ids(vectorizer, tf.constant([""]), sequence_length)  # builds an unused layer
    signature = [tf.TensorSpec(shape=[None], dtype=tf.string, name="text")]
    return export_for_serving(export_dir, serve, signature, [vectorizer, model])
