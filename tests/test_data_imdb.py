import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, python_env
from tfkit.data.download import reachable
from tfkit.data.imdb import load_imdb, synthetic_reviews
from tfkit.errors import DataError


def test_synthetic_is_deterministic_balanced_and_labelled_by_content():
    texts, labels = synthetic_reviews(400, seed=3)
    again, _ = synthetic_reviews(400, seed=3)
    other, _ = synthetic_reviews(400, seed=4)
    assert (texts == again).all() and not (texts == other).all()
    assert 0.4 < labels.mean() < 0.6
    # Learnable: counting the cue words alone predicts the label.
    good = np.array([t.count(b"good") for t in texts])
    bad = np.array([t.count(b"bad") for t in texts])
    assert ((good > bad) == labels.astype(bool)).mean() > 0.95


def test_synthetic_splits_hold_out_validation_and_cap():
    splits = load_imdb("synthetic", seed=1, max_examples=50)
    assert splits.sizes() == {"train_examples": 50, "val_examples": 50, "test_examples": 50}
    assert splits.source == "synthetic"
    assert not set(splits.train[0]) & set(splits.val[0])


def write_aclimdb(root, per_class=6):
    for split in ("train", "test"):
        for label, word in (("pos", "great"), ("neg", "awful")):
            folder = root / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}_7.txt").write_text(f"{split} {word} film number {i}")
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir()
    (unsup / "0_0.txt").write_text("unlabelled review")
    (root / "aclImdb" / "imdb.vocab").write_text("great\nawful\n")
    (root / "aclImdb" / "train" / "labeledBow.feat").write_text("0:1\n")


def test_dir_reads_the_aclimdb_layout_and_ignores_unsup(tmp_path):
    write_aclimdb(tmp_path)
    splits = load_imdb("dir", str(tmp_path), seed=0, validation_split=0.25)
    assert splits.sizes() == {"train_examples": 9, "val_examples": 3, "test_examples": 12}
    texts = np.concatenate([splits.train[0], splits.val[0]])
    labels = np.concatenate([splits.train[1], splits.val[1]])
    assert all(text.startswith(b"train") for text in texts)
    assert b"unlabelled review" not in texts
    for text, label in zip(texts, labels):
        assert (b"great" in text) == (label == 1)
    # The folder itself, not only its parent, may be given.
    same = load_imdb("dir", str(tmp_path / "aclImdb"), seed=0, validation_split=0.25)
    assert (same.test[0] == splits.test[0]).all()


def test_dir_rejects_a_malformed_folder(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DataError, match="two classes at least; found: pos"):
        load_imdb("dir", str(tmp_path))


def test_tfds_source_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        splits = load_imdb("tfds", str(tmp_path), seed=0)
    assert splits.source == "tfds"
    assert splits.sizes() == {"train_examples": 32, "val_examples": 8, "test_examples": 40}
    assert isinstance(splits.train[0][0], bytes)
    assert set(np.unique(splits.train[1])) <= {0, 1}


@pytest.mark.slow
def test_tfds_without_network_fails_fast_with_one_line(tmp_path):
    if reachable("ai.stanford.edu", timeout=3):
        pytest.skip("this machine has network; the offline path cannot be shown")
    start = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "recipes.imdb_conv1d", "--data-dir", str(tmp_path / "tfds"),
         "--run-dir", str(tmp_path / "run"), "--epochs", "1"],
        env=python_env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert time.time() - start < 30
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "imdb_reviews" in last and str(tmp_path / "tfds") in last
    assert "--data dir" in last and "--data synthetic" in last
    assert "Traceback" not in result.stderr


def test_a_cap_keeps_each_splits_class_mix(tmp_path):
    # The folders are read class by class (all neg, then all pos): a plain cap of
    # the first N would keep one class only.
    write_aclimdb(tmp_path, per_class=30)
    splits = load_imdb("dir", str(tmp_path), seed=0, validation_split=0.5, max_examples=20)
    counts = splits.class_counts()
    assert counts["test"] == {"neg": 10, "pos": 10}
    assert counts["train"] == {"neg": 10, "pos": 10} and counts["val"] == {"neg": 10, "pos": 10}
    again = load_imdb("dir", str(tmp_path), seed=0, validation_split=0.5, max_examples=20)
    assert (again.test[0] == splits.test[0]).all()  # a seeded draw


def test_stratified_sample_keeps_proportions_exactly_when_it_can():
    from tfkit.data.splits import stratified_sample

    labels = np.array([0] * 90 + [1] * 10)
    picked = stratified_sample(labels, 20, np.random.default_rng(0))
    assert len(set(picked)) == 20 and np.bincount(labels[picked]).tolist() == [18, 2]
