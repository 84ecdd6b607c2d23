"""`python -m tfkit report`: one self-contained page per run folder."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from conftest import ROOT, python_env
from recipes import dcgan_cifar10, imdb_conv1d
from tfkit.errors import DataError
from tfkit.report import write_report


class Page(HTMLParser):
    """The headings, image sources, table cells and links of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.headings, self.images, self.cells, self.links = [], [], [], []
        self._tag = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("a", "link", "script") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))

    def handle_data(self, data):
        if self._tag == "h2":
            self.headings.append(data.strip())
        if self._tag in ("td", "th", "b"):
            self.cells.append(data.strip())


def tfkit_report(run_dir):
    return subprocess.run(
        [sys.executable, "-m", "tfkit", "report", str(run_dir)],
        env=python_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def report(run_dir):
    result = tfkit_report(run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return Page((run_dir / "report.html").read_text())


def test_a_classifier_report_holds_everything_on_one_page(tmp_path):
    run = tmp_path / "run"
    flags = ["--data", "synthetic", "--max-examples", "300", "--batch-size", "32", "--no-baseline"]
    imdb_conv1d.main(flags + ["--epochs", "2", "--grad-norm-every", "2", "--run-dir", str(run)])
    page = report(run)
    assert page.headings == [
        "Diagnosis",
        "Results",
        "Learning curves",
        "Gradient norms",
        "Config",
    ]
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not page.links  # nothing to fetch: it opens offline
    assert "predicted neg" in page.cells and "true pos" in page.cells  # the confusion matrix
    assert {"fit", "gradients", "best epoch", "first loss", "majority baseline"} <= set(page.cells)


def test_a_gan_report_shows_its_grids_and_an_lr_test_its_curve(tmp_path):
    run = tmp_path / "gan"
    narrow = ["--generator-filters", "8", "--discriminator-filters", "8", "--batch-size", "8"]
    data = ["--data", "synthetic", "--max-examples", "40", "--quality-samples", "10"]
    dcgan_cifar10.main(narrow + data + ["--epochs", "2", "--run-dir", str(run), "--no-export"])
    page = report(run)
    assert "Results" in page.headings and "Gradient norms" in page.headings
    assert "best_pixel_kid" in page.cells
    assert "majority baseline" not in page.cells  # one class: no baseline to beat

    found = tmp_path / "lr"
    imdb_conv1d.main(
        ["--data", "synthetic", "--max-examples", "300", "--batch-size", "32", "--lr-find"]
        + ["--run-dir", str(found)]
    )
    page = report(found)
    assert page.headings == ["LR range test", "Config"]
    assert "suggested learning rate" in page.cells


def test_report_of_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    result = tfkit_report(tmp_path)
    assert result.returncode == 2
    assert re.fullmatch(r"python -m tfkit: error: .* has no config.json; .*\n", result.stderr)


HOSTILE = "<img src=x onerror=alert(1)>"
FINISHED = {"strategy": "default", "replicas": 1, "resumed": []}  # finish_run writes these
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def test_user_text_on_the_page_is_escaped_once(tmp_path):
    """Class names, file names, flag values and the folder's name come from the user."""
    run = tmp_path / HOSTILE
    run.mkdir()
    classes = {HOSTILE: 50, "pos": 50}
    config = {"recipe": HOSTILE, "data_dir": HOSTILE, "class_names": [HOSTILE, "pos"]}
    metrics = {
        **FINISHED,
        "data": HOSTILE,
        "test": {"accuracy": 0.5, "recall": 1.0, "precision": 0.5, "loss": 0.69},
        "class_counts": {"train": classes, "test": classes},
        "skipped_files": [{"file": HOSTILE + ".png", "error": HOSTILE}],
        "dropped_rows": {"train": 3},
        "diagnosis": {
            "fit": "majority class",
            "why": f"test accuracy 0.500 is the 0.500 of always answering '{HOSTILE}'",
            "gradients": "ok",
            "gradients_why": "",
            "best_epoch": 0,
            "advice": [f"weight '{HOSTILE}'"],
            "first_loss": {"value": 0.69, "expected": 0.69, "val_expected": 0.69, "ok": True},
            "majority_baseline": {"split": "test", "class": HOSTILE, "accuracy": 0.5, "auc": 0.5},
            "ignored_classes": [{"class": HOSTILE, "split": "test", "recall": 0.0, "examples": 50}],
        },
        "baseline": {"model": HOSTILE, "test": {"accuracy": 0.8}, "seconds": 1.0},
    }
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = open(write_report(str(run))).read()

    assert HOSTILE not in text
    assert ESCAPED in text and "&amp;lt;" not in text  # escaped, and only once
    page = Page(text)
    assert f"true {HOSTILE}" in page.cells and f"predicted {HOSTILE}" in page.cells
    assert f"{HOSTILE}.png" in " ".join(page.cells)  # the skipped file is named
    assert f"'{HOSTILE}' (recall 0.00 of 50 on test)" in page.cells  # the ignored class too
    assert f"Against the baseline ({ESCAPED}, trained in 1.0 s)" in text
    assert not page.images  # no <img> but the (absent) plots


def test_the_baseline_stands_beside_the_model_and_ignored_classes_are_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = {"accuracy": 0.91, "macro_f1": 0.9, "loss": 0.25, "auc": 0.96}
    linear = {"accuracy": 0.88, "macro_f1": 0.87, "loss": 0.31}  # no AUC: no AUC row
    metrics = {
        **FINISHED,
        "val": model,
        "test": {**model, "accuracy": 0.905},
        "baseline": {"model": "TF-IDF 1-2-grams + linear", "val": linear, "test": linear,
                     "seconds": 4.2},  # fmt: skip
        "diagnosis": {
            "fit": "ignores classes",
            "why": "ignores 'pos' (recall 0.10 of 50 on test)",
            "gradients": "ok",
            "gradients_why": "",
            "best_epoch": 3,
            "advice": [],
            "baseline": "beats the baseline's validation accuracy 0.880 by 3.0 points",
            "ignored_classes": [{"class": "pos", "split": "test", "recall": 0.1, "examples": 50}],
        },
    }
    (run / "config.json").write_text(json.dumps({"recipe": "imdb_conv1d"}))
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = open(write_report(str(run))).read()
    page = Page(text)

    header = ["metric", "model (val)", "baseline (val)", "model (test)", "baseline (test)"]
    start = page.cells.index("model (val)") - 1
    assert page.cells[start : start + 5] == header
    row = page.cells.index("macro-F1")
    assert page.cells[row : row + 5] == ["macro-F1", "0.9", "0.87", "0.9", "0.87"]
    assert page.cells[page.cells.index("accuracy", start) + 3] == "0.905"  # model (test)
    assert "loss" in page.cells and "AUC" not in page.cells
    assert "TF-IDF 1-2-grams + linear, trained in 4.2 s" in text
    assert "beats the baseline's validation accuracy 0.880 by 3.0 points" in page.cells
    assert "'pos' (recall 0.10 of 50 on test)" in page.cells  # the ignored classes' row


GOOD_DIAGNOSIS = {"fit": "good", "why": "", "gradients": "ok", "gradients_why": "",
                  "best_epoch": 0, "advice": []}  # fmt: skip


@pytest.mark.parametrize(
    "name, text, said",
    [
        ("metrics.json", "", "metrics.json is empty"),
        ("metrics.json", '{"test": {"accuracy": 0.9', "metrics.json is not JSON"),
        ("metrics.json", "null", "metrics.json is not a run's record"),
        ("metrics.json", '{"config": {"epochs": 2}}', "it lacks strategy, resumed"),
        (
            "metrics.json",
            json.dumps({**FINISHED, "diagnosis": {"fit": "good"}}),
            "it lacks diagnosis.why, diagnosis.gradients",
        ),
        ("metrics.json", json.dumps({**FINISHED, "test": [0.9]}), "its 'test' is not a table"),
        ("history.csv", "", "history.csv is empty"),
        ("config.json", "", "config.json is empty"),
    ],
)
def test_an_empty_or_partial_file_of_the_run_is_named(tmp_path, name, text, said):
    (tmp_path / "config.json").write_text(json.dumps({"recipe": "imdb_conv1d"}))
    (tmp_path / "metrics.json").write_text(json.dumps({**FINISHED, "diagnosis": GOOD_DIAGNOSIS}))
    (tmp_path / "history.csv").write_text("epoch,loss\n0,0.69\n")
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=re.escape(said)) as caught:
        write_report(str(tmp_path))
    assert "\n" not in str(caught.value) and "--overwrite" in str(caught.value)
    assert not (tmp_path / "report.html").exists()


def test_the_report_command_says_a_partial_run_in_one_line_and_exits_1(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"recipe": "imdb_conv1d"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {"epochs": 2}}))
    result = tfkit_report(tmp_path)
    assert result.returncode == 1
    assert re.fullmatch(r"python -m tfkit: error: .*metrics.json is partial: .*\n", result.stderr)
