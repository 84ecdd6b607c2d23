"""`python -m tfkit train DATA`: what it reads, what it refuses, and a whole run."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from conftest import python_env

from tfkit.baseline import epoch_budget
from tfkit.errors import UsageError
from tfkit.train.budget import Clock, parse_duration
from tfkit.train.journal import Journal
from tfkit.train.pick import pick
from tfkit.train.plan import plan
from tfkit.train.reading import read_data

TOPICS = {"sports": "goal match team coach score league player win",
          "travel": "flight hotel beach trip passport tour island museum",
          "tech": "software chip laptop code server cloud phone app"}  # fmt: skip
FILLER = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "for", "on", "with", "very"]


def news_table(rows=240, seed=0, noise=0.0):
    """A learnable table: an id, a title and a body, and the topic as `category`; `noise`
    of the rows get a topic drawn at random (which the validation loss soon shows)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(rows):
        topic = list(TOPICS)[i % 3]
        words = list(rng.choice(TOPICS[topic].split(), 2)) + list(rng.choice(FILLER, 9))
        if rng.random() < noise:
            topic = rng.choice(list(TOPICS))
        rng.shuffle(words)
        title = " ".join(rng.choice(FILLER + TOPICS[topic].split(), 4))
        records.append({"id": f"r{i}", "title": title, "body": " ".join(words), "category": topic})
    return pd.DataFrame(records)


def train_command(*args):
    return [sys.executable, "-m", "tfkit", "train", *map(str, args)]


def test_a_table_is_read_and_said_before_anything_else(tmp_path):
    table = news_table()
    table.loc[0, "category"] = None  # a row without a label
    table.loc[1, ["title", "body"]] = None  # a row without a text
    table.to_csv(tmp_path / "news.csv", index=False)
    reading = read_data(str(tmp_path / "news.csv"))
    said = "\n".join(reading.lines)
    assert reading.kind == "texts" and reading.label_column == "category"
    assert "label: column 'category' (its conventional name)" in said
    # the title and the body are long strings, the id is not: both joined, in order
    assert reading.text_columns == ("title", "body") and "joined" in said
    assert reading.dropped == {"train: missing label": 1, "train: empty text": 1}
    assert len(reading.train) + len(reading.test) == 238
    assert "test: 48 rows held out (20%, stratified by class, seed 1337)" in said
    assert reading.class_names == ("sports", "tech", "travel")
    assert reading.train["text"][0].count("\n") == 1  # title, then body


def test_the_label_is_the_one_column_with_few_values_when_none_has_a_conventional_name(tmp_path):
    news_table().rename(columns={"category": "section"}).to_json(
        tmp_path / "news.jsonl", orient="records", lines=True
    )
    reading = read_data(str(tmp_path / "news.jsonl"))
    assert reading.label_column == "section"
    assert "the one column with few distinct values: 3" in reading.lines[1]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.rename(columns={"category": "x1"}).assign(x2=t["category"]),
         "no label column found among id, title, body, x1, x2"),
        (lambda t: t.assign(category=np.arange(len(t)) * 1.5), "a regression target"),
        (lambda t: t.assign(category=["a", "b"] * (len(t) // 2 - 1) + ["a", "c"]), "single example"),
        (lambda t: t.assign(category="one"), "one class"),
        (lambda t: t.assign(category=t["id"]), "it holds texts or ids, not classes"),
        (lambda t: t.assign(title="x", body="y"), "no text column found"),
        (lambda t: t.assign(category=None), "no row has both a text and a label"),
    ],
)  # fmt: skip
def test_a_table_it_cannot_use_is_refused_in_one_line_with_the_way_out(tmp_path, change, message):
    change(news_table()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UsageError, match=message):
        read_data(str(tmp_path / "bad.csv"))


def test_the_command_refuses_bad_data_with_exit_2_and_writes_nothing(tmp_path):
    news_table().assign(category=np.arange(240) * 0.5).to_csv(tmp_path / "prices.csv", index=False)
    result = subprocess.run(train_command(tmp_path / "prices.csv", "--run-dir", tmp_path / "run"),
                            env=python_env(), cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("python -m tfkit: error: column")
    assert "a regression target: tfkit trains classifiers" in result.stderr
    assert not (tmp_path / "run").exists() and os.listdir(tmp_path) == ["prices.csv"]


def test_a_run_folder_continues_only_the_same_command_with_any_budget(tmp_path):
    from tfkit.train.command import TRAIN_FILE, _finished_or_resumed

    record = {"data": "/data/news.csv", "seed": 1337, "export_dir": "/served/news", "time_budget_seconds": 600}
    (tmp_path / TRAIN_FILE).write_text(json.dumps(record))
    (tmp_path / "journal.jsonl").write_text('{"event": "read", "spent_seconds": 12.5}\n')
    journal = _finished_or_resumed(str(tmp_path), {**record, "time_budget_seconds": 90})
    assert [line["event"] for line in journal.events] == ["read"]
    with pytest.raises(UsageError, match="export_dir: '/served/news' there, '/served/other' now"):
        _finished_or_resumed(str(tmp_path), {**record, "export_dir": "/served/other"})
    # The budget spent: clock.json's, or the journal's last line where that is newer.
    (tmp_path / "clock.json").write_text('{"spent_seconds": 10.0}')
    assert Clock(str(tmp_path), 90, journal.events).spent_before == 12.5


def test_class_folders_of_texts_and_tables_with_their_own_test_split(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for topic, words in TOPICS.items():
            os.makedirs(tmp_path / "folders" / split / topic)
            for i in range(count):
                (tmp_path / "folders" / split / topic / f"{i}.txt").write_text(words)
    reading = read_data(str(tmp_path / "folders"))
    assert reading.layout == "train/ and test/ class folders" and reading.test_given
    assert len(reading.train) == 18 and len(reading.test) == 6

    os.makedirs(tmp_path / "tables")
    news_table(90).to_csv(tmp_path / "tables" / "train.csv", index=False)
    news_table(30, seed=1).to_parquet(tmp_path / "tables" / "test.parquet")
    reading = read_data(str(tmp_path / "tables"))
    assert reading.test_given and len(reading.test) == 30 and len(reading.train) == 90


def test_class_folders_without_texts_or_with_a_test_class_train_lacks_are_refused(tmp_path):
    for split, topics in (("train", ["sports", "tech", "travel"]), ("test", ["sports", "art"])):
        for topic in topics:
            os.makedirs(tmp_path / split / topic)
            if topic != "travel":
                (tmp_path / split / topic / "1.txt").write_text("some words here")
                (tmp_path / split / topic / "2.txt").write_text("more words here")
    with pytest.raises(UsageError, match="test has the class.es. art that"):
        read_data(str(tmp_path))
    os.rename(tmp_path / "test", tmp_path / "later")
    with pytest.raises(UsageError, match="class folder.s. travel of .* hold no .txt file"):
        read_data(str(tmp_path))


def test_a_run_folder_or_export_folder_that_is_a_file_is_refused_before_any_work(tmp_path):
    news_table().to_csv(tmp_path / "news.csv", index=False)
    (tmp_path / "taken").write_text("")
    for flags in (["--run-dir", "taken"], ["--run-dir", "run", "--export-dir", "taken/x"]):
        result = subprocess.run(train_command(tmp_path / "news.csv", *flags), env=python_env(),
                                cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "taken" in result.stderr
        assert sorted(os.listdir(tmp_path)) == ["news.csv", "taken"]


def test_a_folder_mixing_pictures_and_texts_is_refused(tmp_path):
    for topic in ("a", "b"):
        os.makedirs(tmp_path / topic)
        (tmp_path / topic / "1.txt").write_text("words")
        (tmp_path / topic / "2.png").write_bytes(b"\x89PNG")
    with pytest.raises(UsageError, match="mixes pictures and texts"):
        read_data(str(tmp_path))


def picture_classes(root, per_class=15):
    """Two classes of noisy red and blue squares, as PNG files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 30, 30)), ("blue", (40, 60, 210))):
        os.makedirs(root / name)
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 40, (24, 24, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_class_folders_of_pictures_are_read_planned_and_refused_in_a_format_not_served(tmp_path):
    folder = picture_classes(tmp_path / "shapes")
    (folder / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    Image.new("L", (101, 100)).save(folder / "blue" / "large.png")
    reading = read_data(str(folder), max_pixels=100 * 100)
    assert reading.kind == "pictures" and reading.class_counts == {"blue": 12, "red": 12}
    assert reading.lines[1] == "rows: 24 pictures for training, 2 classes: blue 12, red 12"
    assert reading.lines[2] == (
        "dropped 2 file(s) that are not readable pictures: blue/large.png (a picture of 101x100 "
        "pixels, above the limit of 10000 (--max-pixels); shrink it first), red/broken.png "
        "(not a picture)"
    )
    assert "test: 6 pictures held out (20%, stratified by class, seed 1337)" in reading.lines
    assert sorted(reading.test["label"]) == ["blue"] * 3 + ["red"] * 3
    ladder, skipped = plan(reading)
    assert [(c.name, c.recipe) for c in ladder] == [("linear", "pixels_linear"),
                                                    ("resnet-20", "cifar10_resnet")]  # fmt: skip
    assert skipped[0][0] == "resnet-32" and "24 pictures < 10,000" in skipped[0][1]
    (folder / "red" / "scan.tiff").write_bytes(b"II*\0")
    with pytest.raises(UsageError, match=r"1 picture\(s\) in a format the exported model cannot "
                                         r"decode .* convert them to PNG"):  # fmt: skip
        read_data(str(folder))


def test_the_plan_follows_the_texts_per_word_rule():
    class Reading:
        kind, rows, mean_words, long_words = "texts", 2_000, 200.0, 290  # 10 texts per word

    ladder, skipped = plan(Reading())
    assert [c.name for c in ladder] == ["linear", "ngrams-16", "ngrams-64", "lstm"]
    assert ladder[0].flags[:4] == ["--units", "0", "--dropout", "0"]
    assert ladder[0].flags[-2:] == ["--epochs", str(epoch_budget(1_600))]  # as the baseline's
    assert skipped[0][0] == "conv1d" and "10 < 1,500" in skipped[0][1]
    assert ladder[-1].flags[-2:] == ["--max-len", "304"]  # 95% of the texts, to 16
    Reading.rows, Reading.mean_words = 150_000, 20.0  # 7,500: a sequence model may win
    assert "conv1d" in [c.name for c in plan(Reading())[0]]


def test_the_pick_is_the_cheapest_within_one_standard_error_of_the_best():
    def finished(*scores):
        return {name: {"val": {"accuracy": score}} for name, score in zip(("linear", "ngrams-16", "ngrams-64"), scores)}

    # 0.832 on 576 examples: a standard error of 0.0156; ngrams-16's 0.830 is within it.
    chosen, why = pick(finished(0.810, 0.830, 0.832), "accuracy", 576)
    assert chosen == "ngrams-16" and "one standard error (0.0156" in why and "ngrams-64's 0.8320" in why
    # On 10 times the examples the error is 0.0049: the lead of 0.002 still is not enough...
    assert pick(finished(0.810, 0.830, 0.832), "accuracy", 5_760)[0] == "ngrams-16"
    # ...but 0.01 is, and the best is picked; a tie goes to the cheaper.
    chosen, why = pick(finished(0.810, 0.822, 0.832), "accuracy", 5_760)
    assert chosen == "ngrams-64" and why.startswith("the best validation accuracy")
    assert pick(finished(0.9, 0.9, 0.9), "accuracy", 10**6)[0] == "linear"
    assert pick({"linear": {"val": {}}}, "accuracy", 100)[0] is None


def test_durations_and_a_journal_cut_by_a_kill(tmp_path):
    assert [parse_duration(t) for t in ("90s", "10m", "1h30m", "45")] == [90, 600, 5400, 45]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("ten minutes")
    journal = Journal(str(tmp_path))
    journal.write("start", candidate="linear")
    with open(tmp_path / "journal.jsonl", "a") as file:
        file.write('{"event": "fin')  # the kill came mid-line
    journal = Journal(str(tmp_path))
    assert [line["event"] for line in journal.events] == ["start"]
    journal.write("finish", candidate="linear")
    assert [line["event"] for line in Journal(str(tmp_path)).events] == ["start", "finish"]


def journal_events(run_dir):
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def kill_when(process, run_dir, event, candidate, history_rows=0):
    """SIGKILLs `process` once its journal holds `event` of `candidate` and the candidate's
    history.csv has `history_rows` rows (it is then mid-training, with a backup)."""
    history = run_dir / "candidates" / candidate / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        started = (run_dir / "journal.jsonl").exists() and any(
            e["event"] == event and e.get("candidate") == candidate for e in journal_events(run_dir))
        rows = len(pd.read_csv(history)) if history_rows and history.exists() else 0
        if started and rows >= history_rows:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.kill()
    process.wait(timeout=60)


def origins(export_dir):
    """Which candidate's export each version of a served model is, oldest first."""
    versions = sorted(os.listdir(export_dir), key=int)
    return [json.loads((export_dir / v / "assets.extra" / "tfkit_train.json").read_text())["candidate"]
            for v in versions]  # fmt: skip


@pytest.mark.slow
def test_a_table_to_a_served_model_within_the_budget_and_again_after_kills(tmp_path):
    news_table(noise=0.3).to_csv(tmp_path / "news.csv", index=False)
    budget = 150
    flags = ["--time-budget", f"{budget}s", "--deterministic"]
    whole = train_command(tmp_path / "news.csv", "--run-dir", tmp_path / "whole",
                          "--export-dir", tmp_path / "served", *flags)  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(whole, env=python_env(), cwd=tmp_path, capture_output=True, text=True)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert seconds <= budget * 1.05 + 20
    events = journal_events(tmp_path / "whole")
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["read", "split", "plan"] and kinds[-1] == "done"
    # The baseline is served before any other candidate starts.
    first_export = kinds.index("export")
    assert events[first_export]["candidate"] == "linear"
    assert [e["candidate"] for e in events[:first_export] if e["event"] == "start"] == ["linear"]
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert {"test", "baseline", "pick", "leaderboard", "mcnemar_p"} <= set(metrics)
    assert metrics["test"]["accuracy"] >= 0.6 and 0 <= metrics["mcnemar_p"] <= 1
    board = pd.read_csv(tmp_path / "whole" / "leaderboard.csv")
    assert list(board["candidate"]) == [c["candidate"] for c in events[2]["candidates"]]
    # The served model labels the test split as the run evaluated it.
    served = pd.read_json(tmp_path / "whole" / "predictions" / "pick.jsonl", lines=True)
    accuracy = (served["predicted_label"] == served["label"]).mean()
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert (tmp_path / "whole" / "report.html").exists()
    served = origins(tmp_path / "served")
    assert served[0] == "linear" and served[-1] == metrics["pick"]["exported"]

    again = subprocess.run(whole, env=python_env(), cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "finished before" in again.stdout
    assert journal_events(tmp_path / "whole") == events  # nothing changed

    # SIGKILLed while the second candidate trains (the baseline already served) and run
    # again: the same pick and test metrics, no candidate trained twice or served twice.
    killed = train_command(tmp_path / "news.csv", "--run-dir", tmp_path / "run",
                           "--export-dir", tmp_path / "served2", *flags)  # fmt: skip
    process = subprocess.Popen(killed, env=python_env(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    kill_when(process, tmp_path / "run", "start", "ngrams-16", history_rows=2)
    result = subprocess.run(killed, env=python_env(), cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert resumed["pick"]["candidate"] == metrics["pick"]["candidate"]
    assert resumed["test"] == metrics["test"]
    finishes = [e["candidate"] for e in journal_events(tmp_path / "run") if e["event"] == "finish"]
    assert len(finishes) == len(set(finishes))
    assert "resumed at epoch" in (tmp_path / "run" / "logs" / "ngrams-16.log").read_text()
    # Its seconds are those of both launches: at least all its epochs' training.
    finish = next(e for e in journal_events(tmp_path / "run") if e["event"] == "finish"
                  and e["candidate"] == "ngrams-16")  # fmt: skip
    assert finish["seconds"] >= finish["train_seconds"]
    assert origins(tmp_path / "served2") == origins(tmp_path / "served")  # each version once


@pytest.mark.slow
def test_a_picture_folder_to_a_served_model_with_a_budget_for_the_baseline_alone(tmp_path):
    # A budget too small for more than the baseline: it is trained whole and served anyway.
    folder = picture_classes(tmp_path / "shapes", per_class=20)
    budget = 30
    command = train_command(folder, "--time-budget", f"{budget}s", "--run-dir", tmp_path / "run",
                            "--export-dir", tmp_path / "served")  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(command, env=python_env(), cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - start <= budget * 1.05 + 20
    assert "data: pictures, from class folders" in result.stdout
    events = journal_events(tmp_path / "run")
    assert [e["candidate"] for e in events if e["event"] == "export"][0] == "linear"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9 and 0 <= metrics["mcnemar_p"] <= 1
    # The served model labels the test pictures as the run evaluated them.
    served = pd.read_json(tmp_path / "run" / "predictions" / "pick.jsonl", lines=True)
    truth = served["path"].str.split("/").str[0]
    assert len(served) == 8 and (served["predicted_label"] == truth).mean() == pytest.approx(
        metrics["test"]["accuracy"], abs=1e-6)
    assert "python -m tfkit predict" in result.stdout and "--input FOLDER" in result.stdout
    assert "resnet-20: no time left; not started" in result.stdout


class FixedClock:
    def __init__(self, left):
        self.seconds_left = left

    def tick(self, force=False):
        pass

    def left(self):
        return self.seconds_left


@pytest.mark.parametrize("trained, status", [(True, "finished"), (False, "stopped")])
def test_a_candidate_past_its_training_may_finish_into_the_time_kept_for_a_refit(
    tmp_path, trained, status
):
    from tfkit.train.candidates import run_candidate

    # A candidate being evaluated when only the refit's reserve is left: its epochs are kept
    # (it ends, down to the floor); one still training is stopped.
    os.makedirs(tmp_path / "run" / "backup")
    (tmp_path / "run" / "history.csv").write_text("epoch,val_accuracy\n0,0.5\n")
    (tmp_path / "run" / "backup" / "state.json").write_text(json.dumps({"finished": trained}))
    metrics = str(tmp_path / "run" / "metrics.json")
    child = f"import time; time.sleep(2); open({metrics!r}, 'w').write('{{}}')"
    outcome = run_candidate([sys.executable, "-c", child], str(tmp_path / "run"),
                            str(tmp_path / "log.txt"), FixedClock(30), reserve=40, floor=15)  # fmt: skip
    assert outcome.status == status
