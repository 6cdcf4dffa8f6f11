"""The command as a user starts it: a fresh interpreter, no pytest modules loaded.

In-process CLI tests cannot catch a module that only works because something else imported a
submodule first (`importlib.util` is loaded by pytest and by some `.pth` files, not by a bare
console script); this runs the CLI with `python -S`, which skips `.pth` files, on the same paths.
"""

from __future__ import annotations

import os
import subprocess
import sys


def run_bare(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = "import sys; from ganforge.cli import main; sys.argv[0] = 'ganforge'; main()"
    return subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_train_help_in_a_bare_interpreter():
    r = run_bare("train", "--help")
    assert r.returncode == 0, r.stderr
    assert "dcgan" in r.stdout and "wgan-gp" in r.stdout


def test_bad_input_in_a_bare_interpreter_is_one_line():
    r = run_bare("train", "--model", "nope", "--dry-run")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
