import subprocess
import sys

import pytest

from conftest import ROOT, python_env
from tfkit.__main__ import main, recipe_files, recipe_header


def test_list_names_every_recipe_with_its_title(capsys):
    main(["list"])
    out = capsys.readouterr().out
    assert set(recipe_files()) >= {"imdb_conv1d", "imdb_rnn"}
    for name, path in recipe_files().items():
        assert name in out and recipe_header(path)["Title"] in out


def test_list_does_not_import_tensorflow():
    code = "import sys; from tfkit.__main__ import main; main(['list']); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=python_env(), cwd=ROOT, capture_output=True)


def test_cp_refuses_unknown_recipe_and_existing_destination(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cp", "no_such_recipe", str(tmp_path / "x.py")])
    assert exit_info.value.code == 2
    existing = tmp_path / "mine.py"
    existing.write_text("keep me")
    with pytest.raises(SystemExit):
        main(["cp", "imdb_conv1d", str(existing)])
    assert existing.read_text() == "keep me"


def test_cp_into_a_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    destination = tmp_path / "missing" / "dir" / "x.py"
    with pytest.raises(SystemExit) as exit_info:
        main(["cp", "imdb_conv1d", str(destination)])
    assert exit_info.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and str(destination.parent) in error_lines[0]
    assert not destination.parent.exists()


@pytest.mark.slow
def test_copied_recipe_runs_as_a_script(tmp_path):
    destination = tmp_path / "my_conv1d.py"
    main(["cp", "imdb_conv1d", str(destination)])
    result = subprocess.run(
        [sys.executable, str(destination), "--data", "synthetic", "--max-examples", "32",
         "--epochs", "1", "--run-dir", str(tmp_path / "run"), "--no-export"],
        env=python_env(), cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").exists()
