"""Labelled texts of one's own: a table (CSV, TSV, JSONL, Parquet) or a tree of class folders.

Both give `(texts, labels)` pairs like IMDB's, texts as UTF-8 bytes and labels as the
index of their class in `class_names`: the labels' values in natural order (numbers
by value, names alphabetically), the order `text_dataset_from_directory` gives folders.
Without a test table or test folder, `tfkit.data.splits.split_and_cap` holds a seeded,
stratified test split out of the training data.
"""

import os

import numpy as np
import pandas as pd

from tfkit.data.splits import TEST_SHARE
from tfkit.errors import DataError
from tfkit.tables import TABLE_FORMATS, read_table

IMDB_CLASSES = ("neg", "pos")


def read_tables(data_dir, text_column="text", label_column="label"):
    """The texts and labels of `data_dir`: a folder with `train.<ext>` (and maybe `test.<ext>`),
    or one table file.

    Rows with no text or no label are dropped and counted. CSV, TSV and JSONL are read
    as UTF-8 (a leading byte-order mark is dropped); a TSV has no quoting, so a quote is
    text, as in the tab-separated files spreadsheets and databases write.

    Returns:
        `(train, test, class_names, dropped)`: `(texts, labels)` pairs (test None when
        there is no test table), the class names in label order, and
        `{"train": n, "test": m}` rows dropped.

    Raises:
        DataError: no table, an unreadable one or one not in UTF-8, a missing column
        (naming what exists), a table without a labelled row (an empty file too), or a
        train table of fewer than two classes.
    """
    if not os.path.exists(data_dir):
        parent = os.path.dirname(os.path.abspath(data_dir))
        found = ", ".join(sorted(os.listdir(parent))) if os.path.isdir(parent) else "no folder"
        raise DataError(f"{data_dir} does not exist; {parent} holds: {found}")
    if os.path.isfile(data_dir):
        paths = {"train": data_dir, "test": None}
    else:
        paths = {split: _table_path(data_dir, split) for split in ("train", "test")}
        if paths["train"] is None:
            found = ", ".join(sorted(os.listdir(data_dir))) or "nothing"
            raise DataError(
                f"{data_dir} has no train table (train.csv, train.tsv, train.jsonl or "
                f"train.parquet); it holds: {found}"
            )
    tables, dropped = {}, {}
    for split, path in paths.items():
        if path is None:
            continue
        table = read_table(path)
        if table.empty:  # an empty file, or a header without rows
            raise DataError(_no_labelled_row(path, split, text_column, label_column))
        for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
            if column not in table.columns:
                raise DataError(
                    f"{path} has no column {column!r} ({flag}); its columns: "
                    + ", ".join(map(str, table.columns))
                )
        texts, labels = table[text_column], label_strings(table[label_column])
        keep = texts.notna() & (texts.astype(str).str.len() > 0) & labels.notna()
        if not keep.any():  # refused now: it would fail once the model is trained
            raise DataError(_no_labelled_row(path, split, text_column, label_column))
        dropped[split] = int((~keep).sum())
        tables[split] = (texts[keep].astype(str), labels[keep])
        if split == "train" and labels[keep].nunique() < 2:
            found = ", ".join(natural_order(labels[keep].unique())) or "no label"
            raise DataError(
                f"{path} needs two classes at least in column {label_column!r} "
                f"(--label-column); found: {found}"
            )
    class_names = natural_order(tables["train"][1].unique())
    if "test" in tables:
        unseen = natural_order(set(tables["test"][1].unique()) - set(class_names))
        if unseen:  # a typo ("Pos") would be a class the model never trains on
            raise DataError(
                f"{paths['test']}: label(s) {', '.join(unseen)} in column "
                f"{label_column!r} never occur in the training table (its labels: "
                f"{', '.join(class_names)}); fix or drop those rows"
            )
    pairs = {
        split: _as_pair(texts, labels, class_names) for split, (texts, labels) in tables.items()
    }
    return pairs["train"], pairs.get("test"), tuple(class_names), dropped


def read_class_folders(data_dir):
    """The `.txt` files of `train/<class>/` (and `test/<class>/`) under `data_dir`.

    An `aclImdb/` copy (in `data_dir` or being it) is read as IMDB: when `train/` holds
    neg/, pos/ and unsup/ and nothing else, unsup/ (unlabelled reviews) is left out.
    Any other set of folders, neg/ and pos/ among them or not, are all classes.

    Returns:
        `(train, test, class_names)`: `(texts, labels)` pairs, test None without `test/`.

    Raises:
        DataError: no `train/` folder, fewer than two classes, a training class without
        texts, or a `test/` folder without any.
    """
    import keras

    root = os.path.join(data_dir, "aclImdb")
    root = root if os.path.isdir(root) else data_dir
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if not os.path.isdir(train_dir):
        found = ", ".join(sorted(os.listdir(root))) or "nothing"
        raise DataError(
            f"{data_dir} has no train/ folder; it needs train/<class>/*.txt (and maybe "
            f"test/<class>/*.txt), or use --data csv for a table. It holds: {found}"
        )
    folders = class_folders(train_dir)
    if folders == {*IMDB_CLASSES, "unsup"}:
        class_names = IMDB_CLASSES  # aclImdb: unsup/ is unlabelled, not a class
    else:
        class_names = tuple(sorted(folders))
    if len(class_names) < 2:
        raise DataError(
            f"{train_dir} needs a folder of .txt files per class, two classes at least; "
            f"found: {', '.join(class_names) or 'no folder'}"
        )
    pairs = []
    for folder in (train_dir, test_dir):
        if folder == test_dir and not os.path.isdir(test_dir):
            pairs.append(None)
            continue
        missing = [c for c in class_names if not os.path.isdir(os.path.join(folder, c))]
        if missing:
            raise DataError(f"{folder} lacks the class folder(s) {', '.join(missing)}")
        extra = sorted(class_folders(folder) - set(class_names) - {"unsup"})
        if extra:  # its texts would be left out without a word
            raise DataError(
                f"{folder} has the class folder(s) {', '.join(extra)}, which {train_dir} lacks; "
                "every test class needs training texts"
            )
        if not _holds_texts(folder, class_names):  # Keras would say so with a ValueError
            way_out = "add some"
            if folder == test_dir:
                way_out += f", or remove it to hold out {TEST_SHARE:.0%} of {train_dir} instead"
            raise DataError(
                f"{folder} has no labelled text: no .txt file in its class folder(s) "
                f"{', '.join(class_names)}; {way_out}"
            )
        dataset = keras.utils.text_dataset_from_directory(
            folder, class_names=list(class_names), batch_size=None, shuffle=False, verbose=False
        )
        texts, labels = [], []
        for text, label in dataset.as_numpy_iterator():
            texts.append(text)
            labels.append(label)
        labels = np.array(labels, dtype="int32")
        empty = [name for i, name in enumerate(class_names) if not (labels == i).any()]
        if folder == train_dir and empty:
            raise DataError(f"{folder}: no .txt file in the class folder(s) {', '.join(empty)}")
        pairs.append((np.array(texts, dtype=object), labels))
    return pairs[0], pairs[1], class_names


def _no_labelled_row(path, split, text_column, label_column):
    way_out = "give its rows a text and a label"
    if split == "test":
        way_out += f", or remove it to hold out {TEST_SHARE:.0%} of the training table instead"
    return (
        f"{path} has no labelled row: none has both a text in column {text_column!r} "
        f"(--text-column) and a label in column {label_column!r} (--label-column); {way_out}"
    )


def natural_order(values):
    """Label values in order: by number when all are whole numbers, else alphabetically."""
    values = [str(value) for value in values]
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)


def _table_path(folder, split):
    for suffix in TABLE_FORMATS:
        path = os.path.join(folder, split + suffix)
        if os.path.isfile(path):
            return path
    return None


def label_strings(labels):
    """Labels as strings; 1.0 read from JSON or Parquet is the class "1", as in a CSV."""
    if pd.api.types.is_float_dtype(labels):
        whole = labels.dropna()
        if (whole == whole.round()).all():
            return labels.map(lambda value: None if pd.isna(value) else str(int(value)))
    return labels.map(lambda value: None if pd.isna(value) else str(value).strip() or None)


def _as_pair(texts, labels, class_names):
    index = {name: i for i, name in enumerate(class_names)}
    return (
        np.array([text.encode("utf-8") for text in texts], dtype=object),
        np.array([index[label] for label in labels], dtype="int32"),
    )


def _holds_texts(folder, class_names):
    """Whether any class folder of `folder` holds a `.txt` file, at any depth (as Keras reads)."""
    for name in class_names:
        for _, _, files in os.walk(os.path.join(folder, name), followlinks=True):
            if any(file.lower().endswith(".txt") for file in files):
                return True
    return False


def class_folders(folder):
    """The names of `folder`'s sub-folders, hidden ones left out."""
    return {
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name)) and not name.startswith(".")
    }
