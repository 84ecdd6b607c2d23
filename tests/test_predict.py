import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from recipes import text_ngrams
from tfkit import predict as predict_module
from tfkit.__main__ import main
from tfkit.export import export_for_serving, export_image_classifier

TOPICS = {"sport": "match goal team win coach", "politics": "vote law minister budget party",
          "tech": "software chip phone data network"}  # fmt: skip


def topic_texts(count, seed):
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "of", "and", "to", "in", "is", "it", "that"]
    rows = []
    for i in range(count):
        label = list(TOPICS)[i % 3]
        words = list(rng.choice(TOPICS[label].split(), 3)) + list(rng.choice(filler, 8))
        rng.shuffle(words)
        rows.append({"id": f"t{i:03d}", "text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
        raise SystemExit(0)
    return exit.value.code, capsys.readouterr()


def test_a_text_export_labels_a_table_keeping_its_columns(tmp_path, capsys):
    topic_texts(300, 0).drop(columns="id").to_csv(tmp_path / "train.csv", index=False)
    text_ngrams.main(["--data", "csv", "--data-dir", str(tmp_path / "train.csv"), "--epochs", "8",
                      "--no-baseline", "--run-dir", str(tmp_path / "run"),
                      "--export-dir", str(tmp_path / "export")])  # fmt: skip
    new = topic_texts(60, 1)
    new.loc[5, "text"] = ""  # an empty field: no text, skipped and named
    new.to_csv(tmp_path / "new.csv", index=False)
    output = tmp_path / "labels.csv"
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(tmp_path / "new.csv"),
                             "--output", str(output), "--batch-size", "16"], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert "skipped row 6: no text in column 'text'" in printed.err
    assert "predicted 59, skipped 1" in printed.out
    labels = pd.read_csv(output, dtype={"id": str})
    assert list(labels.columns) == ["id", "text", "label", "predicted_label",
                                    "probability_politics", "probability_sport", "probability_tech"]  # fmt: skip
    assert list(labels["id"]) == [i for i in new["id"] if i != "t005"]
    assert (labels["predicted_label"] == labels["label"]).mean() >= 0.95
    np.testing.assert_allclose(labels.filter(like="probability_").sum(axis=1), 1.0, rtol=1e-5)
    # A title and a body, as `tfkit train` joins them: the labels of the text they make.
    words = new["text"].str.split()
    split = new.assign(title=words.str[:4].str.join(" "), body=words.str[4:].str.join(" "))
    split.drop(columns="text").to_csv(tmp_path / "split.csv", index=False)
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(tmp_path / "split.csv"),
                             "--output", str(tmp_path / "split_labels.csv"), "--text-column",
                             "title,body"], capsys)  # fmt: skip
    assert code == 0 and "predicted 59, skipped 1" in printed.out, printed.err
    joined = pd.read_csv(tmp_path / "split_labels.csv", dtype={"id": str})
    assert list(joined["predicted_label"]) == list(labels["predicted_label"])
    # An input that already has a column predict writes is refused, not overwritten.
    new.assign(predicted_label="mine").to_csv(tmp_path / "clash.csv", index=False)
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input",
                             str(tmp_path / "clash.csv"), "--output", str(tmp_path / "o.csv")],
                            capsys)  # fmt: skip
    assert code == 2 and "already has the column(s) predicted_label" in printed.err
    assert not (tmp_path / "o.csv").exists()
    # The input itself, or a folder, as the output: refused before any work.
    before = (tmp_path / "new.csv").read_bytes()
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(tmp_path / "new.csv"),
                             "--output", str(tmp_path / "." / "new.csv")], capsys)  # fmt: skip
    assert code == 2 and "is the input" in printed.err
    assert (tmp_path / "new.csv").read_bytes() == before
    (tmp_path / "folder.csv").mkdir()
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input", str(tmp_path / "new.csv"),
                             "--output", str(tmp_path / "folder.csv")], capsys)  # fmt: skip
    assert code == 2 and "is a folder" in printed.err
    # A TSV keeps a text that begins with a quote as written, and says how to read it back.
    quoted = new.assign(text='"goal" said the coach: ' + new["text"])
    quoted.to_csv(tmp_path / "quoted.csv", index=False)
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input",
                             str(tmp_path / "quoted.csv"), "--output", str(tmp_path / "q.tsv")],
                            capsys)  # fmt: skip
    assert code == 0 and "quoting=csv.QUOTE_NONE" in printed.out
    back = pd.read_csv(tmp_path / "q.tsv", sep="\t", quoting=3, dtype=str, keep_default_na=False)
    assert list(back["text"]) == list(quoted["text"])


def picture_export(tmp_path, class_names=("cat", "dog")):
    # A linear model: these tests are about reading pictures, and a ResNet's export takes 6 s.
    layers = [keras.layers.Rescaling(1 / 255), keras.layers.Flatten(), keras.layers.Dense(1)]
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), *layers, keras.layers.Activation("sigmoid")]
    )
    return export_image_classifier(str(tmp_path / "export"), model, class_names)


def test_a_picture_folder_gets_a_row_per_picture_and_the_broken_file_named(
    tmp_path, capsys, monkeypatch
):
    version = picture_export(tmp_path)
    folder = tmp_path / "new"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype="uint8")).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype="uint8")).save(folder / "nested" / "g.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "gone.png").write_bytes((folder / "0.png").read_bytes())
    listed = predict_module.read_inputs

    def list_then_lose_a_file(*args):  # deleted after the folder is listed, before it is read
        inputs = listed(*args)
        (folder / "gone.png").unlink()
        return inputs

    monkeypatch.setattr(predict_module, "read_inputs", list_then_lose_a_file)
    output = tmp_path / "labels.csv"
    code, printed = run_cli(["predict", version, "--input", str(folder), "--output", str(output),
                             "--batch-size", "4"], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert (
        "skipped broken.png: Invalid PNG" in printed.err and "predicted 6, skipped 2" in printed.out
    )
    assert "skipped gone.png: No such file or directory" in printed.err
    labels = pd.read_csv(output)
    assert list(labels.columns) == ["path", "predicted_label", "probability_cat", "probability_dog"]
    assert list(labels["path"]) == ["0.png", "1.png", "2.png", "3.png", "4.png", "nested/g.jpg"]
    serve = tf.saved_model.load(version).signatures["serving_default"]
    direct = serve(image_bytes=tf.constant([(folder / p).read_bytes() for p in labels["path"]]))
    np.testing.assert_allclose(labels[["probability_cat", "probability_dog"]],
                               direct["probabilities"].numpy(), rtol=1e-5)  # fmt: skip


def test_nothing_predictable_exits_1_without_an_output_and_a_wrong_input_exits_2(tmp_path, capsys):
    version = picture_export(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a picture")
    output = tmp_path / "labels.csv"
    code, printed = run_cli(["predict", version, "--input", str(tmp_path / "junk"),
                             "--output", str(output)], capsys)  # fmt: skip
    assert code == 1 and "nothing in" in printed.err and not output.exists()
    assert not list(tmp_path.glob(".tmp-*"))
    pd.DataFrame({"text": ["a"]}).to_csv(tmp_path / "t.csv", index=False)
    code, printed = run_cli(["predict", version, "--input", str(tmp_path / "t.csv"),
                             "--output", str(output)], capsys)  # fmt: skip
    assert code == 2 and "error:" in printed.err
    code, printed = run_cli(["predict", str(tmp_path / "junk"), "--input", str(tmp_path / "t.csv"),
                             "--output", str(output)], capsys)  # fmt: skip
    assert code == 2 and "not an export" in printed.err


def test_an_export_without_class_names_is_named_from_its_labels(tmp_path, capsys):
    names = tf.constant(["no", "yes"])

    def serve(text):
        yes = tf.cast(tf.strings.regex_full_match(text, ".*yes.*"), tf.float32)
        probabilities = tf.stack([1.0 - yes, yes], axis=1)
        return {"probabilities": probabilities, "label": tf.gather(names, tf.cast(yes, tf.int64))}

    signature = [tf.TensorSpec([None], tf.string, name="text")]
    version = export_for_serving(str(tmp_path / "old"), serve, signature, [])
    table = pd.DataFrame({"text": ["yes please", "no thanks"]})
    table.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    code, printed = run_cli(["predict", version, "--input", str(tmp_path / "t.jsonl"),
                             "--output", str(tmp_path / "out.parquet")], capsys)  # fmt: skip
    assert code == 0, printed.err
    labels = pd.read_parquet(tmp_path / "out.parquet")
    assert list(labels.columns) == ["text", "predicted_label", "probability_no", "probability_yes"]
    assert json.loads(labels.to_json(orient="records"))[0]["predicted_label"] == "yes"


def test_pictures_are_read_a_batch_at_a_time(tmp_path):
    for i in range(10):
        (tmp_path / f"{i}.png").write_bytes(bytes([i]) * (i + 1))  # bytes enough: serve is fake
    frame, inputs, skipped = predict_module.read_inputs(str(tmp_path), "image_bytes", "text")
    assert list(frame["path"]) == [f"{i}.png" for i in range(10)] and len(inputs) == 10
    assert not skipped and not isinstance(inputs, list)  # nothing read yet
    batches = []

    def serve(image_bytes):
        batches.append([len(data) for data in image_bytes.numpy()])
        sizes = tf.cast(tf.strings.length(image_bytes), tf.float32)[:, None]
        return {"probabilities": tf.concat([sizes, -sizes], 1),
                "label": tf.fill(tf.shape(image_bytes), "x")}  # fmt: skip

    class LoseFilesAfterTheFirstBatch:
        def update(self, done):
            for i in (5, 9):
                (tmp_path / f"{i}.png").unlink(missing_ok=True)

    rows, failures = predict_module.predict_batches(
        serve, "image_bytes", inputs, 4, LoseFilesAfterTheFirstBatch()
    )
    assert batches == [[1, 2, 3, 4], [5, 7, 8], [9]]  # each file read when its batch comes
    assert [index for index, _, _ in rows] == [0, 1, 2, 3, 4, 6, 7, 8]
    assert failures == [(5, "No such file or directory"), (9, "No such file or directory")]


def test_a_batch_of_large_files_ends_at_the_byte_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(predict_module, "BATCH_BYTES", 10)
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(b"x" * (4 if i != 2 else 30))
    _, inputs, _ = predict_module.read_inputs(str(tmp_path), "image_bytes", "text")
    batches = []

    def serve(image_bytes):
        batches.append([len(data) for data in image_bytes.numpy()])
        return {"probabilities": tf.zeros([len(batches[-1]), 2]),
                "label": tf.fill(tf.shape(image_bytes), "x")}  # fmt: skip

    rows, _ = predict_module.predict_batches(serve, "image_bytes", inputs, 64)
    assert batches == [[4, 4, 30], [4, 4, 4]] and len(rows) == 6  # up to 10 bytes, then one more
