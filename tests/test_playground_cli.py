"""``glassgrad playground``: its flags, and Ctrl-C stopping the server cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from glassgrad.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize("flag,words", [
    ("--port=70000", "at most 65535"), ("--port=-1", "too small"), ("--port=abc", "not a whole"),
])
def test_bad_port_is_one_line_with_exit_2(capsys, flag, words):
    assert main(["playground", flag, "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_ctrl_c_stops_the_server_cleanly():
    pytest.importorskip("starlette", reason="needs starlette, which is not installed: "
                                     'pip install "glassgrad[playground]"')
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "glassgrad", "playground", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("glassgrad playground: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as r:
            assert b"glassgrad playground" in r.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err
