"""Reading the data: what `DATA` is, which columns hold the label and the texts, and why.

`read_data` looks at a table file, a folder of `train.*`/`test.*` tables, a folder of
class folders or a folder with `train/` and `test/` class folders, and returns a
`Reading`: the kind (texts or pictures), the rows kept and dropped, the classes, and
one line per finding with its reason, printed before any training. What it cannot use
is a `UsageError` (exit 2) raised before anything is written.
"""

import dataclasses
import os

import numpy as np
import pandas as pd

from tfkit.config import MAX_PIXELS
from tfkit.data.splits import TEST_SHARE, stratified_sample
from tfkit.data.texts import class_folders, label_strings, natural_order
from tfkit.errors import DataError, UsageError
from tfkit.tables import TABLE_FORMATS, joined_texts, read_table

# Column names that mean "the label" in the tables people bring, in order of preference.
LABEL_NAMES = ("label", "labels", "target", "class", "category", "categories", "topic",
               "sentiment", "intent", "tag", "y")  # fmt: skip
# A column of "few distinct values": at most this many, and at most this share of the rows.
FEW_VALUES, FEW_SHARE = 100, 0.2
# A text column: string values of at least this many words on average (a title has 4 to
# 10; an id, a date, a name or a category has 1 or 2).
TEXT_MIN_WORDS = 3
# A label of numbers with more distinct values than this is a quantity, not a class.
MAX_NUMERIC_CLASSES = 20
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# Pictures the exported model cannot decode (`tfkit.data.decode`): refused before training.
UNSERVED_SUFFIXES = (".tif", ".tiff", ".webp", ".ppm")
TEXT_SUFFIXES = (".txt",)


@dataclasses.dataclass
class Reading:
    """What `read_data` found: enough to plan the candidates and to say why."""

    kind: str  # "texts" or "pictures"
    path: str
    layout: str  # how DATA was laid out, in words
    class_names: tuple
    class_counts: dict  # {class name: training rows}
    lines: list  # what was seen and why, one finding a line
    train: pd.DataFrame | None = None  # texts: columns text, label; pictures: file, name, label
    test: pd.DataFrame | None = None
    test_given: bool = False
    dropped: dict = dataclasses.field(default_factory=dict)  # {"empty text": n, ...}
    label_column: str | None = None
    text_columns: tuple = ()
    mean_words: float = 0.0  # texts: mean words per training text
    long_words: int = 0  # texts: words of the longest text but 5% (the 95th percentile)

    @property
    def rows(self):
        return sum(self.class_counts.values())


def read_data(path, text=None, label=None, seed=1337, max_pixels=MAX_PIXELS):
    """Reads `path` and says what it holds; `text` and `label` name table columns.

    Raises:
        UsageError: the data cannot be used, with the way out.
    """
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist; give a table (.csv .tsv .jsonl .parquet) or a folder")
    try:
        if os.path.isfile(path):
            return _read_tables(path, {"train": path}, text, label, seed)
        tables = {split: _table_in(path, split) for split in ("train", "test")}
        if tables["train"]:
            return _read_tables(path, {k: v for k, v in tables.items() if v}, text, label, seed)
        return _read_folders(path, seed, max_pixels)
    except DataError as error:  # unreadable, not UTF-8: the data, as the user gave it
        raise UsageError(str(error)) from None


def _read_tables(path, paths, text, label, seed):
    frames = {split: read_table(file) for split, file in paths.items()}
    train = frames["train"]
    if train.empty:
        raise UsageError(f"{paths['train']} has no rows")
    lines = [f"data: texts, from the table {paths['train']}"
             + (f" and the test table {paths['test']}" if "test" in paths else "")]  # fmt: skip
    label_column, why = _label_column(train, label, text)
    lines.append(f"label: column {label_column!r} ({why})")
    text_columns, why = _text_columns(train, label_column, text)
    joined = " joined, in this order" if len(text_columns) > 1 else ""
    lines.append(f"text: column(s) {', '.join(map(repr, text_columns))}{joined} ({why})")
    dropped = {}
    cleaned = {}
    for split, frame in frames.items():
        for column in (label_column, *text_columns):
            if column not in frame.columns:
                raise UsageError(f"{paths[split]} has no column {column!r}; its columns: "
                                 + ", ".join(map(str, frame.columns)))  # fmt: skip
        cleaned[split], counts = _texts_and_labels(frame, text_columns, label_column)
        for reason, count in counts.items():
            if count:
                dropped[f"{split}: {reason}"] = count
    where = {"train": "the training table" if "test" in paths else "the table", "test": "the test table"}
    for reason, count in dropped.items():
        split, why = reason.split(": ", 1)
        lines.append(f"dropped {count} row(s) of {where[split]}: {why}")
    train, test = cleaned["train"], cleaned.get("test")
    _check_classes(train, label_column)
    class_names = tuple(natural_order(train["label"].unique()))
    if test is not None:
        unseen = sorted(set(test["label"]) - set(class_names))
        if unseen:
            raise UsageError(f"{paths['test']}: label(s) {', '.join(unseen)} never occur in the "
                             "training table; fix or drop those rows")  # fmt: skip
        if test.empty:
            raise UsageError(f"{paths['test']} has no row with both a text and a label")
        lines.append(f"test: {len(test)} rows of {paths['test']}, as given")
        held_out = ""
    else:
        train, test = _hold_out_test(train, seed)
        held_out = " after holding out the test split"
        lines.append(f"test: {len(test)} rows held out ({TEST_SHARE:.0%}, stratified by class, "
                     f"seed {seed})")  # fmt: skip
    counts = {name: int((train["label"] == name).sum()) for name in class_names}
    lines.insert(3, f"rows: {len(train)} for training{held_out}, {len(class_names)} classes: "
                    + ", ".join(f"{name} {count}" for name, count in counts.items()))  # fmt: skip
    return Reading("texts", path, "tables" if "test" in paths else "a table", class_names,
                   counts, lines, train, test, "test" in paths, dropped, label_column,
                   tuple(text_columns), *_lengths(train))  # fmt: skip


def _label_column(frame, label, text):
    columns = [str(c) for c in frame.columns]
    if label is not None:
        if label not in columns:
            raise UsageError(f"no column {label!r} (--label); the columns: {', '.join(columns)}")
        return label, "--label"
    texts = set(text.split(",")) if text else set()
    by_name = {c.strip().lower(): c for c in columns if c not in texts}
    for name in LABEL_NAMES:
        if name in by_name:
            return by_name[name], "its conventional name"
    few = [c for c in columns if c not in texts and _few_values(frame[c])]
    if len(few) == 1:
        values = frame[few[0]].nunique()
        return few[0], f"the one column with few distinct values: {values}"
    found = (f"{', '.join(map(repr, few))} each have few distinct values" if few
             else "none has few distinct values")  # fmt: skip
    raise UsageError(f"no label column found among {', '.join(columns)} ({found}); "
                     "name it with --label COLUMN")  # fmt: skip


def _few_values(values):
    distinct = values.nunique()
    return 2 <= distinct <= min(FEW_VALUES, max(2, FEW_SHARE * len(values)))


def _text_columns(frame, label_column, text):
    if text is not None:
        names = [name.strip() for name in text.split(",") if name.strip()]
        missing = [name for name in names if name not in frame.columns]
        if missing or not names:
            raise UsageError(f"no column {', '.join(map(repr, missing)) or repr(text)} (--text); "
                             f"the columns: {', '.join(map(str, frame.columns))}")  # fmt: skip
        return names, "--text"
    words = {
        column: _mean_words(frame[column])
        for column in frame.columns
        if column != label_column and _is_text(frame[column])
    }
    long = [column for column, count in words.items() if count >= TEXT_MIN_WORDS]
    if not long:
        seen = ", ".join(f"{c!r} {n:.1f}" for c, n in words.items()) or "no column of strings"
        raise UsageError(f"no text column found (strings of {TEXT_MIN_WORDS}+ words on average; "
                         f"mean words: {seen}); name it with --text COLUMN")  # fmt: skip
    means = ", ".join(f"{words[c]:.0f}" for c in long)
    return long, f"strings of {means} words on average"


def _is_text(values):
    present = values.dropna()
    return len(present) > 0 and present.map(lambda v: isinstance(v, str)).all()


def _mean_words(values):
    return float(values.dropna().astype(str).str.split().str.len().mean())


def _texts_and_labels(frame, text_columns, label_column):
    """The table as `text`, `label` strings, and how many rows were dropped, by reason."""
    texts = joined_texts(frame, text_columns)
    labels = label_strings(frame[label_column])
    no_label = labels.isna()
    empty = ~no_label & (texts.str.strip() == "")
    keep = ~(no_label | empty)
    cleaned = pd.DataFrame({"text": texts[keep], "label": labels[keep]}).reset_index(drop=True)
    return cleaned, {"missing label": int(no_label.sum()), "empty text": int(empty.sum())}


def _check_classes(train, label_column, folders=False):
    labels = train["label"]
    if labels.empty:
        raise UsageError(f"no row has both a text and a label (column {label_column!r}); "
                         "fill them, or name other columns with --text and --label")  # fmt: skip
    numbers = pd.to_numeric(labels, errors="coerce")
    if not folders and numbers.notna().all() and labels.nunique() > MAX_NUMERIC_CLASSES:
        raise UsageError(f"column {label_column!r} holds {labels.nunique()} distinct numbers: a "
                         "regression target: tfkit trains classifiers (name another column "
                         "with --label)")  # fmt: skip
    counts = labels.value_counts()
    if len(counts) < 2:
        raise UsageError(f"column {label_column!r} has one class ({counts.index[0]}); a "
                         "classifier needs two at least")  # fmt: skip
    rare = counts[counts < 2]
    if len(rare) > len(counts) / 2:  # free text or an id named as the label
        raise UsageError(f"column {label_column!r} has {len(counts)} distinct values in "
                         f"{len(labels)} rows, {len(rare)} of them once: it holds texts or ids, "
                         "not classes; name the label column with --label")  # fmt: skip
    if len(rare):
        raise UsageError(f"class(es) {', '.join(map(str, rare.index[:10]))} of column "
                         f"{label_column!r} have a single example; give each class 2 or more "
                         "(better: dozens), or drop those rows")  # fmt: skip


def _hold_out_test(train, seed):
    """A stratified, seeded `TEST_SHARE` of the rows as the test split (the recipes' rule)."""
    names = natural_order(train["label"].unique())
    labels = train["label"].map({name: i for i, name in enumerate(names)}).to_numpy()
    rng = np.random.default_rng(seed)
    test_index = np.sort(stratified_sample(labels, round(len(labels) * TEST_SHARE), rng))
    rest = np.setdiff1d(np.arange(len(labels)), test_index)
    return train.iloc[rest].reset_index(drop=True), train.iloc[test_index].reset_index(drop=True)


def _table_in(folder, split):
    for suffix in TABLE_FORMATS:
        if os.path.isfile(os.path.join(folder, split + suffix)):
            return os.path.join(folder, split + suffix)
    return None


def _read_folders(path, seed, max_pixels=MAX_PIXELS):
    subfolders = sorted(class_folders(path))
    if "train" in subfolders:
        roots = {"train": os.path.join(path, "train")}
        if "test" in subfolders:
            roots["test"] = os.path.join(path, "test")
        layout = "train/ and test/ class folders" if "test" in roots else "train/ class folders"
    else:
        roots, layout = {"train": path}, "class folders"
    class_names = tuple(sorted(class_folders(roots["train"])))
    if len(class_names) < 2:
        raise UsageError(f"{roots['train']} needs a folder per class, two at least; found: "
                         f"{', '.join(class_names) or 'no folder'} (or give a table file)")  # fmt: skip
    unseen = sorted(class_folders(roots["test"]) - set(class_names)) if "test" in roots else []
    if unseen:
        raise UsageError(f"{roots['test']} has the class(es) {', '.join(unseen)} that "
                         f"{roots['train']} lacks; add them to train/ or take them out of test/")  # fmt: skip
    files = {split: _files_by_class(root, class_names) for split, root in roots.items()}
    kinds = _kinds(files)
    if len(kinds) != 1:
        found = ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "no file"
        raise UsageError(f"{path} mixes pictures and texts or holds neither ({found}); give "
                         "one kind of class folder (.txt texts, or PNG/JPEG/GIF/BMP pictures)")
    kind = next(iter(kinds))
    if kind == "pictures":
        return _read_pictures(path, layout, roots, class_names, files, seed, max_pixels)
    frames = {split: _text_frame(by_class) for split, by_class in files.items()}
    train, test = frames["train"], frames.get("test")
    dropped = {f"{split}: empty text": int(n) for split, frame in frames.items()
               if (n := (frame["text"].str.strip() == "").sum())}  # fmt: skip
    train, test = (f[f["text"].str.strip() != ""].reset_index(drop=True) if f is not None else None
                   for f in (train, test))  # fmt: skip
    lines = [f"data: texts, from {layout} in {path} (one .txt file a text, its folder the label)"]
    lines += [f"dropped {count} file(s) of {reason}" for reason, count in dropped.items()]
    empty = [name for name in class_names if not (train["label"] == name).any()]
    if empty:
        raise UsageError(f"class folder(s) {', '.join(empty)} of {roots['train']} hold no .txt "
                         "file with text; fill or remove them")  # fmt: skip
    _check_classes(train, "folder", folders=True)
    if test is None:
        train, test = _hold_out_test(train, seed)
        lines.append(f"test: {len(test)} texts held out ({TEST_SHARE:.0%}, stratified by class, "
                     f"seed {seed})")  # fmt: skip
    else:
        lines.append(f"test: {len(test)} texts of {roots['test']}, as given")
    counts = {name: int((train["label"] == name).sum()) for name in class_names}
    lines.insert(1, f"rows: {len(train)} texts for training, {len(class_names)} classes: "
                    + ", ".join(f"{n} {c}" for n, c in counts.items()))  # fmt: skip
    mean_words, long_words = _lengths(train)
    return Reading("texts", path, layout, class_names, counts, lines, train, test,
                   "test" in roots, dropped, mean_words=mean_words, long_words=long_words)  # fmt: skip


def _read_pictures(path, layout, roots, class_names, files, seed, max_pixels):
    """The picture files as frames of `file` (the path), `name` (its path in its class
    folder) and `label`; test held out as for texts when `test/` is not given."""
    unserved = [file for by_class in files.values() for paths in by_class.values()
                for file in paths if file.lower().endswith(UNSERVED_SUFFIXES)]  # fmt: skip
    if unserved:
        raise UsageError(f"{len(unserved)} picture(s) in a format the exported model cannot "
                         f"decode (it reads PNG, JPEG, GIF and BMP), e.g. {unserved[0]}: convert "
                         "them to PNG")  # fmt: skip
    frames, unreadable = {}, []
    for split, by_class in files.items():
        rows = []
        for name, paths in by_class.items():
            for file in paths:
                if not file.lower().endswith(PICTURE_SUFFIXES):
                    continue
                why = _unreadable_picture(file, max_pixels)
                if why is None:
                    rows.append((file, os.path.relpath(file, os.path.join(roots[split], name)), name))
                else:
                    unreadable.append(f"{os.path.relpath(file, path)} ({why})")
        frames[split] = pd.DataFrame(rows, columns=["file", "name", "label"])
    train, test = frames["train"], frames.get("test")
    lines = [f"data: pictures, from {layout} in {path} (one file a picture, its folder the label)"]
    if unreadable:
        lines.append(f"dropped {len(unreadable)} file(s) that are not readable pictures: "
                     + ", ".join(unreadable[:5]) + (" ..." if len(unreadable) > 5 else ""))  # fmt: skip
    _check_counts({name: int((train["label"] == name).sum()) for name in class_names})
    if test is None:
        train, test = _hold_out_test(train, seed)
        lines.append(f"test: {len(test)} pictures held out ({TEST_SHARE:.0%}, stratified by "
                     f"class, seed {seed})")  # fmt: skip
    counts = {name: int((train["label"] == name).sum()) for name in class_names}
    lines.insert(1, f"rows: {len(train)} pictures for training, {len(class_names)} classes: "
                    + ", ".join(f"{n} {c}" for n, c in counts.items()))  # fmt: skip
    if "test" in roots and test.empty:
        raise UsageError(f"{roots['test']} holds no picture in a class folder; put the test "
                         f"pictures in {roots['test']}/<class>/, or remove it to hold out a fifth")
    if "test" in roots:
        lines.append(f"test: {len(test)} pictures of {roots['test']}, as given")
    return Reading("pictures", path, layout, class_names, counts, lines, train, test,
                   "test" in roots)  # fmt: skip


def _unreadable_picture(file, max_pixels):
    """Why the file is left out, or None: Pillow does not recognise its header, or the
    header declares more than `max_pixels` pixels (its pixels are decoded by the recipe)."""
    from tfkit.data.pixel_limit import open_picture

    try:
        with open_picture(file, max_pixels):  # reads the header only
            return None
    except ValueError as error:
        return str(error)
    except OSError:
        return "not a picture"


def _lengths(train):
    """Mean words per text, and the 95th percentile of words per text."""
    words = train["text"].str.split().str.len()
    return float(words.mean()), int(np.ceil(np.percentile(words, 95)))


def _check_counts(counts):
    rare = [name for name, count in counts.items() if count < 2]
    if rare:
        raise UsageError(f"class(es) {', '.join(rare)} have fewer than 2 examples; give each "
                         "class 2 or more (better: dozens)")  # fmt: skip


def _files_by_class(root, class_names):
    files = {}
    for name in class_names:
        found = []
        for folder, subfolders, names in os.walk(os.path.join(root, name), followlinks=True):
            subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
            found += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
        files[name] = found
    return files


def _kinds(files):
    kinds = {}
    for by_class in files.values():
        for paths in by_class.values():
            for file in paths:
                suffix = os.path.splitext(file)[1].lower()
                kind = ("texts" if suffix in TEXT_SUFFIXES else
                        "pictures" if suffix in PICTURE_SUFFIXES else None)  # fmt: skip
                if kind:
                    kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _text_frame(by_class):
    rows = []
    for name, paths in by_class.items():
        for file in paths:
            if file.lower().endswith(TEXT_SUFFIXES):
                with open(file, encoding="utf-8", errors="replace") as handle:
                    rows.append((handle.read(), name))
    return pd.DataFrame(rows, columns=["text", "label"])
