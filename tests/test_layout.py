"""Imports go one way: recipes -> tfkit -> keras/tf (STYLE.md 2)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_tfkit_never_imports_a_recipe():
    for path in (ROOT / "tfkit").rglob("*.py"):
        assert not [m for m in imported_modules(path) if m.split(".")[0] == "recipes"], path


def test_recipes_never_import_each_other():
    for path in (ROOT / "recipes").glob("*.py"):
        assert not [m for m in imported_modules(path) if m.startswith("recipes")], path
