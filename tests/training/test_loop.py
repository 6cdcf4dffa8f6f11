from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError, GanforgeError
from ganforge.training.loop import train
from helpers import tiny_config


def _final_tensors(run_dir):
    base = ckpt.resolve_checkpoint(run_dir, "latest")
    return load_file(str(base.with_suffix(".safetensors")))


def test_run_folder_layout(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, tiny_data, steps=3, sample_every=2, ckpt_every=2)
    res = train(cfg, progress=False)
    run = res.run_dir
    assert res.step == 3
    assert (run / "config.json").exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["grid-000002.png", "grid-000003.png"]
    assert ckpt.list_checkpoints(run / "checkpoints") == [2, 3]
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 3
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert all(k in lines[-1] for k in ("loss_D", "loss_G", "D_real", "D_fake", "img_s"))
    meta = json.loads((run / "checkpoints" / "step-000003.json").read_text())
    assert meta["family"] == "dcgan" and meta["spec"]["resolution"] == 16
    assert not list(run.rglob("*.tmp"))


@pytest.mark.parametrize("xflip", [False, True])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, tiny_data, xflip):
    a = train(tiny_config(tmp_path, tiny_data, run="a", steps=6, xflip=xflip), progress=False)
    b1 = train(tiny_config(tmp_path, tiny_data, run="b", steps=6, xflip=xflip), progress=False, stop_at=3)
    assert b1.interrupted and b1.step == 3
    b2 = train(tiny_config(tmp_path, tiny_data, run="b", steps=6, xflip=xflip), resume=True, explicit=set(), progress=False)
    assert b2.step == 6
    ta, tb = _final_tensors(a.run_dir), _final_tensors(b2.run_dir)
    assert ta.keys() == tb.keys()
    for k in ta:
        if k.startswith("net/") or k.startswith("opt/"):
            assert torch.equal(ta[k], tb[k]), k


def test_class_balanced_run_resumes_exactly_and_needs_labels(tmp_path, tiny_data, tiny_labelled_data):
    kw = dict(steps=4, cond=True, class_balance=1.0)
    a = train(tiny_config(tmp_path, tiny_labelled_data, run="a", **kw), progress=False)
    b1 = train(tiny_config(tmp_path, tiny_labelled_data, run="b", **kw), progress=False, stop_at=2)
    b2 = train(tiny_config(tmp_path, tiny_labelled_data, run="b", **kw), resume=True, explicit=set(), progress=False)
    assert b1.step == 2 and b2.step == 4
    ta, tb = _final_tensors(a.run_dir), _final_tensors(b2.run_dir)
    assert all(torch.equal(ta[k], tb[k]) for k in ta if k.startswith("net/"))
    with pytest.raises(ConfigError, match="has no labels; drop --class-balance"):
        train(tiny_config(tmp_path, tiny_data, run="c", class_balance=0.5), progress=False)
    with pytest.raises(ConfigError, match="class_balance"):
        tiny_config(tmp_path, tiny_labelled_data, class_balance=1.5).validate()


def test_resume_refuses_changed_config(tmp_path, tiny_data):
    train(tiny_config(tmp_path, tiny_data, steps=2), progress=False)
    with pytest.raises(ConfigError, match="batch=8, not 4"):
        train(tiny_config(tmp_path, tiny_data, steps=4, batch=4), resume=True, explicit={"batch"}, progress=False)
    # Longer training is a fine change.
    res = train(tiny_config(tmp_path, tiny_data, steps=4), resume=True, explicit={"steps"}, progress=False)
    assert res.step == 4


def test_existing_run_is_not_overwritten(tmp_path, tiny_data):
    train(tiny_config(tmp_path, tiny_data, steps=1), progress=False)
    with pytest.raises(ConfigError, match="already exists"):
        train(tiny_config(tmp_path, tiny_data, steps=1), progress=False)


def test_resume_without_run(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="no run to resume"):
        train(tiny_config(tmp_path, tiny_data), resume=True, progress=False)


def test_keep_checkpoints_prunes_old_ones(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, tiny_data, steps=5, ckpt_every=1, keep_ckpts=2)
    res = train(cfg, progress=False)
    assert ckpt.list_checkpoints(res.run_dir / "checkpoints") == [4, 5]


def test_conditional_needs_labels(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="--cond needs labelled data"):
        train(tiny_config(tmp_path, tiny_data, cond=True), progress=False)


def test_bad_resolution_for_family(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="power-of-two"):
        train(tiny_config(tmp_path, tiny_data, resolution=24), progress=False)


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path, tiny_data, monkeypatch):
    import os
    import signal

    from ganforge.families.dcgan import DCGAN

    original = DCGAN.train_step

    def step_then_interrupt(self, nets, opts, batch, step, ctx):
        out = original(self, nets, opts, batch, step, ctx)
        if step == 1:  # the second step: press Ctrl-C while it runs
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(DCGAN, "train_step", step_then_interrupt)
    res = train(tiny_config(tmp_path, tiny_data, steps=10), progress=False)
    assert res.interrupted and res.step == 2 and res.signal == signal.SIGINT
    assert ckpt.list_checkpoints(res.run_dir / "checkpoints") == [2]
    monkeypatch.setattr(DCGAN, "train_step", original)
    res = train(tiny_config(tmp_path, tiny_data, steps=4), resume=True, explicit={"steps"}, progress=False)
    assert res.step == 4 and not res.interrupted


def test_progress_off_a_terminal_is_one_plain_line_per_log_step(tmp_path, capsys):
    lines: list[str] = []
    cfg = tiny_config(tmp_path, "ring8", model="gan", family={"g_width": 8, "d_width": 8}, steps=4, log_every=2)
    train(cfg, progress=True, echo=lines.append)  # pytest's stderr is not a terminal
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split()[1] for s in steps] == ["2/4", "4/4"]
    assert all("D(x)=" in s and "|gD|=" in s and "|gG|=" in s for s in steps), steps
    assert "\r" not in capsys.readouterr().err, "no bar redraws in a log"


def test_on_nan_rollback_reloads_the_last_checkpoint_with_half_the_lr(tmp_path, tiny_data, monkeypatch):
    from ganforge.families.dcgan import DCGAN

    original = DCGAN.train_step
    calls = {"n": 0}

    def step_with_one_nan(self, nets, opts, batch, step, ctx):
        out = original(self, nets, opts, batch, step, ctx)
        calls["n"] += 1
        if calls["n"] == 5:  # the 5th step ever run reports a NaN loss, once
            out["loss_D"] = float("nan")
        return out

    monkeypatch.setattr(DCGAN, "train_step", step_with_one_nan)
    cfg = tiny_config(tmp_path, tiny_data, steps=8, ckpt_every=2, on_nan="rollback")
    res = train(cfg, progress=False)
    assert res.step == 8 and any("rolled back to step 4" in w for w in res.warnings), res.warnings
    meta = json.loads((res.run_dir / "checkpoints" / "step-000008.json").read_text())
    assert meta["loop"]["lr_scale"] == 0.5
    base_lr = meta["config"]["family"]["lr"]  # the family's resolved lr (dcgan: 3e-4 below 64 px)
    assert base_lr > 0 and meta["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(base_lr * 0.5)
    lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("rollback_from") == 5 for r in lines)


def test_on_nan_stop_is_the_default(tmp_path, tiny_data, monkeypatch):
    from ganforge.families.dcgan import DCGAN

    original = DCGAN.train_step

    def nan_step(self, nets, opts, batch, step, ctx):
        out = original(self, nets, opts, batch, step, ctx)
        out["loss_G"] = float("nan") if step == 2 else out["loss_G"]
        return out

    monkeypatch.setattr(DCGAN, "train_step", nan_step)
    with pytest.raises(GanforgeError, match="diverged: loss_G is nan at step 3"):
        train(tiny_config(tmp_path, tiny_data, steps=8, ckpt_every=2), progress=False)
    assert ckpt.list_checkpoints(tmp_path / "runs" / "t" / "checkpoints") == [2], "the last good checkpoint is kept"


def test_max_minutes_stops_with_a_checkpoint(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, steps=10**6, max_minutes=0.03), progress=False)
    assert res.interrupted and 0 < res.step < 10**6
    assert ckpt.list_checkpoints(res.run_dir / "checkpoints")[-1] == res.step
