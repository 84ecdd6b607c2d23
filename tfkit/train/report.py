"""The report of a train run: `report.html`, self-contained, written from its journal.

What was read and why, the plan, the leaderboard, each rule that fired with its
numbers, the pick and why, the refit, the export, and whether the pick beats the
baseline by more than chance (McNemar's exact test on the test split). Each candidate's
own report (`python -m tfkit report`) is written beside its run and linked.
"""

import html
import json
import math
import os

from tfkit.files import write_text
from tfkit.report import STYLE, Markup, table_html
from tfkit.report import write_report as write_run_report
from tfkit.tables import read_table
from tfkit.train.journal import Journal

TEST_NOTE = "test scores are shown, never used to choose"


def write_report(run_dir):
    """Writes `run_dir/report.html` (and each finished candidate's); returns its path."""
    journal = Journal(run_dir)
    read, plan, pick = journal.last("read"), journal.last("plan"), journal.last("pick")
    write_candidate_reports(run_dir, [c["candidate"] for c in plan["candidates"]] + ["refit"])
    sections = [
        _section("What was read", "".join(f"<p>{html.escape(line)}</p>" for line in read["lines"])),
        _plan_section(plan),
        _leaderboard_section(run_dir),
        _rules_section(journal),
        _pick_section(journal, pick, run_dir),
    ]
    title = f"tfkit train: {read['path']}"
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(sections) + "</body></html>"
    )
    path = os.path.join(run_dir, "report.html")
    write_text(path, page)
    return path


def _section(title, body):
    return f"<h2>{html.escape(title)}</h2>{body}"


def _plan_section(plan):
    rows = [(c["candidate"], c["recipe"], " ".join(c["flags"]) or "(defaults)", c["reason"])
            for c in plan["candidates"]]  # fmt: skip
    rows += [(s["candidate"], "", "", "left out: " + s["reason"]) for s in plan["skipped"]]
    return _section("The plan, cheapest first", table_html(rows, ["candidate", "recipe", "flags", "why"]))


def _leaderboard_section(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as file:
        records = json.load(file)["leaderboard"]  # numbers as numbers, unlike the CSV's text
    columns = list(read_table(os.path.join(run_dir, "leaderboard.csv")).columns)  # its order
    rows = []
    for record in ({name: record.get(name) for name in columns} for record in records):
        name = record["candidate"]
        link = os.path.join("candidates", name, "report.html")
        if os.path.exists(os.path.join(run_dir, link)):
            record["candidate"] = Markup(f"<a href='{html.escape(link)}'>{html.escape(name)}</a>")
        rows.append([_cell(value) for value in record.values()])
    note = f"<p class='muted'>{TEST_NOTE}: the pick reads validation only.</p>"
    return _section("Leaderboard", table_html(rows, columns) + note)


def _rules_section(journal):
    rows = [(line["candidate"], line["reason"]) for line in journal.events if line["event"] == "stop"]
    if not rows:
        return _section("Rules that fired", "<p>none: every candidate ran to its end</p>")
    return _section("Rules that fired", table_html(rows, ["candidate", "stopped because"]))


def _pick_section(journal, pick, run_dir):
    refit, export = journal.last("refit"), journal.last("export")
    lines = [f"pick: {pick['candidate']}: {pick['reason']}"]
    if refit:
        lines.append(f"refit on train + validation: {'yes' if refit['refit'] else 'no'} ({refit['reason']})")
    if export:
        lines.append(f"exported: {export['candidate']} at {export['path']}")
    with open(os.path.join(run_dir, "metrics.json")) as file:
        metrics = json.load(file)
    comparison = metrics.get("mcnemar")
    if metrics["pick"]["exported"] == journal.last("plan")["candidates"][0]["candidate"]:
        lines.append("the exported model is the baseline itself: no other candidate beat it on validation")
    elif comparison:
        verdict = "beats" if comparison["b"] > comparison["c"] and comparison["p"] < 0.05 else (
            "trails" if comparison["c"] > comparison["b"] and comparison["p"] < 0.05 else
            "is not distinguishable from")  # fmt: skip
        lines.append(
            f"on the test split ({TEST_NOTE}), the exported model {verdict} the baseline: served "
            f"accuracy {comparison['pick_accuracy']:.4f} vs {comparison['baseline_accuracy']:.4f}; "
            f"{comparison['b']} test examples only it gets right, {comparison['c']} only the "
            f"baseline; McNemar's exact test p = {comparison['p']:.3g}"
        )
    return _section("The pick", "".join(f"<p>{html.escape(line)}</p>" for line in lines))


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else float(f"{value:.4g}")
    return "" if value is None else value


def write_candidate_reports(run_dir, names):
    """Each finished candidate's own report.html, for the links."""
    for name in names:
        folder = os.path.join(run_dir, "candidates", name)
        if os.path.exists(os.path.join(folder, "metrics.json")):
            write_run_report(folder)
