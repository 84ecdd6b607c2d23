"""README.md and docs/ keep their promises: their links resolve and their commands work.

The rules:
- every relative link in README.md and docs/*.md names a file that exists, and its
  `#anchor` a heading of that file (as GitHub spells anchors); every docs page is
  linked from the README, and the README stays under 300 lines;
- every `python -m recipes.<name> ...` and `python -m tfkit ...` command in a fenced
  block of README.md or docs/*.md is parsed in-process by that recipe's own flag parser
  (`cli.parse_config` on its `Config`), or tfkit's (its handler not run; the command
  after `launch --` checked the same way): a renamed flag, a removed choice or a bad
  value fails here, naming the file and line. Paths that a config checks on disk
  (`--init-from`, `--retrain-best`, `--data dir --data-dir`) are made empty first;
- README.md's commands also run for real, in the README's order, in one temporary
  folder that holds generated data at the paths they name (`DATA`), with quick-run
  flags appended (`quick_flags`: one epoch, 64 examples, no baseline, the ResNet's
  smallest depth, synthetic data when the command names no data). Parsed only: what needs more than this machine or
  minutes by design: a search (`--tune`, `--retrain-best`, `tune-report`), several
  devices or processes (`--strategy`, `launch`), `tfkit train` (its budget).
"""

import contextlib
import dataclasses
import importlib
import io
import itertools
import os
import re
import shlex

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tfkit.__main__ as tfkit_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", name)
    for name in os.listdir(os.path.join(ROOT, "docs"))
    if name.endswith(".md")
)
TFKIT_HANDLERS = ("list_recipes", "copy_recipe", "sample_images", "tune_report", "run_report",
                  "predict_labels", "launch_workers", "train_data")  # fmt: skip
# `train` runs for its budget, minutes by design: tests/test_train.py runs it whole.
NOT_RUN_HERE = {"--tune", "--retrain-best", "--strategy", "tune-report", "launch", "train"}
SHELL_SEPARATORS = {"&&", "||", ";", "|"}


def read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as file:
        return file.read()


def fenced_blocks(text):
    """(first line number, lines) of each ``` block."""
    blocks, inside, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if inside is None:
                inside, start = [], number + 1
            else:
                blocks.append((start, inside))
                inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def shell_commands(start, lines):
    """(line number, words) of each simple command of a block, as a shell would split it."""
    commands, pending, first = [], "", start
    for number, line in enumerate(lines, start):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            first = number
        if line.endswith("\\"):  # a continued line: the shell drops backslash-newline
            pending += line[:-1] + " "
            continue
        pending += line
        try:
            words = shlex.split(pending)
        except ValueError:  # a quote spans lines (TF_CONFIG='{...\n...}')
            pending += "\n"
            continue
        pending = ""
        command = []
        for word in words + [";"]:
            if word in SHELL_SEPARATORS:
                commands.append((first, command))
                command = []
            elif command or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):  # VAR=value
                command.append(word)
    assert not pending, f"line {first}: an unclosed quote or a dangling backslash"
    return commands


def python_m_commands(page):
    """(where, module, args) of each `python -m` command of `page`'s fenced blocks."""
    found = []
    for start, lines in fenced_blocks(read(page)):
        if not any(re.search(r"\bpython3? -m ", line) for line in lines):
            continue  # a table, a picture of a folder, a docker or curl line
        for number, words in shell_commands(start, lines):
            if words[:1] in (["python"], ["python3"]) and words[1:2] == ["-m"]:
                if words[2] in ("venv", "pip", "pytest"):
                    continue  # the set-up lines' own tools
                found.append((f"{page}:{number}", words[2], words[3:]))
    return found


COMMANDS = [command for page in PAGES for command in python_m_commands(page)]
README_COMMANDS = [command for command in COMMANDS if command[0].startswith("README.md:")]


# Links.


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    seen, found = {}, set()
    text = read(page)
    for start, lines in fenced_blocks(text):  # a `# comment` in a block is no heading
        text = text.replace("\n".join(lines), "")
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        name = slug(heading)
        found.add(f"{name}-{seen[name]}" if name in seen else name)
        seen[name] = seen.get(name, 0) + 1
    return found


def links(page):
    """(target, anchor) of each markdown link outside code blocks and code spans."""
    text = read(page)
    for start, lines in fenced_blocks(text):
        text = text.replace("\n".join(lines), "")
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        yield path, anchor


@pytest.mark.parametrize("page", PAGES)
def test_every_link_names_a_file_and_a_heading_that_exist(page):
    found = list(links(page))
    assert found, f"{page} links to no other page"
    for path, anchor in found:
        target = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(os.path.join(ROOT, target)), f"{page}: {path} does not exist"
        if anchor:
            assert target.endswith(".md"), f"{page}: #{anchor} on {path}, not a page"
            assert anchor in anchors(target), f"{page}: {target} has no heading #{anchor}"


def test_the_readme_is_one_screen_of_set_up_and_links_every_docs_page():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 300
    linked = {os.path.normpath(path) for path, _ in links("README.md")}
    assert set(PAGES[1:]) <= linked, f"not linked from README.md: {set(PAGES[1:]) - linked}"
    # .ci/run runs this line verbatim.
    assert re.search(r"^python3 -m venv \.venv .*pytest", readme, flags=re.MULTILINE)


def test_the_command_finder_reads_shell_as_a_shell_does():
    block = [
        "# a comment",
        "A=1 B='x y' python -m recipes.r --flag 'two words' \\",
        "    --other 2 && python -m tfkit list",
        """TF_CONFIG='{"a": 1,""",
        """           "b": 2}' \\""",
        "python -m recipes.s",
    ]
    assert shell_commands(10, block) == [
        (11, ["python", "-m", "recipes.r", "--flag", "two words", "--other", "2"]),
        (11, ["python", "-m", "tfkit", "list"]),
        (13, ["python", "-m", "recipes.s"]),
    ]
    assert len(README_COMMANDS) >= 5  # the README's examples were found


# Every command parses.


def make_checked_paths(args):
    """Creates, empty, the paths a config checks on disk, in the current folder."""
    for flag, value in itertools.pairwise(args):
        if flag == "--init-from" and value.endswith(".keras"):
            open(value, "w").close()
        elif flag in ("--init-from", "--data-dir") and not os.path.isabs(value):
            os.makedirs(value, exist_ok=True)
        elif flag == "--retrain-best" and not os.path.isabs(value):
            os.makedirs(value, exist_ok=True)
            with open(os.path.join(value, "best.json"), "w") as file:
                file.write("{}")


def recipe_module(module):
    assert module.startswith("recipes."), f"python -m {module}: not a recipe or tfkit"
    return importlib.import_module(module)


def parse_recipe_command(module, args):
    """The recipe's config from `args`, as its `main` parses them; None for --help."""
    from tfkit import cli

    recipe = recipe_module(module)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return cli.parse_config(recipe.Config, args, prog=f"python -m {module}")
    except SystemExit as exit:
        assert exit.code == 0 and "--help" in args, stderr.getvalue().strip()
        return None


def parse_tfkit_command(args, monkeypatch):
    """The handler `python -m tfkit ARGS` would run, and its arguments."""
    called = []
    for name in TFKIT_HANDLERS:
        monkeypatch.setattr(
            tfkit_main, name, lambda parsed, name=name: called.append((name, parsed))
        )
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            tfkit_main.main(args)
    except SystemExit as exit:
        raise AssertionError(stderr.getvalue().strip() or f"exit {exit.code}") from None
    assert len(called) == 1
    return called[0]


def check_parses(module, args, monkeypatch):
    if module != "tfkit":
        return parse_recipe_command(module, args)
    name, parsed = parse_tfkit_command(args, monkeypatch)
    if name == "launch_workers":  # the workers' own command parses too
        inner = (
            parsed.command_line[1:] if parsed.command_line[:1] == ["--"] else parsed.command_line
        )
        assert inner[:2] == ["python", "-m"], f"launch runs {inner}, not a python -m command"
        check_parses(inner[2], inner[3:], monkeypatch)
    return parsed


@pytest.mark.parametrize(
    "module, args", [command[1:] for command in COMMANDS], ids=[command[0] for command in COMMANDS]
)
def test_every_command_shown_parses(module, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_checked_paths(args)
    check_parses(module, args, monkeypatch)


def test_a_renamed_flag_or_a_bad_value_fails_the_parse_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_parses("recipes.text_ngrams", shlex.split("--data csv --data-dir t.csv"), monkeypatch)
    for module, line, error in [
        ("recipes.text_ngrams", "--data csv --data-dir t.csv --text-col x", "--text-col"),
        ("recipes.imdb_conv1d", "--epochs 0", "epochs must be >= 1"),
        ("recipes.imdb_conv1d", "--strategy mirored", "invalid choice: 'mirored'"),
        ("tfkit", "predict saved_models/x --input a.csv", "--output"),
        ("tfkit", "launch --workers 2 -- python -m recipes.imdb_conv1d --cell lstm", "--cell"),
    ]:
        with pytest.raises(AssertionError, match=re.escape(error)):
            check_parses(module, shlex.split(line), monkeypatch)


# The README's commands run.

TOPICS = ("billing", "bug", "login")
LEAF_COLOURS = {"healthy": (40, 160, 60), "rust": (170, 90, 30), "scab": (90, 80, 70)}


def texts(count, seed):
    """Short texts of three topics, each with cue words of its topic among common words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(TOPICS), count)
    rows = [
        " ".join(
            [f"w{i}" for i in rng.integers(0, 50, 8)] + [f"{TOPICS[label]}{i}" for i in range(3)]
        )
        for label in labels
    ]
    return pd.DataFrame({"text": rows, "label": [TOPICS[label] for label in labels]})


def pictures(folder, per_class, seed):
    rng = np.random.default_rng(seed)
    for name, colour in LEAF_COLOURS.items():
        os.makedirs(folder / name, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-30, 30, (40, 48, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / name / f"{i}.{'jpg' if i % 2 else 'png'}")


# What the README's commands read, generated at the path they name.
DATA = {
    "my_table.csv": lambda path: texts(120, seed=0).to_csv(path, index=False),
    "new_texts.csv": lambda path: texts(10, seed=1)[["text"]].to_csv(path, index=False),
    "leaves": lambda path: pictures(path, per_class=10, seed=0),
    "new_leaves": lambda path: pictures(path, per_class=2, seed=1),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One folder for all the README's commands: later ones read what earlier ones wrote."""
    folder = tmp_path_factory.mktemp("readme")
    for name, write in DATA.items():
        write(folder / name)
    return folder


def quick_flags(recipe, args):
    """Flags that make a recipe's command a run of seconds on tiny data."""
    flags = ["--epochs", "1", "--max-examples", "64", "--batch-size", "32", "--verbose", "0"]
    if "--data" not in args:  # the default reads the network's dataset
        flags += ["--data", "synthetic"]
    fields = {field.name for field in dataclasses.fields(recipe.Config)}
    if "baseline" in fields:
        flags += ["--no-baseline"]
    if "depth" in fields:  # the ResNet: its smallest, 8 layers (tracing 20 takes a minute)
        flags += ["--depth", "8"]
    return flags


def metrics_files(folder):
    return {str(path) for path in folder.rglob("metrics.json")}


@pytest.mark.slow
def test_every_readme_command_runs_in_order(workspace, monkeypatch, capsys):
    """One test, so the commands run in the README's order on one pytest worker (a later
    command reads what an earlier one wrote)."""
    monkeypatch.chdir(workspace)
    for where, module, args in README_COMMANDS:
        if NOT_RUN_HERE & set(args):
            continue  # parsed only (test_every_command_shown_parses)
        try:
            run_readme_command(module, args, workspace, capsys)
        except AssertionError as error:
            raise AssertionError(f"{where}: python -m {module} {' '.join(args)}: {error}") from None


def run_readme_command(module, args, workspace, capsys):
    if module == "tfkit":
        try:
            tfkit_main.main(args)
        except SystemExit as exit:
            assert exit.code == 0, capsys.readouterr().err
        if args[0] == "predict":
            output = pd.read_csv(args[args.index("--output") + 1])
            assert len(output) and "predicted_label" in output
        elif args[0] == "report":
            assert (workspace / args[1] / "report.html").is_file()
        else:
            assert capsys.readouterr().out.strip()
        return
    recipe = recipe_module(module)
    before = metrics_files(workspace)
    try:
        recipe.main(args + quick_flags(recipe, args))
    except SystemExit as exit:  # --help
        assert exit.code == 0 and "--help" in args
        assert "--learning-rate" in capsys.readouterr().out
        return
    assert len(metrics_files(workspace) - before) == 1, "the run wrote no metrics.json"
