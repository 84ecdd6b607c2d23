"""How fast `python -m tfkit predict` labels new data: texts/s and pictures/s.

Exports the recipes' own models (untrained: the speed does not depend on the weights)
and times `tfkit.predict.predict` end to end, as the command runs it: reading the
input, the exported `serving_default` graph (vectorizer or picture decoding inside),
and writing the output table. Texts are synthetic reviews of about 230 words through
`imdb_conv1d`'s export and `text_ngrams`' (trained one epoch on them); pictures are
32x32 PNGs and 640x480 JPEGs (decoded, cropped and resized in the graph) through
`cifar10_resnet`'s. Beside each, the bare `serving_default` on the same inputs already
in memory. Best of `--rounds` (the first traces the graph). Prints one JSON line per case.

    python benchmarks/predict_throughput.py [--texts 4096] [--pictures 1024] [--rounds 3]
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfkit.quiet  # noqa: E402,F401

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from recipes import cifar10_resnet, imdb_conv1d  # noqa: E402
from tfkit.data.cifar10 import CLASS_NAMES  # noqa: E402
from tfkit.data.imdb import synthetic_reviews  # noqa: E402
from tfkit.data.text import adapt_vectorizer  # noqa: E402
from tfkit.export import export_image_classifier, export_text_classifier  # noqa: E402
from tfkit.predict import load_classifier, predict, read_inputs  # noqa: E402
import tensorflow as tf  # noqa: E402


def bare_rate(export, source, count, batch_size, rounds):
    """Inputs/s of the export's `serving_default` alone, on inputs already in memory."""
    serve, input_name, _, _ = load_classifier(export)
    _, inputs, _ = read_inputs(source, input_name, "text")
    values = [inputs[i] for i in range(len(inputs))]  # the files read before the clock
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        for first in range(0, count, batch_size):
            serve(**{input_name: tf.constant(values[first:first + batch_size])})["label"].numpy()
        seconds.append(time.perf_counter() - start)
    return count / min(seconds)


def best_rate(export, source, output, count, batch_size, rounds):
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = predict(export, source, output, batch_size=batch_size)
        seconds.append(time.perf_counter() - start)
        assert result["predicted"] == count, result
    return count / min(seconds), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--pictures", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="predict_throughput-")
    rng = np.random.default_rng(0)

    texts, _ = synthetic_reviews(args.texts, seed=0)
    config = imdb_conv1d.Config(data="synthetic")
    vectorizer = adapt_vectorizer(texts, config.max_features)
    export = export_text_classifier(os.path.join(folder, "text"), imdb_conv1d.build_model(config),
                                    vectorizer, config.max_len)  # fmt: skip
    table = os.path.join(folder, "texts.csv")
    pd.DataFrame({"text": [t.decode() if isinstance(t, bytes) else t for t in texts]}).to_csv(
        table, index=False
    )
    cases = [("texts", export, table, args.texts)]
    # text_ngrams' export, as the recipe makes it: one epoch on the same texts, labelled.
    labelled = os.path.join(folder, "labelled.csv")
    pd.DataFrame({"text": pd.read_csv(table)["text"], "label": rng.integers(0, 2, args.texts)}
                 ).to_csv(labelled, index=False)  # fmt: skip
    subprocess.run([sys.executable, "-m", "recipes.text_ngrams", "--data", "csv", "--data-dir",
                    labelled, "--epochs", "1", "--no-baseline", "--run-dir",
                    os.path.join(folder, "ngrams-run"), "--export-dir",
                    os.path.join(folder, "ngrams")], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    cases.append(("texts_ngrams", os.path.join(folder, "ngrams"), table, args.texts))

    model = cifar10_resnet.build_model(cifar10_resnet.Config(class_names=CLASS_NAMES))
    export = export_image_classifier(os.path.join(folder, "pictures"), model, CLASS_NAMES)
    for kind, size, encoding in (("pictures_32x32_png", (32, 32), "PNG"),
                                 ("pictures_640x480_jpeg", (480, 640), "JPEG")):  # fmt: skip
        pictures = os.path.join(folder, kind)
        os.makedirs(pictures)
        for i in range(args.pictures):
            pixels = rng.integers(0, 255, (*size, 3), dtype="uint8")
            data = io.BytesIO()
            Image.fromarray(pixels).save(data, encoding)
            with open(os.path.join(pictures, f"{i:05d}.{encoding.lower()}"), "wb") as file:
                file.write(data.getvalue())
        cases.append((kind, export, pictures, args.pictures))

    for kind, export, source, count in cases:
        output = os.path.join(folder, f"{kind}-labelled.csv")
        rate, seconds = best_rate(export, source, output, count, args.batch_size, args.rounds)
        bare = bare_rate(export, source, count, args.batch_size, args.rounds)
        print(json.dumps({"benchmark": "predict_throughput", "input": kind, "count": count,
                          "batch_size": args.batch_size, "per_second": round(rate, 1),
                          "bare_model_per_second": round(bare, 1),
                          "seconds": [round(s, 2) for s in seconds]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
