"""`python -m tfkit report`: one self-contained page per run folder."""

import re
import subprocess
import sys
from html.parser import HTMLParser

from conftest import ROOT, python_env
from recipes import dcgan_cifar10, imdb_conv1d


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
    flags = ["--data", "synthetic", "--max-examples", "300", "--batch-size", "32"]
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
