"""Peak memory of `text_ngrams`' data preparation and of `python -m tfkit predict`, by size.

For each size (100,000 and 1,000,000 short generated texts by default), each step in a
process of its own, so that one peak cannot hide another:

- `ngrams`: `recipes.text_ngrams.load_data` on a CSV of that many texts, as a run
  with `--no-baseline` does it: read the table, split it, adapt the vectorizer, turn
  every text into its n-gram ids (`tfkit.data.ngrams`), count the IDF, make the
  pipelines. Against the plain way it replaced: the dense `texts x --max-len` int32
  array the ids were held in before (`dense_ids_mb`), and the same at the longest
  row's width, to which it was then cut (`dense_cut_ids_mb`);
- `epoch:text_ngrams`, `epoch:imdb_conv1d`: the recipe's whole command for one epoch
  on that table (`--no-baseline`), its peak memory and time;
- `predict`: `python -m tfkit predict` with an export of `text_ngrams` (trained for
  one epoch on 2,000 texts) on a CSV of that many texts, writing a CSV;
- `predict:pictures` (sizes ignored): `python -m tfkit predict` with an export of
  `cifar10_resnet` (untrained: memory does not depend on the weights) on a folder of
  500 small pictures, 20 just under the pixel limit (9,400 x 9,500: PNG, JPEG, BMP, GIF)
  and 2 above it (a real 20,000 x 20,000 grey PNG of 0.4 MB, and a JPEG whose header
  declares as much); every picture but those 2 must get its row.

Peak RSS is the process's high-water mark: `VmHWM` for `ngrams`, `os.wait4`'s
`ru_maxrss` for the predict command (which counts the size of the process it was
forked from, so the texts are generated in a process of their own and this one stays
small); `rss_before_mb` is the resident size before the step (Python, TensorFlow,
the run folder), so the step itself added `peak_rss_mb - rss_before_mb`. Texts are
4 to 20 words of a 5,000-word vocabulary (Zipf), each with a cue word of its class.
Prints one JSON line per case.

    python benchmarks/memory.py [--sizes 100000 1000000] [--cases ngrams predict]
    python benchmarks/memory.py --cases predict:pictures
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np
import pandas as pd

MB = 2**20


def write_texts(path, count, seed=0, vocabulary_size=5000):
    """`count` short texts of two classes as a CSV (text, label)."""
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, vocabulary_size + 1)
    lengths = rng.integers(4, 21, count)
    words = rng.choice(vocabulary_size, lengths.sum(), p=frequency / frequency.sum())
    words = np.char.add("w", words.astype(str))
    labels = rng.integers(0, 2, count)
    cues = np.where(labels == 1, "good", "bad")
    texts = [
        " ".join(row) + f" {cue}"
        for row, cue in zip(np.split(words, np.cumsum(lengths)[:-1]), cues)
    ]
    pd.DataFrame({"text": texts, "label": np.where(labels == 1, "pos", "neg")}).to_csv(
        path, index=False
    )


def generate(path, count, seed=0):
    """`write_texts` in a process of its own, so that this one stays small (see above)."""
    subprocess.run([sys.executable, __file__, "--write", path, str(count), str(seed)], check=True)


def status_mb(field):
    """`VmRSS` (resident now) or `VmHWM` (its peak) of this process, from /proc."""
    with open("/proc/self/status") as file:
        kilobytes = re.search(rf"^{field}:\s+(\d+) kB", file.read(), re.MULTILINE).group(1)
    return int(kilobytes) * 1024 / MB


def prepare_ngrams(table, folder):
    """The `ngrams` case, in this process: `text_ngrams.load_data` on `table`."""
    import tfkit.quiet  # noqa: F401
    from recipes import text_ngrams
    from tfkit.distribute import get_strategy
    from tfkit.runs import start_run

    config = text_ngrams.Config(data="csv", data_dir=table, baseline=False, export=False,
                                run_dir=os.path.join(folder, "run"))  # fmt: skip
    strategy = get_strategy(config.strategy, config.logical_cpus)
    run = start_run(text_ngrams.RECIPE, config, strategy)
    before = status_mb("VmRSS")
    start = time.perf_counter()
    splits, _, _, _ = text_ngrams.load_data(config, run)
    seconds = time.perf_counter() - start
    parts = (splits.train[0], splits.val[0], splits.test[0])
    texts = sum(int(ids.nrows()) for ids in parts)
    longest = max(int(ids.row_lengths().numpy().max(initial=0)) for ids in parts)
    ragged = sum(ids.flat_values.numpy().nbytes + ids.row_splits.numpy().nbytes for ids in parts)
    return {
        "case": "ngrams",
        "texts": texts,
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(status_mb("VmHWM")),
        "ragged_ids_mb": round(ragged / MB, 1),
        "ngram_ids": sum(int(ids.flat_values.shape[0]) for ids in parts),
        "max_len": config.max_len,
        "dense_ids_mb": round(texts * config.max_len * 4 / MB, 1),
        "longest_row": longest,
        "dense_cut_ids_mb": round(texts * longest * 4 / MB, 1),
    }


def predict_memory(export, table, folder):
    """The `predict` case: the command in a process of its own, its peak from `os.wait4`."""
    output = os.path.join(folder, "predicted.csv")
    command = [sys.executable, "-m", "tfkit", "predict", export, "--input", table,
               "--output", output]  # fmt: skip
    out, seconds, peak = command_memory(command, os.path.join(folder, "predict.log"))
    return {
        "case": "predict",
        "texts": int(re.search(rb"predicted (\d+)", out).group(1)),
        "seconds": round(seconds, 1),
        "peak_rss_mb": peak,
    }


def epoch_memory(recipe, table, folder):
    """The `epoch` cases: a recipe's whole command for one epoch on `table`, without its
    baseline, its peak from `os.wait4`."""
    run_dir = os.path.join(folder, f"epoch-{recipe}")
    command = [sys.executable, "-m", f"recipes.{recipe}", "--data", "csv", "--data-dir", table,
               "--epochs", "1", "--no-baseline", "--run-dir", run_dir,
               "--export-dir", run_dir + "-export", "--verbose", "2"]  # fmt: skip
    out, seconds, peak = command_memory(command, run_dir + ".log")
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(run_dir + "-export", ignore_errors=True)
    return {"case": f"epoch:{recipe}", "texts": metrics["train_examples"] + metrics["val_examples"]
            + metrics["test_examples"], "seconds": round(seconds, 1), "peak_rss_mb": peak,
            "test_accuracy": round(metrics["test"]["accuracy"], 4)}  # fmt: skip


def command_memory(command, log):
    """`(output, seconds, peak RSS in MB)` of `command`, run in a process of its own."""
    start = time.perf_counter()
    with open(log, "wb") as file:
        process = subprocess.Popen(command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # its own usage, as it ends
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    with open(log, "rb") as file:
        out = file.read()
    if status:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.decode()[-2000:]}")
    return out, seconds, round(usage.ru_maxrss * 1024 / MB)  # Linux: kilobytes


NEAR_LIMIT = (9_400, 9_500)  # 89.3 million pixels, the limit 89,478,485
NEAR_FORMATS = ("PNG",) * 10 + ("JPEG",) * 7 + ("BMP",) * 2 + ("GIF",)


def write_pictures(folder):
    """The `predict:pictures` folder (see above), written by a process of its own."""
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(folder)
    for i in range(500):
        side = int(rng.integers(24, 65))
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype="uint8")).save(
            os.path.join(folder, f"small-{i:03d}.png")
        )
    for i, fmt in enumerate(NEAR_FORMATS):
        picture = Image.new("RGB", NEAR_LIMIT, tuple(int(c) for c in rng.integers(0, 255, 3)))
        picture.save(os.path.join(folder, f"near-{i:02d}.{fmt.lower()}"), format=fmt)
    Image.new("L", (20_000, 20_000)).save(os.path.join(folder, "above.png"))
    small = os.path.join(folder, "above.jpeg")
    Image.new("RGB", (64, 64)).save(small, format="JPEG")
    with open(small, "rb") as file:
        data = bytearray(file.read())
    start = bytes(data).index(b"\xff\xc0") + 5  # the frame header: height, width
    data[start : start + 4] = (20_000).to_bytes(2, "big") * 2
    with open(small, "wb") as file:
        file.write(data)


def picture_predict_memory(folder):
    """The `predict:pictures` case."""
    pictures, export = os.path.join(folder, "pictures"), os.path.join(folder, "resnet")
    subprocess.run([sys.executable, __file__, "--pictures", pictures, "--folder", export],
                   check=True)  # fmt: skip
    output = os.path.join(folder, "labels.csv")
    command = [sys.executable, "-m", "tfkit", "predict", export, "--input", pictures,
               "--output", output]  # fmt: skip
    out, seconds, peak = command_memory(command, os.path.join(folder, "predict-pictures.log"))
    rows = len(pd.read_csv(output))
    expected = 500 + len(NEAR_FORMATS)
    if rows != expected:
        raise SystemExit(f"predict wrote {rows} rows, not {expected}:\n{out.decode()[-2000:]}")
    skipped = [line for line in out.decode().splitlines() if line.startswith("skipped ")]
    return {"case": "predict:pictures", "pictures": expected + 2, "rows": rows,
            "near_limit": len(NEAR_FORMATS), "seconds": round(seconds, 1), "peak_rss_mb": peak,
            "skipped": skipped}  # fmt: skip


def resnet_export(export):
    """An export of `cifar10_resnet`'s default model (untrained), in this process."""
    import tfkit.quiet  # noqa: F401
    from recipes import cifar10_resnet
    from tfkit.export import export_image_classifier

    model = cifar10_resnet.build_model(cifar10_resnet.Config(class_names=tuple("abcdefghij")))
    export_image_classifier(export, model, tuple("abcdefghij"))


def train_export(folder):
    """An export of `text_ngrams`, trained for one epoch on a small table."""
    table = os.path.join(folder, "small.csv")
    generate(table, 2000, seed=1)
    export = os.path.join(folder, "export")
    subprocess.run(
        [sys.executable, "-m", "recipes.text_ngrams", "--data", "csv", "--data-dir", table,
         "--epochs", "1", "--no-baseline", "--run-dir", os.path.join(folder, "train-run"),
         "--export-dir", export],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return export


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cases", nargs="+", default=["ngrams", "predict"],
                        choices=["ngrams", "predict", "epoch:text_ngrams", "epoch:imdb_conv1d",
                                 "predict:pictures"])  # fmt: skip
    # The steps run in processes of their own:
    parser.add_argument("--prepare", help=argparse.SUPPRESS)  # the ngrams case
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=3, help=argparse.SUPPRESS)  # path, count, seed
    parser.add_argument("--pictures", help=argparse.SUPPRESS)  # the predict:pictures folder
    args = parser.parse_args()
    if args.pictures:
        write_pictures(args.pictures)
        resnet_export(args.folder)
        return
    if args.prepare:
        print(json.dumps(prepare_ngrams(args.prepare, args.folder)))
        return
    if args.write:
        write_texts(args.write[0], int(args.write[1]), int(args.write[2]))
        return
    folder = tempfile.mkdtemp(prefix="memory-")
    try:
        if "predict:pictures" in args.cases:
            print(json.dumps(picture_predict_memory(folder)), flush=True)
        export = train_export(folder) if "predict" in args.cases else None
        text_cases = [case for case in args.cases if case != "predict:pictures"]
        for size in args.sizes if text_cases else []:
            table = os.path.join(folder, f"texts-{size}.csv")
            generate(table, size)
            if "ngrams" in args.cases:
                case = os.path.join(folder, f"ngrams-{size}")
                result = subprocess.run(
                    [sys.executable, __file__, "--prepare", table, "--folder", case],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                print(result.stdout.strip().splitlines()[-1], flush=True)
            if "predict" in args.cases:
                print(json.dumps(predict_memory(export, table, folder)), flush=True)
            for case in args.cases:
                if case.startswith("epoch:"):
                    result = epoch_memory(case.split(":")[1], table, folder)
                    print(json.dumps({**result, "size": size}), flush=True)
            os.remove(table)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
