"""`python -m tfkit predict`: label a table of texts or a folder of pictures with an export.

The export is loaded with `tf.saved_model.load` and run through its `serving_default`
signature, the graph TF Serving runs, so the labels are the ones a served model gives.
Its input says what it reads: `text` (the text recipes) or `image_bytes` (the image
classifier). The class names come from the export's `class_names` signature
(`tfkit.export.export_for_serving`).

A table (.csv .tsv .jsonl .parquet) keeps its columns and gets `predicted_label` and a
`probability_<class>` column per class; a folder of pictures gets a row per picture:
`path` (relative to the folder), `predicted_label` and the probabilities; its files are
read a batch at a time, so memory holds a batch, not the folder. A row without
a text, or a file that is not a picture, is skipped and named; the output is written
whole or not at all (`tfkit.files`), and only when something could be predicted.
"""

import os
import sys

import numpy as np
import pandas as pd
import tensorflow as tf

from tfkit.data.decode import error_reason
from tfkit.data.pictures import picture_files
from tfkit.errors import DataError, UsageError
from tfkit.export import CLASS_NAMES_SIGNATURE, latest_version_dir
from tfkit.tables import (
    TABLE_FORMATS,
    check_tsv,
    joined_texts,
    leading_quotes,
    read_table,
    write_table,
)

INPUTS = ("text", "image_bytes")
BATCH_BYTES = 64 * 2**20  # the inputs of one call, at most (one larger input goes alone)


def load_classifier(export_dir):
    """The `serving_default` function of the export at `export_dir`, its input name, its classes.

    `export_dir` is a version folder (`saved_models/x/3`) or the base that holds them
    (the newest version is taken).

    Raises:
        UsageError: no SavedModel there, or not a classifier that reads text or pictures.
    """
    path = export_dir
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        try:
            path = latest_version_dir(export_dir)
        except FileNotFoundError:
            raise UsageError(
                f"{export_dir} is not an export: give a version folder (holding saved_model.pb) "
                "or the base path holding 1/, 2/, ..."
            ) from None
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    inputs = sorted(serve.structured_input_signature[1])
    outputs = serve.structured_outputs
    if len(inputs) != 1 or inputs[0] not in INPUTS or "probabilities" not in outputs:
        raise UsageError(
            f"{path} takes {inputs} and returns {sorted(serve.structured_outputs)}: not a tfkit "
            "classifier export (input text or image_bytes, output probabilities)"
        )
    num_classes = serve.structured_outputs["probabilities"].shape[-1]
    if CLASS_NAMES_SIGNATURE in loaded.signatures:
        names = loaded.signatures[CLASS_NAMES_SIGNATURE]()["class_names"].numpy()
        class_names = [name.decode() for name in names]
    else:  # an export from before the signature: named from its labels as they come
        class_names = [None] * num_classes
    return serve, inputs[0], class_names, path


def predict_batches(serve, input_name, inputs, batch_size, progress=None):
    """Runs `serve` on `inputs` batch by batch; a batch that fails is retried input by input.

    `inputs` is a sequence, read one batch at a time: `PictureFiles` reads its files only
    then, so a folder of any size takes a batch of memory. A batch ends early once its
    inputs hold `BATCH_BYTES` (large files: 64 photos of 268 MB would be 17 GB at once).

    Returns:
        `(rows, failures)`: for each input that could be predicted, `(index,
        probabilities, label)`; for each that could not (or could not be read), `(index,
        reason)`, in the order of the inputs.
    """
    rows, failures = [], []
    index = 0
    while index < len(inputs):
        batch, values, size, end = [], [], 0, min(index + batch_size, len(inputs))
        while index < end and size < BATCH_BYTES:
            try:
                values.append(inputs[index])
                batch.append(index)
                size += len(values[-1])
            except OSError as error:  # a file gone or locked since the folder was listed
                failures.append((index, error.strerror or str(error)))
            index += 1
        try:
            rows += _run(serve, input_name, batch, values) if batch else []
        except tf.errors.InvalidArgumentError:  # one bad picture fails its whole batch
            for number, value in zip(batch, values):
                try:
                    rows += _run(serve, input_name, [number], [value])
                except tf.errors.InvalidArgumentError as error:
                    failures.append((number, error_reason(error)))
        if progress:
            progress.update(index)
    return rows, sorted(failures, key=lambda failure: failure[0])


def _run(serve, input_name, indices, values):
    outputs = serve(**{input_name: tf.constant(values)})
    probabilities = outputs["probabilities"].numpy()
    labels = [label.decode() for label in outputs["label"].numpy()]
    return list(zip(indices, probabilities, labels))


class PictureFiles:
    """The bytes of picture files as a sequence that reads a file only when indexed."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with open(self.paths[index], "rb") as file:
            return file.read()


def class_columns(class_names, rows):
    """`probability_<class>` column names; classes of an export without names are read
    from the labels it gave (its likeliest class), else `class_<i>`."""
    names = list(class_names)
    for _, probabilities, label in rows:
        if names[int(np.argmax(probabilities))] is None:
            names[int(np.argmax(probabilities))] = label
    return [f"probability_{name if name is not None else f'class_{i}'}"
            for i, name in enumerate(names)]  # fmt: skip


def read_inputs(path, input_name, text_column):
    """What to predict: `(frame of the input's own columns, inputs, skipped)`.

    A folder of pictures gives a frame of their paths and `PictureFiles`, read later, a
    batch at a time; a file that cannot be read then is skipped and named.

    Raises:
        UsageError: the input does not suit the export (a table for a picture model, a
        missing text column, a format not read).
        DataError: no such file or folder.
    """
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist; give a table ({', '.join(TABLE_FORMATS)}) or a "
                        "folder of pictures")  # fmt: skip
    suffix = os.path.splitext(path)[1].lower()
    if input_name == "image_bytes":
        if suffix in TABLE_FORMATS:
            raise UsageError(f"this export reads pictures: give a folder of them (or one), not "
                             f"the table {path}")  # fmt: skip
        if os.path.isdir(path):
            files = sorted(picture_files(path))
            names = [os.path.relpath(file, path) for file in files]
        else:
            files, names = [path], [os.path.basename(path)]
        return pd.DataFrame({"path": names}), PictureFiles(files), []
    if os.path.isdir(path) or suffix not in TABLE_FORMATS:
        raise UsageError(f"this export reads texts: give a table ({', '.join(TABLE_FORMATS)}) "
                         f"with a column of them, not {path}")  # fmt: skip
    table = read_table(path)
    columns = [name.strip() for name in text_column.split(",")]  # a title,body as tfkit train joined them
    absent = [name for name in columns if name not in table.columns]
    if absent:
        raise UsageError(f"{path} has no column {absent[0]!r} (--text-column); its columns: "
                         + ", ".join(map(str, table.columns)))  # fmt: skip
    texts = joined_texts(table, columns) if len(table) else table.get(columns[0], pd.Series([]))
    missing = (texts == "").to_numpy()
    reason = f"no text in column{'s' if len(columns) > 1 else ''} {text_column!r}"
    skipped = [(f"row {i + 1}", reason) for i in np.flatnonzero(missing)]
    table = table[~missing]  # its index keeps the rows' numbers (from 0)
    return table, [text.encode("utf-8") for text in texts[~missing]], skipped


def _refuse_taken(input_path, frame, columns):
    """Refuses an input that already has `predicted_label` or one of `columns`: its own
    values would be overwritten."""
    taken = sorted({"predicted_label", *columns} & set(map(str, frame.columns)))
    if taken:
        raise UsageError(
            f"{input_path} already has the column(s) {', '.join(taken)} that predict writes; "
            "rename them first"
        )


def predict(export_dir, input_path, output_path, text_column="text", batch_size=256):
    """Labels `input_path` with the export and writes `output_path`; returns the counts.

    Returns:
        `{"predicted": n, "skipped": [(name, reason), ...], "export": version folder}`.

    Raises:
        UsageError: a bad argument or an input that does not suit the export.
        DataError: nothing could be predicted (no output is written).
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1. Received: {batch_size}")
    suffix = os.path.splitext(output_path)[1].lower()
    if suffix not in TABLE_FORMATS:
        raise UsageError(
            f"--output must end in {', '.join(TABLE_FORMATS)}. Received: {output_path}"
        )
    if os.path.isdir(output_path):
        raise UsageError(f"--output {output_path} is a folder; give a file path")
    if os.path.exists(output_path) and os.path.samefile(output_path, input_path):
        raise UsageError(
            f"--output {output_path} is the input: write the labels to another file"
        )
    serve, input_name, class_names, version = load_classifier(export_dir)
    frame, inputs, skipped = read_inputs(input_path, input_name, text_column)
    # Refused before the work, not after it.
    if suffix == ".tsv":
        check_tsv(frame, output_path)
    _refuse_taken(input_path, frame, [f"probability_{n}" for n in class_names if n is not None])
    progress = None
    if sys.stdout.isatty() and inputs:
        import keras

        progress = keras.utils.Progbar(len(inputs), unit_name="input")
    rows, failures = predict_batches(serve, input_name, inputs, batch_size, progress)
    pictures = input_name == "image_bytes"
    for index, reason in failures:
        skipped.append((frame["path"].iloc[index] if pictures else f"row {frame.index[index] + 1}",
                        reason))  # fmt: skip
    if not rows:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(
            f"nothing in {input_path} could be predicted ({len(skipped)} skipped{first})"
        )
    rows.sort(key=lambda row: row[0])
    kept = [index for index, _, _ in rows]
    result = frame.iloc[kept].reset_index(drop=True)
    columns = class_columns(class_names, rows)
    _refuse_taken(input_path, result, columns)  # the names an export without them gave
    result["predicted_label"] = [label for _, _, label in rows]
    probabilities = pd.DataFrame(np.stack([p for _, p, _ in rows]), columns=columns)
    written = pd.concat([result, probabilities], axis=1)
    write_table(written, output_path)
    quoted = leading_quotes(written) if suffix == ".tsv" else 0
    if quoted:
        print(f"note: {quoted} text(s) of {output_path} begin with a quote, "
              "kept as written (TSV has no quoting): read it with pandas' "
              "read_csv(sep='\\t', quoting=csv.QUOTE_NONE)")  # fmt: skip
    return {"predicted": len(rows), "skipped": skipped, "export": version}
