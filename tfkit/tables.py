"""Table files, read and written in one dialect per format (the data loaders and `predict`).

- `.csv`: RFC 4180, as Excel and Python's `csv` write it: comma-separated, a field
  quoted only when it holds a comma, a quote (doubled) or a line break; lines end in
  CRLF, so a carriage return inside a text is quoted too (with `\\n` endings it was not,
  and split the row on reading).
- `.tsv`: tab-separated, no quoting, as spreadsheets and databases write it: a quote
  is text. It cannot hold a tab or a line break inside a field, so writing one is
  refused with the row's number (see `write_table`).
- `.jsonl`: one JSON object a line, UTF-8, unicode as it is.
- `.parquet`: Apache Parquet.

In CSV and TSV an empty field is missing, so an empty text reads back as missing; any
other text ("NA", "null", a leading quote) reads back as written. Text files are read as
UTF-8, a leading byte-order mark dropped.
"""

import csv
import io
import os

import pandas as pd

from tfkit.errors import DataError, UsageError
from tfkit.files import atomic_path

TABLE_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")
CSV_LINE_END = "\r\n"  # RFC 4180; a field holding either of its characters is quoted
TSV_UNWRITABLE = ("\t", "\n", "\r")  # a TSV without quoting has no way to hold these


def read_table(path):
    """One table file (.csv .tsv .jsonl .parquet) as a DataFrame of its values (an empty
    file: an empty DataFrame).

    Raises:
        DataError: another format, a file not in UTF-8, or one pandas cannot parse.
    """
    suffix = _suffix(path)
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        text = io.StringIO(_utf8_text(path))
        if suffix == ".jsonl":
            # dtype=False: values as written, no column converted to numbers or dates.
            return pd.read_json(text, lines=True, dtype=False, precise_float=True)
        # Only an empty field is missing: a text "NA" or "null" stays a text.
        return pd.read_csv(
            text,
            sep="\t" if suffix == ".tsv" else ",",
            quoting=csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except pd.errors.EmptyDataError:  # not a line in the file: a table without rows
        return pd.DataFrame()
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"{path} cannot be read as a {suffix[1:]} table: {error}") from None


def write_table(frame, path):
    """Writes `frame` to `path` (.csv, .tsv, .jsonl or .parquet, by its suffix), atomically.

    Raises:
        UsageError: another suffix, or a TSV that would hold a tab or a line break in a
            field (no quoting can keep it): names the row and the formats that can.
    """
    suffix = _suffix(path, error=UsageError)
    if suffix == ".tsv":
        check_tsv(frame, path)
    with atomic_path(path) as temporary:
        if suffix == ".parquet":
            frame.to_parquet(temporary, index=False)
        elif suffix == ".jsonl":
            frame.to_json(
                temporary, orient="records", lines=True, force_ascii=False, double_precision=15
            )
        elif suffix == ".tsv":
            frame.to_csv(
                temporary, sep="\t", quoting=csv.QUOTE_NONE, index=False, lineterminator="\n"
            )
        else:
            frame.to_csv(temporary, index=False, lineterminator=CSV_LINE_END)


def check_tsv(frame, path):
    """Refuses a frame a TSV cannot hold: a tab or line break in a column name or a text.

    Refused rather than escaped (`\\t`, `\\n` as PostgreSQL does): spreadsheets and
    pandas' plain reader do not unescape, so the file would read back other than written.
    """
    for column in frame.columns:
        if any(character in str(column) for character in TSV_UNWRITABLE):
            _refuse_tsv(path, f"the column name {str(column)!r}")
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue  # numbers and dates never hold one
        held = values.map(lambda v: isinstance(v, str) and any(c in v for c in TSV_UNWRITABLE))
        if held.any():
            row = int(held.to_numpy().argmax()) + 1
            _refuse_tsv(path, f"row {row} (column {column!r})")


def joined_texts(frame, columns):
    """The texts of `columns`, stripped and joined by a line break, empty parts left out
    ("" where every part is empty): how `tfkit train` and `predict` read a title and a body."""
    texts = None
    for column in columns:
        part = frame[column].astype(object).where(frame[column].notna(), "").astype(str).str.strip()
        texts = part if texts is None else (texts + "\n" + part).str.strip("\n")
    return texts


def leading_quotes(frame):
    """How many text fields of `frame` begin with a double quote.

    A TSV has no quoting and keeps them as written, but readers that assume CSV's quoting
    (pandas' `read_csv(sep="\t")` by default) take such a field for a quoted one.
    """
    texts = frame.select_dtypes(include=["object", "string"])
    return int(sum(texts[c].map(lambda v: isinstance(v, str) and v[:1] == '"').sum()
                   for c in texts.columns))  # fmt: skip


def _refuse_tsv(path, where):
    raise UsageError(
        f"{path}: a TSV has no quoting, so it cannot hold the tab or line break in {where}; "
        "write .csv, .jsonl or .parquet instead"
    )


def _suffix(path, error=DataError):
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_FORMATS:
        raise error(f"{path}: a table is a {', '.join(TABLE_FORMATS)} file, not {suffix or 'this'}")
    return suffix


def _utf8_text(path):
    """The text of a table file, without the byte-order mark Excel and Notepad may put first.

    Decoded here, not by pandas, so that every text format drops the mark (read_json does
    not) and a file in another encoding is named with the exact offset of its first bad byte.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at position "
            f"{error.start}); save it as UTF-8"
        ) from None
