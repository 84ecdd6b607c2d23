"""Data sources for the recipes: `--data tfds|dir|synthetic`, each returning the same splits."""

from tfkit.data.imdb import load_imdb
from tfkit.data.splits import Splits

__all__ = ["Splits", "load_imdb"]
