import json
import os

import numpy as np
import pandas as pd
import tensorflow as tf
import keras

from recipes import text_ngrams
from tfkit.data.ngrams import inverse_document_frequency, tf_idf, vectorize_ngrams
from tfkit.data.text import adapt_vectorizer

TEXTS = ["the match ended in a late goal", "parliament passed the budget late",
         "the goal of the budget", "a match a goal a win"]  # fmt: skip


def test_tf_idf_is_what_keras_text_vectorization_computes():
    ours = adapt_vectorizer(TEXTS, max_tokens=50, ngrams=2)
    ids = vectorize_ngrams(ours, np.array(TEXTS, dtype=object), max_length=100)
    features = tf_idf(ids, inverse_document_frequency(ids, 50)).numpy()

    keras_layer = keras.layers.TextVectorization(max_tokens=49, ngrams=2, output_mode="tf_idf")
    keras_layer.adapt(TEXTS)
    expected = keras_layer(tf.constant(TEXTS)).numpy()
    # Keras's column 0 counts [UNK]; ours are 0 padding, 1 [UNK] (both left out), then words.
    assert ours.get_vocabulary()[2:] == keras_layer.get_vocabulary()[1:]
    width = expected.shape[1] - 1
    np.testing.assert_allclose(features[:, 2 : 2 + width], expected[:, 1:], rtol=1e-5)
    assert (features[:, :2] == 0).all()


def test_sublinear_counts_and_l2_rows_as_scikit_learn_weighs_them():
    ids = tf.ragged.constant([[2, 2, 2, 3], [3], [0, 1]], dtype=tf.int64)  # 0, 1: padding, [UNK]
    idf = np.array([0.0, 0.0, 1.5, 0.5], "float32")
    raw = tf_idf(ids, idf).numpy()
    np.testing.assert_allclose(raw[0], [0, 0, 3 * 1.5, 0.5])
    weighed = tf_idf(ids, idf, sublinear_tf=True, norm="l2").numpy()
    row = np.array([0, 0, (1 + np.log(3)) * 1.5, 0.5])
    np.testing.assert_allclose(weighed[0], row / np.linalg.norm(row), rtol=1e-6)
    np.testing.assert_allclose(weighed[1], [0, 0, 0, 1])
    assert (weighed[2] == 0).all()  # a text of no known n-gram stays all zeros, not NaN


def test_the_model_is_a_bag_of_ngrams_then_a_small_dense():
    model = text_ngrams.build_model(text_ngrams.Config(class_names=("a", "b", "c")))
    assert model.input_shape == (None, 20_000)
    assert [layer.__class__.__name__ for layer in model.layers] == ["Dense", "Dropout", "Dense"]
    assert model.output_shape == (None, 3)


def test_units_0_is_the_linear_model_on_tf_idf():
    model = text_ngrams.build_model(text_ngrams.Config(units=0, class_names=("a", "b", "c")))
    assert [layer.__class__.__name__ for layer in model.layers] == ["Dropout", "Dense"]
    assert model.count_params() == 20_000 * 3 + 3


def test_a_final_fit_on_all_the_training_data_stopped_by_its_time_limit(tmp_path, quick_flags):
    """`--validation-split 0` trains on every training example (no validation, so no early
    stop); `--time-limit` then ends the training, and the run evaluates and exports."""
    flags = [*quick_flags, "--max-examples", "512", "--epochs", "1000", "--units", "0"]
    text_ngrams.main([*flags, "--validation-split", "0", "--time-limit", "3"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_examples"] == 0 and metrics["train_examples"] == 512
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert 1 <= len(history) < 1000 and "val_loss" not in history
    assert "accuracy" in metrics["test"] and os.listdir(tmp_path / "export") == ["1"]


def test_a_run_learns_with_its_baseline_and_exports_raw_text_in(tmp_path):
    rows = []
    topics = {"sport": "match goal team win coach", "politics": "vote law minister budget party",
              "tech": "software chip phone data network"}  # fmt: skip
    rng = np.random.default_rng(0)
    filler = "the a of and to in is it that".split()
    for i in range(300):
        label = list(topics)[i % 3]
        words = list(rng.choice(topics[label].split(), 3)) + list(rng.choice(filler, 8))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    pd.DataFrame(rows).to_csv(tmp_path / "news.csv", index=False)
    text_ngrams.main(["--data", "csv", "--data-dir", str(tmp_path / "news.csv"), "--epochs", "8",
                      "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "export")])  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
    baseline = metrics["baseline"]
    assert baseline["model"].startswith("TF-IDF") and baseline["seconds"] > 0
    assert set(baseline["test"]) == set(metrics["test"]) and set(baseline["val"]) == set(metrics["val"])
    assert baseline["test"]["accuracy"] >= 0.9
    assert os.path.exists(tmp_path / "run" / "baseline.json")

    serve = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"]
    out = serve(text=tf.constant(["the coach saw the team win the match", "the minister lost the vote"]))
    assert [label.decode() for label in out["label"].numpy()] == ["sport", "politics"]
    assert out["probabilities"].shape == (2, 3)


def test_kfold_joins_splits_of_different_widths(tmp_path):
    rows = [{"text": " ".join(["match goal"] * (1 + i % 7)) if i % 2 else "vote law " * (1 + i % 3),
             "label": "sport" if i % 2 else "politics"} for i in range(60)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    text_ngrams.main(["--data", "csv", "--data-dir", str(tmp_path / "t.csv"), "--epochs", "1",
                      "--kfold", "2", "--no-baseline", "--no-export",
                      "--run-dir", str(tmp_path / "run")])  # fmt: skip
    assert (tmp_path / "run" / "kfold.csv").exists() and (tmp_path / "run" / "metrics.json").exists()
