"""The benchmarks' shared plumbing: row selection and the JSON report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import _common
import pytest

ROWS = [SimpleNamespace(name="a"), SimpleNamespace(name="b c"), SimpleNamespace(name="d")]


def test_select_all_and_some():
    assert _common.select(ROWS, "", "row") == ROWS
    assert [r.name for r in _common.select(ROWS, "d,b c", "row")] == ["b c", "d"]  # table order kept


def test_select_unknown_name_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        _common.select(ROWS, "a,zzz", "row")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'zzz'" in err and "'b c'" in err


def test_write_json_records_command_and_machine(tmp_path):
    path = tmp_path / "sub" / "out.json"
    _common.write_json(path, {"ratio": 1.5}, ["--quick", "--models", "dcgan --cond"])
    out = json.loads(path.read_text())
    assert out["ratio"] == 1.5
    assert out["command"].endswith("--quick --models 'dcgan --cond'")
    assert out["machine"]["cpus"] >= 1 and out["machine"]["torch"]
    _common.write_json(None, {"x": 1})  # no path: nothing written, no error
