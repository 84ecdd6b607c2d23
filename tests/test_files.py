"""tfkit.files: every file a run writes lands whole, under its name, with the umask's mode."""

import os
import stat
import threading

import numpy as np
import pytest
import keras

from tfkit import files
from tfkit.callbacks import AtomicModelCheckpoint
from tfkit.export import export_for_serving, next_version


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_take_the_umask_mode_like_open_does(tmp_path, umask_022):
    files.write_json(tmp_path / "config.json", {"a": np.float32(0.5)})
    files.write_text(tmp_path / "history.csv", "epoch\n0\n")
    with files.atomic_path(tmp_path / "curves.png") as temporary:
        with open(temporary, "wb") as file:
            file.write(b"png")
    with open(tmp_path / "plain.txt", "w") as file:  # what the user's own writes get
        file.write("x")
    expected = mode(tmp_path / "plain.txt")
    assert expected == 0o644
    for name in ("config.json", "history.csv", "curves.png"):
        assert mode(tmp_path / name) == expected, name
    assert (tmp_path / "config.json").read_text() == '{\n  "a": 0.5\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"old": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as temporary:
            with open(temporary, "w") as file:
                file.write('{"new": ')
            raise RuntimeError("killed half-way")
    assert path.read_text() == '{\n  "old": 1\n}\n'
    assert os.listdir(tmp_path) == ["metrics.json"]


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    return model


def test_a_half_written_checkpoint_left_by_a_kill_is_never_promoted(tmp_path):
    best = tmp_path / "best.keras"
    checkpoint = AtomicModelCheckpoint(str(best), monitor="loss", save_best_only=True)
    checkpoint.set_model(tiny_model())
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(0, {"loss": 0.5})
    good = best.read_bytes()
    # A run killed during a save left these; the next epoch does not improve.
    (tmp_path / "best.partial.keras").write_bytes(b"PK\x03\x04 half a zip")
    (tmp_path / ".tmp-1a2b3c4d-best.keras").write_bytes(b"PK\x03\x04 half a zip")
    checkpoint.on_epoch_end(1, {"loss": 0.9})
    assert best.read_bytes() == good
    assert keras.models.load_model(best).output_shape == (None, 1)


def test_the_checkpoint_is_written_with_the_umask_mode(tmp_path, umask_022):
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss", save_best_only=True)
    checkpoint.set_model(tiny_model())
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(0, {"loss": 0.5})
    assert mode(tmp_path / "best.keras") == 0o644
    assert os.listdir(tmp_path) == ["best.keras"]


def test_a_published_folder_never_replaces_one(tmp_path):
    (tmp_path / "1").mkdir()
    with files.temporary_folder(tmp_path, "export") as staging:
        (open(os.path.join(staging, "saved_model.pb"), "w")).close()
        with pytest.raises(FileExistsError):
            files.publish_folder(staging, tmp_path / "1")
    assert sorted(os.listdir(tmp_path)) == ["1"]  # the staging folder is gone


def serve_export(base):
    model = tiny_model()

    def serve(x):
        return {"probability": model(x)}

    import tensorflow as tf

    signature = [tf.TensorSpec([None, 3], tf.float32, name="x")]
    return export_for_serving(str(base), serve, signature, [model])


def test_versions_are_ascii_numbers_and_exports_at_once_take_one_each(tmp_path, umask_022):
    base = tmp_path / "m"
    base.mkdir()
    (base / "²").mkdir()  # str.isdigit() says yes; int() says no
    (base / "notes").mkdir()
    assert next_version(str(base)) == 1
    made = []
    threads = [threading.Thread(target=lambda: made.append(serve_export(base))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(os.path.basename(path) for path in made) == ["1", "2", "3"]
    assert sorted(os.listdir(base)) == ["1", "2", "3", "notes", "²"]
    assert mode(base / "1") == 0o755
