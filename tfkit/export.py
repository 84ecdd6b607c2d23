"""SavedModel export in the TensorFlow Serving layout: `<base>/<version>/`.

Each export is written beside the others under a temporary name (`tfkit.files`) and
renamed into place as the next free integer version, so TF Serving (which watches the
base path) never sees half a model, earlier versions are never touched, and two
exports into one base at once take two versions.
"""

import os
import re

import keras
import tensorflow as tf

from tfkit import files
from tfkit.config import MAX_PIXELS
from tfkit.data.decode import picture_pixels
from tfkit.data.text import texts_to_ids
from tfkit.errors import RunStateError

CLASS_NAMES_SIGNATURE = "class_names"  # a classifier's classes, in the order of its probabilities
MAX_PIXELS_SIGNATURE = "max_pixels"  # a picture classifier's limit on a picture's pixels
# Pictures of a request decoded at once: memory grows with this times the largest, not
# with the request's size. Two (one per core here): 640x480 JPEGs 16% faster than one.
PICTURES_AT_ONCE = 2


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


def export_for_serving(
    export_dir, serve, input_signature, resources, class_names=None, constants=None
):
    """Writes `serve` as the `serving_default` signature of a new version.

    Args:
        export_dir: the model's base path, e.g. `saved_models/imdb_conv1d`.
        serve: a function from named input tensors to a dict of named outputs.
        input_signature: a list of `tf.TensorSpec`, each with a `name`.
        resources: the Keras layers and models `serve` uses, to be tracked.
        class_names: a classifier's classes, in the order of its `probabilities`: also
            exported as a second signature, `class_names`, which takes no input and
            returns them (`python -m tfkit predict` names its columns from it).
        constants: `{signature name: value}`, each exported as a signature that takes no
            input and returns `{name: value}` (a picture classifier's `max_pixels`).

    Returns:
        The path of the new version folder.
    """
    archive = keras.export.ExportArchive()
    for resource in resources:
        archive.track(resource)
    archive.add_endpoint("serving_default", serve, input_signature=input_signature)
    if class_names is not None:
        names = list(class_names)
        archive.add_endpoint(
            CLASS_NAMES_SIGNATURE, lambda: {"class_names": tf.constant(names)}, input_signature=[]
        )
    for name, value in (constants or {}).items():
        archive.add_endpoint(
            name, lambda name=name, value=value: {name: tf.constant(value)}, input_signature=[]
        )

    try:
        os.makedirs(export_dir, exist_ok=True)
    except OSError as error:
        raise RunStateError(
            f"--export-dir {export_dir} cannot be written ({error.strerror or error}); choose "
            "a folder you can write to (the run is trained: re-run with it to export)"
        ) from None
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
    return export_for_serving(export_dir, serve, signature, [vectorizer, model], class_names)


def export_image_classifier(export_dir, model, class_names, image_size=32, max_pixels=MAX_PIXELS):
    """Exports encoded pictures in, the class out: decoding, cropping and resizing inside.

    The signature takes `image_bytes` (tf.string, [None]: PNG, JPEG, GIF (first frame) or
    BMP files' bytes; TF Serving's REST API reads `{"b64": ...}` for an input so named)
    and returns `probabilities` (float32 [None, K], in the order of `class_names`) and
    `label` (tf.string [None]). Each picture goes through
    `tfkit.data.decode.picture_pixels` (upright by its EXIF orientation, transparency on
    white, centre-cropped, resized), the very function training read its files with, and
    is given to `model` as float pixels in [0, 255]. Bytes in another format fail the
    call with "not a PNG, JPEG, GIF or BMP file ...: convert it to PNG"; a picture whose
    header declares more than `max_pixels` pixels fails it before decoding ("...x...
    pixels, above the limit of ..."), and the limit is exported as the `max_pixels`
    signature. The pictures of a call are decoded `PICTURES_AT_ONCE` at a time, so its
    memory grows with the largest picture, not with their number.
    """
    names = tf.constant(list(class_names))

    def serve(image_bytes):
        pictures = tf.map_fn(
            lambda data: picture_pixels(data, image_size, max_pixels),
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
            parallel_iterations=PICTURES_AT_ONCE,
        )
        probabilities = tf.cast(model(tf.cast(pictures, tf.float32), training=False), tf.float32)
        if len(class_names) == 2:  # the sigmoid's output is the probability of class 1
            probabilities = tf.concat([1.0 - probabilities, probabilities], axis=1)
        return {
            "probabilities": probabilities,
            "label": tf.gather(names, tf.argmax(probabilities, axis=1)),
        }

    signature = [tf.TensorSpec(shape=[None], dtype=tf.string, name="image_bytes")]
    return export_for_serving(
        export_dir, serve, signature, [model], class_names, {MAX_PIXELS_SIGNATURE: max_pixels}
    )
