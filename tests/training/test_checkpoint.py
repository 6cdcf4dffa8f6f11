from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError


def _nets():
    torch.manual_seed(0)
    return nn.ModuleDict({"G": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "D": nn.Linear(4, 1)})


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    nets = _nets()
    opts = {"G": torch.optim.Adam(nets["G"].parameters(), lr=1e-3, betas=(0.5, 0.9)), "D": torch.optim.SGD(nets["D"].parameters(), lr=0.1, momentum=0.9)}
    for _ in range(2):
        loss = nets["D"](nets["G"](torch.randn(5, 3))).sum()
        for o in opts.values():
            o.zero_grad()
        loss.backward()
        for o in opts.values():
            o.step()
    ckpt.save_checkpoint(tmp_path, 7, nets, opts, {"family": "x", "config": {}, "spec": {}})
    expected_next = torch.randn(3)

    nets2 = _nets()
    opts2 = {"G": torch.optim.Adam(nets2["G"].parameters(), lr=1.0), "D": torch.optim.SGD(nets2["D"].parameters(), lr=1.0, momentum=0.0)}
    base = tmp_path / "step-000007"
    tensors = ckpt.load_tensors(base)
    meta = ckpt.read_meta(base)
    ckpt.load_nets(nets2, tensors)
    ckpt.load_optimizers(opts2, tensors, meta)
    ckpt.restore_rng(tensors, meta)
    assert torch.equal(torch.randn(3), expected_next)
    for k, v in nets.state_dict().items():
        assert torch.equal(v, nets2.state_dict()[k])
    assert opts2["G"].param_groups[0]["lr"] == 1e-3 and opts2["G"].param_groups[0]["betas"] == (0.5, 0.9)
    s1, s2 = opts["G"].state_dict()["state"], opts2["G"].state_dict()["state"]
    for idx in s1:
        for key in s1[idx]:
            assert torch.equal(torch.as_tensor(s1[idx][key]), torch.as_tensor(s2[idx][key]))
    assert opts2["D"].param_groups[0]["momentum"] == 0.9


def test_checkpoint_files_are_not_pickles(tmp_path):
    nets = _nets()
    ckpt.save_checkpoint(tmp_path, 1, nets, {}, {"family": "x"})
    meta = json.loads((tmp_path / "step-000001.json").read_text())
    assert meta["format"] == ckpt.FORMAT and "ganforge_version" in meta
    raw = (tmp_path / "step-000001.safetensors").read_bytes()
    assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # neither a pickle nor torch.save zip


def test_resolve_checkpoint(tmp_path):
    run = tmp_path / "run"
    nets = _nets()
    for s in (5, 10):
        ckpt.save_checkpoint(run / "checkpoints", s, nets, {}, {"family": "x"})
    assert ckpt.resolve_checkpoint(run).name == "step-000010"
    assert ckpt.resolve_checkpoint(run, "5").name == "step-000005"
    with pytest.raises(ConfigError, match="no checkpoint at step 6"):
        ckpt.resolve_checkpoint(run, "6")
    with pytest.raises(ConfigError, match="no best checkpoint"):
        ckpt.resolve_checkpoint(run, "best")
    # A checkpoint whose JSON is missing (crash mid-write) is ignored.
    (run / "checkpoints" / "step-000010.json").unlink()
    (run / "checkpoints" / "latest.json").unlink()
    assert ckpt.resolve_checkpoint(run).name == "step-000005"


def test_damaged_checkpoint_gives_clear_error(tmp_path):
    ckpt.save_checkpoint(tmp_path, 1, _nets(), {}, {"family": "x"})
    (tmp_path / "step-000001.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="damaged"):
        ckpt.load_tensors(tmp_path / "step-000001")
