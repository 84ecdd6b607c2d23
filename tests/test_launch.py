"""`python -m tfkit launch`: the cluster each worker is given, and who decides the exit status."""

import json
import subprocess
import sys
import time

from conftest import ROOT, python_env
from tfkit.launch import free_ports, launch, tf_config


def test_free_ports_are_distinct_and_local():
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= port < 65536 for port in ports)


def test_tf_config_names_the_whole_cluster_and_this_task():
    config = json.loads(tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 1},
    }


def test_each_worker_gets_its_own_task_in_one_cluster(tmp_path):
    code = (
        "import json, os, pathlib, sys; config = json.loads(os.environ['TF_CONFIG']); "
        "pathlib.Path(sys.argv[1], str(config['task']['index'])).write_text(json.dumps(config))"
    )
    assert launch(3, [sys.executable, "-c", code, str(tmp_path)]) == 0
    configs = [json.loads((tmp_path / str(index)).read_text()) for index in range(3)]
    assert [config["task"]["index"] for config in configs] == [0, 1, 2]
    assert all(config["cluster"] == configs[0]["cluster"] for config in configs)
    assert all(address.startswith("127.0.0.1:") for address in configs[0]["cluster"]["worker"])


def test_the_chief_status_is_returned_and_waiting_workers_are_stopped():
    # The chief fails at once; worker 1 would wait for it forever, as in a collective.
    code = "import json, os, sys, time; index = json.loads(os.environ['TF_CONFIG'])['task']['index']; " \
           "sys.exit(3) if index == 0 else time.sleep(600)"  # fmt: skip
    start = time.time()
    assert launch(2, [sys.executable, "-c", code]) == 3
    assert time.time() - start < 30


def test_a_dead_worker_stops_the_chief_and_fails_the_launch(capsys):
    code = "import json, os, sys, time; index = json.loads(os.environ['TF_CONFIG'])['task']['index']; " \
           "time.sleep(600) if index == 0 else sys.exit(5)"  # fmt: skip
    start = time.time()
    assert launch(2, [sys.executable, "-c", code]) == 5
    assert time.time() - start < 30
    assert "worker 1 exited with status 5" in capsys.readouterr().err


def test_the_command_line_needs_a_command():
    result = subprocess.run(
        [sys.executable, "-m", "tfkit", "launch", "--workers", "2", "--"],
        env=python_env(), cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "give the command after --" in result.stderr


def test_a_command_that_cannot_start_is_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "tfkit", "launch", "--workers", "2", "--", "no-such-command-xyz"],
        env=python_env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "no-such-command-xyz" in error_lines[0]


def test_a_worker_that_fails_to_start_stops_those_already_started(monkeypatch, capsys):
    import errno

    import tfkit.launch

    real_popen, started = subprocess.Popen, []

    def popen(*args, **kwargs):  # the first worker starts, the second cannot
        if started:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(tfkit.launch.subprocess, "Popen", popen)
    assert launch(2, [sys.executable, "-c", "import time; time.sleep(600)"]) == 1
    assert started[0].poll() is not None  # stopped, not left waiting for worker 1
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and "worker 1" in error_lines[0]
