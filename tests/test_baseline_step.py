"""The linear baseline is a step of a training run: trained where the run trains, never for a
mode that trains no model of its own (`--lr-find`, `--overfit-batches`, `--tune`)."""

import json

from recipes import imdb_conv1d


def test_no_baseline_for_a_mode_that_trains_no_model(tmp_path, quick_flags, capsys):
    # --overfit-batches returns from run_mode at the same point: tests/test_modes.py.
    imdb_conv1d.main(quick_flags + ["--lr-find", "--baseline"])
    assert not (tmp_path / "run" / "baseline.json").exists()
    assert "baseline (" not in capsys.readouterr().out


def test_a_training_run_trains_its_baseline_once_and_says_what_kind(tmp_path, quick_flags, capsys):
    imdb_conv1d.main(quick_flags + ["--baseline"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["baseline"]["kind"] == "text" and metrics["baseline"]["test"]
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("baseline (TF-IDF") for line in lines) == 1  # trained once


def test_a_resume_under_no_baseline_keeps_the_baseline_the_run_trained(tmp_path):
    from types import SimpleNamespace

    from tfkit.baseline import BASELINE_FILE, train_baseline
    from tfkit.runs import Run

    saved = {"kind": "text", "model": "TF-IDF", "val": None, "test": {"accuracy": 0.9,
             "macro_f1": 0.9}, "seconds": 1.0}  # fmt: skip
    (tmp_path / BASELINE_FILE).write_text(json.dumps(saved))
    config = SimpleNamespace(baseline=False, seed=1, deterministic=False)
    run = Run("imdb_conv1d", str(tmp_path), config, strategy=None, baseline_data=("text", None))
    assert train_baseline(run, config) == saved and run.results["baseline"] == saved
    (tmp_path / BASELINE_FILE).unlink()  # a run that never had one trains none
    assert train_baseline(run, config) is None


def test_text_ngrams_computes_in_the_precision_it_is_given(tmp_path, quick_flags):
    from recipes import text_ngrams

    text_ngrams.main(quick_flags + ["--mixed-precision", "bf16", "--no-export"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["mixed_precision"] == "mixed_bfloat16"


def test_the_text_baseline_reads_the_tf_idf_text_ngrams_reads():
    import numpy as np
    import tensorflow as tf

    from tfkit.baseline import _tf_idf_rows
    from tfkit.data.ngrams import inverse_document_frequency, tf_idf, vectorize_ngrams
    from tfkit.data.text import adapt_vectorizer

    texts = np.array(["the cat sat", "the cat sat on the cat", "a dog", "", "an unseen text"])
    vectorizer = adapt_vectorizer(texts[:3], 50, ngrams=2)
    ids = vectorize_ngrams(vectorizer, texts, None)
    idf = inverse_document_frequency(ids[:3], vectorizer.vocabulary_size())
    dense = tf_idf(ids.to_tensor(), idf).numpy()
    np.testing.assert_allclose(tf.sparse.to_dense(_tf_idf_rows(ids, idf)).numpy(), dense)
    assert dense[1].max() > dense[0].max()  # "the cat" twice counts twice
    assert not dense[3].any() and not dense[4].any()  # nothing known: an empty row
