import json

import numpy as np
import pandas as pd
import tensorflow as tf

from recipes import pixels_linear
from recipes.cifar10_resnet import Config as ResNetConfig
from test_cifar10_resnet import picture_folder
from tfkit.data.pixels import picture_splits


class Run:
    baseline_data = None


def test_a_linear_model_on_picture_folders_learns_and_serves_what_training_saw(tmp_path):
    folder = picture_folder(tmp_path / "pictures", broken=False)
    pixels_linear.main(["--data", "images", "--data-dir", str(folder), "--epochs", "15",
                        "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "export")])  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "baseline" not in metrics  # the baseline is this very model: not trained twice
    assert metrics["test"]["accuracy"] >= 0.9  # three colours: linear in the pixels
    loss = pd.read_csv(tmp_path / "run" / "history.csv")["loss"]
    assert loss.iloc[-1] < loss.iloc[0]

    # The ResNet's very splits: the two recipes are compared on the same test pictures.
    config = pixels_linear.Config(data="images", data_dir=str(folder))
    ours = picture_splits(config, Run())[0]
    theirs = picture_splits(ResNetConfig(data="images", data_dir=str(folder)), Run())[0]
    np.testing.assert_array_equal(ours.test[0], theirs.test[0])

    serve = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"]
    red = tf.io.encode_png(np.full((40, 40, 3), (200, 30, 30), "uint8"))
    assert serve(image_bytes=tf.stack([red]))["label"].numpy().tolist() == [b"red"]
