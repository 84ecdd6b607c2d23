import json
import os
import subprocess
import sys

import numpy as np
import keras

from tfkit.data.text import adapt_vectorizer, texts_to_ids
from tfkit.export import export_text_classifier, latest_version_dir, next_version

TEXTS = [b"a fine film", b"a dull film", b"fine fine fine"]

LOAD_WITHOUT_TFKIT = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(text=tf.constant(json.loads(sys.argv[2])))
assert "tfkit" not in sys.modules
print(json.dumps(out["probability"].numpy().tolist()))
"""


def text_model(vectorizer, length):
    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vectorizer.vocabulary_size(), 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def test_export_round_trip_in_a_process_without_tfkit(tmp_path):
    vectorizer = adapt_vectorizer(np.array(TEXTS, dtype=object), max_tokens=50)
    model = text_model(vectorizer, 5)
    base = tmp_path / "saved_models" / "tiny"
    first = export_text_classifier(str(base), model, vectorizer, 5)
    second = export_text_classifier(str(base), model, vectorizer, 5)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary folder left behind
    assert latest_version_dir(str(base)) == second and next_version(str(base)) == 3

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TFKIT, second, json.dumps([t.decode() for t in TEXTS])],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    expected = np.asarray(model(texts_to_ids(vectorizer, TEXTS, 5))).ravel()
    assert served.shape == (3,) and np.allclose(served, expected, atol=1e-6)
    assert ((served >= 0) & (served <= 1)).all()


def test_saved_model_cli_shows_the_named_signature(tmp_path):
    vectorizer = adapt_vectorizer(np.array(TEXTS, dtype=object), max_tokens=50)
    path = export_text_classifier(str(tmp_path / "m"), text_model(vectorizer, 5), vectorizer, 5)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inputs['text']" in result.stdout and "DT_STRING" in result.stdout
    assert "outputs['probability']" in result.stdout and "DT_FLOAT" in result.stdout
