import time

import numpy as np
import pandas as pd
import keras

from tfkit.callbacks import AtomicModelCheckpoint, EpochStats, HistoryCSV


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="binary_crossentropy")
    return model


def test_history_csv_keeps_every_epoch_once_across_a_resume(tmp_path):
    path = tmp_path / "history.csv"
    first = HistoryCSV(str(path))
    first.on_train_begin()
    for epoch in range(3):
        first.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "learning_rate": 0.5})
    # Killed after writing epoch 2 but before its backup: the resumed run redoes epoch 2.
    resumed = HistoryCSV(str(path))
    resumed.on_train_begin()
    resumed.on_epoch_end(2, {"loss": 0.3})
    resumed.on_epoch_end(3, {"loss": 0.25})
    history = pd.read_csv(path)
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert history["loss"].iloc[2] == 0.3
    assert "learning_rate" not in history
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]  # no temporary left


def test_epoch_stats_logs_lr_time_and_throughput():
    model = tiny_model()
    stats = EpochStats(train_examples=64)
    stats.set_model(model)
    logs = {}
    stats.on_epoch_begin(0)
    time.sleep(0.05)
    stats.on_test_begin()  # validation starts: its time does not count
    time.sleep(0.2)
    stats.on_epoch_end(0, logs)
    assert logs["lr"] == np.float32(0.01)
    assert logs["epoch_seconds"] >= 0.25
    assert 64 / 0.25 < logs["examples_per_second"] <= 64 / 0.05


def test_checkpoint_lands_under_its_final_name_only(tmp_path):
    model = tiny_model()
    x = np.random.default_rng(0).random((16, 3)).astype("float32")
    y = (x[:, :1] > 0.5).astype("float32")
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    restored = keras.models.load_model(tmp_path / "best.keras")
    assert restored.output_shape == (None, 1)


def test_tensorboard_writes_each_epoch_and_skips_the_steps_it_never_writes(tmp_path):
    import tensorflow as tf

    from tfkit.callbacks import TensorBoard

    class RecordedSummaries:  # tf.summary, noting the scalars asked for
        names = []

        def scalar(self, name, *args, **kwargs):
            self.names.append(name)
            return tf.summary.scalar(name, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(tf.summary, name)

    callback = TensorBoard(str(tmp_path))
    callback._summary_module = recorded = RecordedSummaries()  # Keras 3.15's lazy tf.summary
    x = np.random.rand(64, 3).astype("float32")
    y = np.random.randint(0, 2, (64, 1)).astype("float32")
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert "epoch_loss" in recorded.names
    assert not [name for name in recorded.names if name.startswith("batch_")]  # 16 steps
    tags = {
        value.tag
        for path in (tmp_path / "train").iterdir()
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert "epoch_loss" in tags
