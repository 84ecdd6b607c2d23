import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from recipes import cifar10_resnet, text_ngrams
from tfkit.__main__ import main
from tfkit.export import export_for_serving, export_image_classifier

TOPICS = {"sport": "match goal team win coach", "politics": "vote law minister budget party",
          "tech": "software chip phone data network"}  # fmt: skip


def topic_texts(count, seed):
    rng = np.random.default_rng(seed)
    filler = "the a of and to in is it that".split()
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
    # An input that already has a column predict writes is refused, not overwritten.
    new.assign(predicted_label="mine").to_csv(tmp_path / "clash.csv", index=False)
    code, printed = run_cli(["predict", str(tmp_path / "export"), "--input",
                             str(tmp_path / "clash.csv"), "--output", str(tmp_path / "o.csv")],
                            capsys)  # fmt: skip
    assert code == 2 and "already has the column(s) predicted_label" in printed.err
    assert not (tmp_path / "o.csv").exists()


def picture_export(tmp_path, class_names=("cat", "dog")):
    config = cifar10_resnet.Config(class_names=class_names, depth=8)
    model = cifar10_resnet.build_model(config)
    return export_image_classifier(str(tmp_path / "export"), model, class_names), model


def test_a_picture_folder_gets_a_row_per_picture_and_the_broken_file_named(tmp_path, capsys):
    version, model = picture_export(tmp_path)
    folder = tmp_path / "new"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype="uint8")).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype="uint8")).save(folder / "nested" / "g.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    output = tmp_path / "labels.csv"
    code, printed = run_cli(["predict", version, "--input", str(folder), "--output", str(output),
                             "--batch-size", "4"], capsys)  # fmt: skip
    assert code == 0, printed.err
    assert "skipped broken.png: Invalid PNG" in printed.err and "predicted 6, skipped 1" in printed.out
    labels = pd.read_csv(output)
    assert list(labels.columns) == ["path", "predicted_label", "probability_cat", "probability_dog"]
    assert list(labels["path"]) == ["0.png", "1.png", "2.png", "3.png", "4.png", "nested/g.jpg"]
    serve = tf.saved_model.load(version).signatures["serving_default"]
    direct = serve(image_bytes=tf.constant([(folder / p).read_bytes() for p in labels["path"]]))
    np.testing.assert_allclose(labels[["probability_cat", "probability_dog"]],
                               direct["probabilities"].numpy(), rtol=1e-5)  # fmt: skip


def test_nothing_predictable_exits_1_without_an_output_and_a_wrong_input_exits_2(tmp_path, capsys):
    version, _ = picture_export(tmp_path)
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
