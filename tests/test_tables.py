"""Table files: one dialect per format, read back as written by pandas' plain readers and ours."""

import csv

import numpy as np
import pandas as pd
import pytest

from tfkit import predict, tables
from tfkit.data import texts
from tfkit.errors import UsageError

TEXTS = [
    'He said "no", twice',
    '"starts with a quote',
    'ends with a quote"',
    "a, b; c",
    "café ☕ naïve 日本語 emoji 🙂",
    "",  # empty: a CSV or TSV reads it back as missing
    "trailing space ",
    "back\\slash and 'single'",
]
LINE_BREAKS = ["tab\there", "line one\nline two", "carriage\rreturn", "crlf\r\nend"]


def frame(rows):
    """A predict output: the input's columns, the label and a probability per class."""
    rng = np.random.default_rng(0)
    probability = rng.random(len(rows))
    return pd.DataFrame(
        {
            "text": rows,
            "id": [f"r{i}" for i in range(len(rows))],
            "predicted_label": ["a, b" if i % 2 else 'c "d"' for i in range(len(rows))],
            "probability_a": probability,
            "probability_b": 1 - probability,
        }
    )


PLAIN_READERS = {
    ".csv": pd.read_csv,
    ".tsv": lambda path: pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE),
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".parquet": pd.read_parquet,
}


def test_predict_and_the_data_loaders_share_one_reader_and_writer():
    assert predict.write_table is tables.write_table
    assert predict.read_table is tables.read_table is texts.read_table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_table_written_by_predict_reads_back_as_written(tmp_path, suffix):
    written = frame(TEXTS if suffix == ".tsv" else TEXTS + LINE_BREAKS)
    path = str(tmp_path / f"out{suffix}")
    predict.write_table(written, path)

    expected = written.copy()
    if suffix in (".csv", ".tsv"):  # an empty field is how both write a missing value
        expected["text"] = expected["text"].replace("", np.nan)
    plain = PLAIN_READERS[suffix](path)
    pd.testing.assert_frame_equal(plain, expected, check_exact=False, rtol=1e-12)

    ours = tables.read_table(path)  # CSV and TSV: every column as text
    assert ours.columns.tolist() == expected.columns.tolist()
    for column in ("text", "id", "predicted_label"):
        pd.testing.assert_series_equal(ours[column], expected[column], check_dtype=False)
    np.testing.assert_allclose(ours["probability_a"].astype(float), expected["probability_a"])


@pytest.mark.parametrize("text", LINE_BREAKS)
def test_a_tsv_refuses_a_tab_or_line_break_naming_the_row(tmp_path, text):
    path = tmp_path / "out.tsv"
    with pytest.raises(
        UsageError,
        match=rf"^{path}: a TSV has no quoting, so it cannot hold the tab or line break in row 3 "
        r"\(column 'text'\); write \.csv, \.jsonl or \.parquet instead$",
    ):
        predict.write_table(frame(["plain", "also plain", text]), str(path))
    assert not path.exists()


def test_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(UsageError, match=r"out.xlsx: a table is a \.csv, \.tsv"):
        tables.write_table(frame(["a"]), str(tmp_path / "out.xlsx"))
