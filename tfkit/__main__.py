"""`python -m tfkit list | cp RECIPE DEST.py`: find a recipe, or copy one to edit.

Recipes are found by reading their header docstrings with `ast`, without importing
them (or TensorFlow), so these commands answer at once.
"""

import ast
import importlib.util
import os
import shutil
import sys

from tfkit.cli import USAGE_ERROR, OneLineParser


def recipe_files():
    """{recipe name: path of its .py file} for every module in the `recipes` package."""
    spec = importlib.util.find_spec("recipes")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = list(spec.submodule_search_locations)[0]
    return {
        name[:-3]: os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.endswith(".py") and not name.startswith("_")
    }


def recipe_header(path):
    """The `Key: value` lines at the top of a recipe's docstring, as a dict."""
    with open(path, encoding="utf-8") as file:
        docstring = ast.get_docstring(ast.parse(file.read())) or ""
    header = {}
    for line in docstring.splitlines():
        key, separator, value = line.partition(":")
        if not separator or " " in key.strip():
            break
        header[key.strip()] = value.strip()
    return header


def list_recipes(args):
    recipes = recipe_files()
    width = max(map(len, recipes), default=0)
    for name, path in recipes.items():
        header = recipe_header(path)
        print(f"{name:<{width}}  {header.get('Title', '')}  [{header.get('Source', '?')}]")
        print(f"{'':<{width}}  run: python -m recipes.{name} --help")


def copy_recipe(args):
    recipes = recipe_files()
    if args.recipe not in recipes:
        _usage_error(f"unknown recipe {args.recipe!r}; known: {', '.join(recipes)}")
    if os.path.exists(args.destination):
        _usage_error(f"{args.destination} exists; choose another name (it is never overwritten)")
    shutil.copyfile(recipes[args.recipe], args.destination)
    print(f"copied {args.recipe} to {args.destination}; run it with: python {args.destination}")


def main(argv=None):
    parser = OneLineParser(prog="python -m tfkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands.add_parser("list", help="list the recipes").set_defaults(handler=list_recipes)
    copy = commands.add_parser("cp", help="copy a recipe to a file of your own to edit and run")
    copy.add_argument("recipe", help="a recipe name from `python -m tfkit list`")
    copy.add_argument("destination", help="the new file, e.g. my_model.py")
    copy.set_defaults(handler=copy_recipe)
    args = parser.parse_args(argv)
    args.handler(args)


def _usage_error(message):
    print(f"python -m tfkit: error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    main()
