"""`ganforge serve` on the command line: its checks and warnings (uvicorn replaced by a stub, so
nothing listens), and a real start in a subprocess answering over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.cli.serve import is_loopback


@pytest.fixture
def no_listen(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def invoke(args):
    return CliRunner().invoke(main, ["serve", *args])


def test_loopback_default_without_warning(runs_dir, no_listen):
    r = invoke([str(runs_dir), "--port", "7999"])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output and "http://127.0.0.1:7999/" in r.output
    app, kw = no_listen[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 7999


def test_open_host_warns_and_suggests_a_token(runs_dir, no_listen):
    r = invoke([str(runs_dir), "--host", "0.0.0.0", "--port", "7999"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and "no authentication" in r.output and "--token" in r.output
    r = invoke([str(runs_dir), "--host", "0.0.0.0", "--port", "7999", "--token", "abcdefgh12"])
    assert "warning" not in r.output and "?token=" in r.output


def test_user_errors_are_one_line(runs_dir, tmp_path, no_listen):
    r = invoke([str(tmp_path / "missing")])
    assert r.exit_code == 2 and r.output.startswith("error: no runs folder") and r.output.count("\n") == 1
    r = invoke([str(runs_dir), "--token", "short"])
    assert r.exit_code == 2 and "--token must be at least 8" in r.output
    with socket.socket() as s:  # a port already taken
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = invoke([str(runs_dir), "--port", str(s.getsockname()[1])])
    assert r.exit_code == 2 and "cannot listen on 127.0.0.1" in r.output and "--port" in r.output
    assert not no_listen


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.com"]))


def test_real_server_in_a_subprocess(runs_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganforge", "serve", str(runs_dir), "--port", str(port), "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as r:
                    names = [x["name"] for x in json.load(r)["runs"]]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert "dc" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs/dc/generate.png?seed=3", timeout=60) as r:
            assert r.headers["content-type"] == "image/png" and r.read()[:4] == b"\x89PNG"
    finally:
        proc.terminate()
        proc.wait(10)


def test_missing_extra_names_it(runs_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    r = invoke([str(runs_dir)])
    assert r.exit_code == 2 and "pip install 'ganforge[serve]'" in r.output and "Traceback" not in r.output
