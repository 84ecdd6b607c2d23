"""The text recipes on one's own data: tables, class folders, any number of classes."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recipes import imdb_conv1d, imdb_rnn, text_ngrams
from tfkit.data.texts import read_class_folders, read_tables
from tfkit.errors import DataError

TOPICS = ("billing", "bug", "feature", "login")


def tickets(count, seed=0):
    """Support tickets of four topics: each holds cue words of its topic among common words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(TOPICS), count)
    texts = []
    for label in labels:
        words = [f"w{i}" for i in rng.integers(0, 300, rng.integers(10, 40))]
        words += [f"{TOPICS[label]}{i}" for i in rng.integers(0, 8, rng.integers(2, 5))]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return pd.DataFrame({"body": texts, "topic": [TOPICS[label] for label in labels]})


def test_a_csv_with_quotes_commas_newlines_and_missing_fields(tmp_path):
    table = pd.DataFrame(
        {
            "text": ['He said "no", twice', "line one\nline two, with a comma", None, "NA", "ok"],
            "label": ["b", "a", "a", "c", None],
        }
    )
    table.to_csv(tmp_path / "train.csv", index=False)
    train, test, class_names, dropped = read_tables(str(tmp_path))
    assert class_names == ("a", "b", "c") and test is None
    assert dropped == {"train": 2}  # no text; no label
    assert list(train[0]) == [b'He said "no", twice', b"line one\nline two, with a comma", b"NA"]
    assert list(train[1]) == [1, 0, 2]


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_other_table_formats_and_a_test_table(tmp_path, suffix):
    frames = {"train": tickets(40), "test": tickets(12, seed=1)}
    for split, frame in frames.items():
        path = tmp_path / f"{split}{suffix}"
        if suffix == ".tsv":
            frame.to_csv(path, sep="\t", index=False)
        elif suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
    train, test, class_names, _ = read_tables(str(tmp_path), "body", "topic")
    assert class_names == TOPICS
    assert len(train[1]) == 40 and len(test[1]) == 12
    assert TOPICS[train[1][0]] == frames["train"]["topic"][0]


def test_numbers_as_labels_keep_their_order(tmp_path):
    pd.DataFrame({"text": list("abcd"), "label": [10, 2, 1, 2]}).to_json(
        tmp_path / "train.jsonl", orient="records", lines=True
    )
    _, _, class_names, _ = read_tables(str(tmp_path))
    assert class_names == ("1", "2", "10")


def test_missing_columns_and_files_are_one_line_naming_what_exists(tmp_path):
    tickets(5).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(
        DataError, match=r"no column 'text' \(--text-column\); its columns: body, topic"
    ):
        read_tables(str(tmp_path))
    with pytest.raises(DataError, match="no train table.*it holds: notes.txt"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("x")
        read_tables(str(tmp_path / "other"))


def test_class_folders_with_any_names(tmp_path):
    for split, frame in (("train", tickets(30)), ("test", tickets(10, seed=1))):
        for number, (text, topic) in enumerate(zip(frame["body"], frame["topic"])):
            folder = tmp_path / split / topic
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{number}.txt").write_text(text)
    train, test, class_names = read_class_folders(str(tmp_path))
    assert class_names == TOPICS and len(train[1]) == 30 and len(test[1]) == 10


def test_four_classes_train_evaluate_and_export_labels(tmp_path):
    data = tmp_path / "tickets.csv"
    tickets(400).to_csv(data, index=False)
    run, export = tmp_path / "run", tmp_path / "export"
    imdb_conv1d.main(
        ["--data", "csv", "--data-dir", str(data), "--text-column", "body"]
        + ["--label-column", "topic", "--run-dir", str(run), "--export-dir", str(export)]
        + ["--epochs", "2", "--batch-size", "32", "--max-len", "60", "--learning-rate", "3e-3"]
        + ["--class-weight", "balanced"]
    )
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == list(TOPICS)
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert np.array(test["confusion_matrix"]).shape == (4, 4)
    assert sum(map(sum, test["confusion_matrix"])) == metrics["test_examples"] == 80
    assert set(test["per_class"]) == set(TOPICS) and 0 <= test["macro_f1"] <= 1
    assert {"accuracy", "f1", "loss"} <= set(test)
    assert (run / "confusion.png").exists()
    assert metrics["diagnosis"]["first_loss"]["expected"] == pytest.approx(np.log(4), rel=0.01)

    # The export answers with the class names, checked with saved_model_cli.
    version = os.path.join(export, "1")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "run", "--dir", version, "--tag_set", "serve"]
        + ["--signature_def", "serving_default"]
        + ["--input_exprs", "text=['billing3 billing5 w1 w2', 'login1 login4 w3']"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Result for output key label" in result.stdout
    assert "Result for output key probabilities" in result.stdout
    assert "probability:" not in result.stdout.replace("probabilities", "")
    assert re.search(r"b'(billing|bug|feature|login)'", result.stdout)


def test_two_classes_of_a_table_keep_the_probability_output(tmp_path):
    frame = tickets(120)
    frame["topic"] = np.where(frame["topic"] == "bug", "urgent", "normal")
    frame.to_csv(tmp_path / "train.csv", index=False)
    export = tmp_path / "export"
    imdb_rnn.main(
        ["--data", "csv", "--data-dir", str(tmp_path), "--text-column", "body"]
        + ["--label-column", "topic", "--run-dir", str(tmp_path / "run")]
        + ["--export-dir", str(export), "--epochs", "1", "--max-len", "40", "--units", "8"]
    )
    import tensorflow as tf

    serve = tf.saved_model.load(os.path.join(export, "1")).signatures["serving_default"]
    out = serve(text=tf.constant(["w1 bug3", "w2"]))
    assert set(out) == {"probability", "probabilities", "label"}
    assert out["probabilities"].shape == (2, 2)
    np.testing.assert_allclose(out["probabilities"][:, 1], out["probability"], atol=1e-6)
    assert set(out["label"].numpy()) <= {b"normal", b"urgent"}


def test_a_missing_table_path_is_a_failure_naming_what_is_there(tmp_path):
    (tmp_path / "tickets.csv").write_text("text,label\na,b\n")
    command = ["--data", "csv", "--data-dir", str(tmp_path / "ticket.csv")]
    with pytest.raises(DataError, match="ticket.csv does not exist; .* holds: .*tickets.csv"):
        imdb_conv1d.main(command + ["--run-dir", str(tmp_path / "run")])  # DataError: exit 1


def test_a_search_of_four_classes_refuses_an_objective_they_do_not_log(tmp_path):
    from tfkit.errors import UsageError

    tickets(60).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UsageError, match="--objective val_auc: a model of 4 classes logs"):
        imdb_conv1d.main(
            ["--data", "csv", "--data-dir", str(tmp_path), "--text-column", "body"]
            + ["--label-column", "topic", "--tune", "--objective", "val_auc"]
            + ["--run-dir", str(tmp_path / "search")]
        )


def test_class_folders_named_neg_and_pos_among_others_keep_every_class(tmp_path):
    for name in ("neg", "neu", "pos"):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / "0.txt").write_text(f"a {name} text")
    _, _, class_names = read_class_folders(str(tmp_path))
    assert class_names == ("neg", "neu", "pos")
    # The aclImdb layout: unsup/ beside neg/ and pos/ is unlabelled, not a class.
    (tmp_path / "train" / "neu").rename(tmp_path / "train" / "unsup")
    train, _, class_names = read_class_folders(str(tmp_path))
    assert class_names == ("neg", "pos") and len(train[1]) == 2


def test_a_tsv_reads_quotes_as_text(tmp_path):
    rows = ['"quoted at the start\ta', "plain\tb", 'a "quote" inside\ta', '"\tb', "last\ta"]
    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    train, _, class_names, _ = read_tables(str(tmp_path))
    assert [text.decode() for text in train[0]] == [row.split("\t")[0] for row in rows]
    assert class_names == ("a", "b") and list(train[1]) == [0, 1, 0, 1, 0]


def test_a_table_of_one_class_is_one_line_naming_the_column(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame({"body": ["a", "b", "c"], "kind": ["spam"] * 3}).to_csv(path, index=False)
    with pytest.raises(
        DataError,
        match=rf"{path} needs two classes at least in column 'kind' \(--label-column\); "
        r"found: spam$",
    ):
        read_tables(str(tmp_path), "body", "kind")


UNLABELLED = {
    "empty file": b"",
    "a header only": b"body,topic\n",
    "no label": b"body,topic\na text,\nanother,\n",
    "no text": b"body,topic\n,bug\n,login\n",
}


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("content", UNLABELLED.values(), ids=UNLABELLED.keys())
def test_a_table_without_a_labelled_row_is_one_line_naming_its_columns(tmp_path, split, content):
    tickets(20).to_csv(tmp_path / "train.csv", index=False)
    path = tmp_path / f"{split}.csv"
    path.write_bytes(content)
    way_out = "remove it to hold out 20% of the training table instead" if split == "test" else ""
    with pytest.raises(
        DataError,
        match=rf"^{path} has no labelled row: none has both a text in column 'body' "
        r"\(--text-column\) and a label in column 'topic' \(--label-column\); give its rows a "
        rf"text and a label.*{way_out}$",
    ):
        read_tables(str(tmp_path), "body", "topic")


def test_a_test_table_without_labels_is_refused_before_training(tmp_path):
    tickets(40).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "test.csv").write_text("body,topic\nno label here,\n")
    run = tmp_path / "run"
    with pytest.raises(DataError, match="test.csv has no labelled row"):  # DataError: exit 1
        imdb_conv1d.main(["--data", "csv", "--data-dir", str(tmp_path), "--text-column", "body",
                          "--label-column", "topic", "--epochs", "1", "--no-baseline",
                          "--no-export", "--run-dir", str(run)])  # fmt: skip
    assert not (run / "history.csv").exists()


def test_a_test_folder_without_texts_is_refused(tmp_path):
    for split in ("train", "test"):
        for name in ("neg", "pos"):
            os.makedirs(tmp_path / split / name)
            if split == "train":
                (tmp_path / split / name / "1.txt").write_text(f"a {name} text")
    test_dir = tmp_path / "test"
    with pytest.raises(
        DataError,
        match=rf"^{test_dir} has no labelled text: no \.txt file in its class folder\(s\) neg, "
        r"pos; add some, or remove it to hold out 20% of .*train instead$",
    ):
        read_class_folders(str(tmp_path))


def test_an_empty_test_split_is_refused_before_training():
    from tfkit.data.splits import split_and_cap

    texts = np.array([b"a", b"b", b"c", b"d"], dtype=object)
    train, empty = (texts, np.array([0, 1, 0, 1])), (texts[:0], np.zeros(0, dtype="int32"))
    with pytest.raises(DataError, match="the test split has no example"):
        split_and_cap(train, empty, "csv", 0.25, seed=0)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_table_with_a_byte_order_mark_reads_as_without(tmp_path, suffix):
    frame = pd.DataFrame({"text": ["café au lait", "tea"], "label": ["b", "a"]})
    if suffix == ".jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
    else:
        text = frame.to_csv(sep="\t" if suffix == ".tsv" else ",", index=False)
    (tmp_path / f"train{suffix}").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    train, _, class_names, _ = read_tables(str(tmp_path))
    assert list(train[0]) == ["café au lait".encode(), b"tea"] and list(train[1]) == [1, 0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_table_not_in_utf8_is_one_line_naming_the_byte(tmp_path, suffix):
    lines = {
        ".csv": "text,label\ntea,a\ncafé,b\n",
        ".tsv": "text\tlabel\ntea\ta\ncafé\tb\n",
        ".jsonl": '{"text": "tea", "label": "a"}\n{"text": "café", "label": "b"}\n',
    }[suffix]
    raw = lines.encode("latin-1")  # as a spreadsheet saves "ANSI" text
    path = tmp_path / f"train{suffix}"
    path.write_bytes(raw)
    with pytest.raises(
        DataError,
        match=rf"^{path} is not UTF-8 text \(byte 0xe9 at position {raw.index(0xE9)}\); "
        "save it as UTF-8$",
    ):
        read_tables(str(tmp_path))


def test_a_test_label_never_trained_on_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "a fine film,pos\na dull film,neg\n" * 5)
    (tmp_path / "test.csv").write_text("text,label\nfine,Pos\ndull,neg\n")
    with pytest.raises(DataError, match=r"test.csv: label\(s\) Pos .* never occur in the training"):
        read_tables(str(tmp_path))


def test_a_test_class_folder_without_training_texts_is_refused(tmp_path):
    for split, classes in (("train", ("neg", "pos")), ("test", ("neg", "neu", "pos"))):
        for name in classes:
            os.makedirs(tmp_path / split / name)
            (tmp_path / split / name / "1.txt").write_text(f"a {name} text")
    with pytest.raises(DataError, match="class folder\\(s\\) neu, which .* lacks"):
        read_class_folders(str(tmp_path))


def test_a_class_left_without_training_examples_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood fine,pos\nbad awful,neg\n")
    (tmp_path / "test.csv").write_text("text,label\ngood fine,pos\nbad awful,neg\n")
    with pytest.raises(DataError, match="class\\(es\\) .* keep no training example"):
        imdb_conv1d.main(["--data", "csv", "--data-dir", str(tmp_path), "--epochs", "1",
                          "--no-export", "--run-dir", str(tmp_path / "run")])  # fmt: skip


def test_a_table_of_texts_without_words_is_one_line_not_a_traceback(tmp_path):
    texts = ["!!!", "...", "   ", "?!", "--", "::"] * 3
    rows = "".join(f'"{text}",{"ab"[i % 2]}\n' for i, text in enumerate(texts))
    (tmp_path / "texts.csv").write_text("text,label\n" + rows)
    with pytest.raises(DataError, match="training texts hold no words"):
        text_ngrams.main(["--data", "csv", "--data-dir", str(tmp_path / "texts.csv"),
                          "--epochs", "1", "--no-export", "--run-dir", str(tmp_path / "run")])  # fmt: skip
