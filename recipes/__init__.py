"""Runnable training programs: `python -m recipes.<name>`; `python -m tfkit list` lists them."""
