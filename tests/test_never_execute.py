"""Files ganforge opens are data, never code: checkpoints (safetensors + JSON), configs and dataset.json."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from ganforge.training.loop import train
from helpers import tiny_config


class _Payload:
    """Unpickling this runs `touch MARKER` (pickle's classic __reduce__ exploit)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_in_place_of_the_safetensors_file_is_refused_and_never_run(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, steps=1), progress=False)
    marker = tmp_path / "PWNED"
    st = res.run_dir / "checkpoints" / "step-000001.safetensors"
    st.write_bytes(pickle.dumps(_Payload(str(marker))))
    for args in (["generate", str(res.run_dir), "--seeds", "0"], ["info", str(res.run_dir)]):
        r = CliRunner().invoke(main, args)
        assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["generate", str(res.run_dir), "--seeds", "0"])
    assert r.exit_code == 2 and "damaged" in r.output, r.output
    r = CliRunner().invoke(main, ["train", "--run", "t", "--runs-dir", str(tmp_path / "runs"), "--resume", "--steps", "2"])
    assert r.exit_code == 2 and "cannot be read" in r.output and "Traceback" not in r.output, r.output
    assert not marker.exists(), "the pickle payload ran"


def test_a_config_naming_an_unknown_family_or_a_python_path_is_refused(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, steps=1), progress=False)
    cfg = json.loads((res.run_dir / "config.json").read_text())
    for model in ("os:system", "ganforge.families.dcgan:DCGAN", "nope"):
        (res.run_dir / "config.json").write_text(json.dumps({**cfg, "model": model}))
        r = CliRunner().invoke(main, ["train", "--run", "t", "--runs-dir", str(tmp_path / "runs"), "--resume", "--steps", "2"])
        assert r.exit_code == 2 and "unknown model" in r.output, r.output
    with pytest.raises(ConfigError, match="unknown config keys"):
        TrainConfig.from_dict({**cfg, "__class__": "os.system"})
