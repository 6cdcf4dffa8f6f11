"""Issue 24, a hostile-input pass over `train`, `generate` and `info`: each defect found, as a regression test.

Every error a user can cause is one `error:` line (exit 2) that names the problem and the fix; nothing is
lost or written where it should not be."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganforge import checkpoint as ckpt
from ganforge.cli import main
from ganforge.config import TrainConfig, run_name_problem
from ganforge.errors import ConfigError
from ganforge.training.loop import cap_batch, slowdown, train
from ganforge.training.run import RunLock
from helpers import make_archive, tiny_config

TINY = ["--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"]


from test_reliability_cli import assert_one_line_error  # noqa: E402


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


one_line_error = assert_one_line_error  # the shared check of tests/test_reliability_cli.py


def error_line(r, message: str = "") -> str:
    """Exit 2, no traceback, and the output ends with one `error:` line (after what training printed)."""
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit), r.output
    assert lines[-1].startswith("error:") and sum(x.startswith("error:") for x in lines) == 1, r.output
    assert message in lines[-1], lines[-1]
    return lines[-1]


def train_args(tmp_path, data, run="r", *extra):
    return ["train", "--data", data, "--run", run, "--runs-dir", tmp_path / "runs", *TINY, *extra]


# ------------------------------------------------------------------------ 1. one process per run


def test_a_run_in_use_by_another_process_is_refused_naming_its_pid(tmp_path, tiny_data):
    # Regression: two `train --run twin` at once both ran to "done", interleaving checkpoints.
    run_dir = tmp_path / "runs" / "twin"
    run_dir.mkdir(parents=True)
    holder = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        fd = os.open({str(run_dir / ".lock")!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())
        print("locked", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        for extra in ([], ["--resume"]):
            r = invoke(train_args(tmp_path, tiny_data, "twin", "--steps", "1", *extra))
            out = one_line_error(r, f"run 'twin' is being trained by process {proc.pid}")
            assert "--run NEW_NAME" in out
        assert not (run_dir / "checkpoints").exists(), "the second process wrote nothing"
    finally:
        proc.kill()
        proc.wait()
    # The holder is gone: its lock went with it, and the file it left does not block.
    r = invoke(train_args(tmp_path, tiny_data, "twin", "--steps", "1"))
    assert r.exit_code == 0, r.output
    assert (run_dir / ".lock").read_text().strip() == str(os.getpid())


def test_the_lock_is_held_while_training_and_released_after(tmp_path, tiny_data, monkeypatch):
    from ganforge.families.dcgan import DCGAN

    original, seen = DCGAN.train_step, []

    def step_and_try_the_lock(self, *args, **kw):
        other = RunLock(tmp_path / "runs" / "t")
        with pytest.raises(ConfigError, match=f"process {os.getpid()}"):
            other.acquire()
        seen.append(1)
        return original(self, *args, **kw)

    monkeypatch.setattr(DCGAN, "train_step", step_and_try_the_lock)
    train(tiny_config(tmp_path, tiny_data, steps=1), progress=False)
    assert seen
    monkeypatch.setattr(DCGAN, "train_step", original)
    res = train(tiny_config(tmp_path, tiny_data, steps=2), resume=True, explicit={"steps"}, progress=False)
    assert res.step == 2  # released at the end of the first: the same process may train the run again


# ------------------------------------------------------------------------ 2. --max-minutes per invocation


def test_max_minutes_is_a_budget_per_invocation(tmp_path, tiny_data):
    # Regression: the budget counted the run's whole training time, so every --resume did one step and stopped.
    cfg = tiny_config(tmp_path, tiny_data, steps=10**6, max_minutes=0.02, log_every=1000)
    first = train(cfg, progress=False)
    assert first.interrupted and first.signal is None
    again = train(tiny_config(tmp_path, tiny_data, steps=10**6), resume=True, explicit=set(), progress=False)
    assert again.interrupted and again.step > first.step + 1, (first.step, again.step)
    help_text = invoke(["train", "--help"]).output
    assert "in this invocation" in " ".join(help_text.split())


# ------------------------------------------------------------------------ 3. --dry-run validates as the run does


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resolution", "4096"], "dcgan needs a power-of-two resolution from 8 to 1024, not 4096"),
        (["--resolution", "24"], "power-of-two resolution"),
        (["--model", "stylegan2", "--resolution", "2048"], "from 8 to 1024, not 2048"),
        (["--model", "vae", "--aug", "ada"], "drop --aug"),
        (["--batch-gpu", "3", "--batch", "8"], "--batch-gpu 3 does not divide"),
        (["--set", "loss=bogus"], "unknown loss 'bogus'"),
    ],
)
def test_dry_run_refuses_what_the_run_refuses(tmp_path, tiny_data, args, message):
    one_line_error(invoke(["train", "--dry-run", *args]), message)
    r = invoke(["train", "--data", tiny_data, "--runs-dir", tmp_path / "runs", "--steps", "1", *args])
    one_line_error(r, message)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--resolution", "64"],
        ["--model", "pix2pix"],
        ["--model", "pix2pix", "--data", "emoji", "--set", "preset=colorize"],
        ["--model", "srgan"],
        ["--model", "srgan", "--resolution", "64"],
        ["--model", "cyclegan"],
        ["--model", "gan", "--data", "ring8"],
        ["--model", "stylegan2", "--resolution", "256"],
    ],
)
def test_dry_run_accepts_what_the_run_accepts(args):
    r = invoke(["train", "--dry-run", *args])
    assert r.exit_code == 0, r.output
    json.loads(r.output)


def test_a_refused_resolution_is_refused_before_the_data_loads(tmp_path, tiny_data, monkeypatch):
    import ganforge.training.loop as loop

    def no_load(*a, **kw):
        raise AssertionError("the data was loaded (and resized to 4096 px) before the resolution was refused")

    monkeypatch.setattr(loop, "load_dataset", no_load)
    with pytest.raises(ConfigError, match="from 8 to 1024, not 4096"):
        train(tiny_config(tmp_path, tiny_data, resolution=4096), progress=False)


# ------------------------------------------------------------------------ 5. a batch larger than the data


def test_a_batch_larger_than_the_dataset_is_capped_with_a_note(tmp_path):
    # Regression: --batch 100000 on 12 images built a 100,000-image batch (17.6 GB at its peak).
    data = str(make_archive(tmp_path / "twelve.zip", n=12))
    r = invoke([*train_args(tmp_path, data, "big", "--steps", "1"), "--batch", "100000"])
    assert r.exit_code == 0, r.output
    assert "note: --batch 100000 is more than the 12 examples of" in r.output
    assert "training with --batch 12" in r.output
    saved = json.loads((tmp_path / "runs" / "big" / "config.json").read_text())
    assert saved["batch"] == 12


def test_cap_batch():
    cfg = TrainConfig(batch=64)
    assert cap_batch(cfg, 1000) is None and cfg.batch == 64
    assert "training with --batch 12" in cap_batch(cfg, 12) and cfg.batch == 12
    cfg = TrainConfig(batch=64)
    cap_batch(cfg, 13, world_size=4)
    assert cfg.batch == 12  # the global batch still splits over the processes


# ------------------------------------------------------------------------ 6. exit 130 / 143 after a signal


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_then_exits_128_plus_the_signal(tmp_path, tiny_data, monkeypatch, sig, code):
    # Regression: a run stopped by Ctrl-C or SIGTERM exited 0, as a finished one does.
    from ganforge.families.dcgan import DCGAN

    original = DCGAN.train_step

    def step_then_signal(self, nets, opts, batch, step, ctx):
        out = original(self, nets, opts, batch, step, ctx)
        if step == 1:
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(DCGAN, "train_step", step_then_signal)
    r = invoke(train_args(tmp_path, tiny_data, "sig", "--steps", "10"))
    assert r.exit_code == code, r.output
    assert "stopped at step 2; checkpoint saved. Continue with: ganforge train --run sig" in r.output
    assert ckpt.list_checkpoints(tmp_path / "runs" / "sig" / "checkpoints") == [2]
    monkeypatch.setattr(DCGAN, "train_step", original)
    r = invoke(["train", "--run", "sig", "--runs-dir", tmp_path / "runs", "--resume", "--steps", "3", "--quiet"])
    assert r.exit_code == 0 and "done: 3 steps" in r.output, r.output


# ------------------------------------------------------------------------ 7. info shows resolved settings


def test_info_prints_the_settings_the_model_was_built_with(tmp_path, tiny_labelled_data):
    # Regression: info printed the placeholders "ngf=0 ndf=0 lr_g=0.0 mode_seeking=-1.0" as settings.
    r = invoke(["train", "--data", tiny_labelled_data, "--cond", "--run", "c", "--runs-dir", tmp_path / "runs",
                "--steps", "1", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"])
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "runs" / "c"
    saved = json.loads((run_dir / "config.json").read_text())["family"]
    assert (saved["ngf"], saved["lr_g"], saved["mode_seeking"]) == (0, 0.0, -1.0)  # placeholders, as saved
    out = invoke(["info", run_dir]).output
    family = next(line for line in out.splitlines() if line.strip().startswith("family:"))
    lr = saved["lr"]
    for setting in ("ngf=32", "ndf=32", f"lr_g={lr}", f"lr_d={lr}", "mode_seeking=1.0", "embed_dim=4"):
        assert f" {setting} " in f"{family} ", family
    fam = json.loads(invoke(["info", run_dir, "--json"]).output)["family"]
    assert (fam["ngf"], fam["ndf"], fam["lr_g"], fam["mode_seeking"]) == (32, 32, lr, 1.0)


# ------------------------------------------------------------------------ 8. progress: elapsed time, slowdowns


def test_plain_progress_lines_show_the_elapsed_time(tmp_path):
    lines: list[str] = []
    cfg = tiny_config(tmp_path, "ring8", model="gan", family={"g_width": 8, "d_width": 8}, steps=2, log_every=1)
    train(cfg, progress=True, echo=lines.append)
    steps = [line for line in lines if line.startswith("step ")]
    assert steps and all(re.match(r"step \d+/2 \d+:\d\d:\d\d img/s=", s) for s in steps), steps


def test_slowdown_detector():
    assert slowdown([]) is None
    assert slowdown([800.0] * 10) is None
    assert slowdown([800.0, 850.0, 820.0, 100.0, 90.0]) is None  # too little history yet
    assert slowdown([800, 850, 820, 830, 100, 900, 810]) is None  # one slow interval: a checkpoint, a grid
    assert slowdown([800, 850, 820, 830, 100, 150, 810]) is None  # not sustained
    now, was = slowdown([800, 850, 820, 830, 840, 12, 15, 12])
    assert (now, was) == (12, 830)
    assert slowdown([800, 850, 820, 830, 840, 300, 300, 300]) is None  # slower, but not 4x


def test_a_sustained_slowdown_is_reported_once_naming_the_knob(tmp_path, monkeypatch):
    import ganforge.training.loop as loop

    clock = {"t": 0.0}
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock["t"])
    from ganforge.families.gan import GAN

    original = GAN.train_step

    def timed_step(self, nets, opts, batch, step, ctx):
        clock["t"] += 0.01 if step < 8 else 1.0  # 800 img/s, then 8 img/s from step 9 on
        return original(self, nets, opts, batch, step, ctx)

    monkeypatch.setattr(GAN, "train_step", timed_step)
    lines: list[str] = []
    cfg = tiny_config(tmp_path, "ring8", model="gan", family={"g_width": 8, "d_width": 8}, steps=14, log_every=1, device="cpu")
    res = train(cfg, progress=True, echo=lines.append)
    slow = [w for w in res.warnings if "img/s" in w]
    assert len(slow) == 1, res.warnings
    assert re.search(r"img/s 8 \(was 800\): another process is using the CPU\? see --threads", slow[0]), slow
    assert "--threads" in {p.opts[0] for p in main.commands["train"].params if p.opts}


# ------------------------------------------------------------------------ 9. messages that misled


def _nan_at(monkeypatch, at_step: int):
    from ganforge.families.dcgan import DCGAN

    original = DCGAN.train_step

    def nan_step(self, nets, opts, batch, step, ctx):
        out = original(self, nets, opts, batch, step, ctx)
        if step == at_step:
            out["loss_G"] = float("nan")
        return out

    monkeypatch.setattr(DCGAN, "train_step", nan_step)
    return original


def test_divergence_before_the_first_checkpoint_says_so_and_its_advice_works(tmp_path, tiny_data, monkeypatch):
    # Regression: "the last checkpoint (step 0) is kept ... resume with --set lr=1e-4": there was none, and
    # that resume was refused.
    original = _nan_at(monkeypatch, 1)
    out = error_line(invoke(train_args(tmp_path, tiny_data, "d", "--steps", "5")), "nothing was saved")
    assert "(step 0)" not in out and "--resume" not in out
    lr = re.search(r"--set lr=([0-9.e+-]+)", out).group(1)
    from ganforge.families.dcgan import DCGAN

    monkeypatch.setattr(DCGAN, "train_step", original)
    r = invoke(train_args(tmp_path, tiny_data, "d", "--steps", "1", "--set", f"lr={lr}"))
    assert r.exit_code == 0, r.output


def test_divergence_after_a_checkpoint_suggests_a_resume_that_works(tmp_path, tiny_data, monkeypatch):
    original = _nan_at(monkeypatch, 2)
    out = error_line(invoke(train_args(tmp_path, tiny_data, "d", "--steps", "5", "--ckpt-every", "2")))
    assert "the last checkpoint (step 2) is kept" in out
    lr = re.search(r"--resume --set lr=([0-9.e+-]+)", out).group(1)
    from ganforge.families.dcgan import DCGAN

    monkeypatch.setattr(DCGAN, "train_step", original)
    r = invoke(["train", "--run", "d", "--runs-dir", tmp_path / "runs", "--resume", "--steps", "3", "--set", f"lr={lr}"])
    assert r.exit_code == 0, r.output
    meta = ckpt.read_meta(tmp_path / "runs" / "d" / "checkpoints" / "step-000003")
    assert meta["config"]["family"]["lr"] == float(lr)
    assert meta["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(float(lr))
    # Learning rates may change on --resume; what makes another experiment may not.
    one_line_error(
        invoke(["train", "--run", "d", "--runs-dir", tmp_path / "runs", "--resume", "--set", "ngf=16"]),
        "cannot resume: the run was trained with ngf=8, not 16",
    )


def test_resume_passes_over_a_truncated_checkpoint_with_a_note(tmp_path, tiny_data):
    # Regression: a truncated latest checkpoint said "pick another checkpoint", an option train does not have.
    base = train_args(tmp_path, tiny_data, "t", "--ckpt-every", "1")
    assert invoke([*base, "--steps", "2"]).exit_code == 0
    ck = tmp_path / "runs" / "t" / "checkpoints"
    data = (ck / "step-000002.safetensors").read_bytes()
    (ck / "step-000002.safetensors").write_bytes(data[: len(data) // 2])
    r = invoke([*base, "--steps", "3", "--resume"])
    assert r.exit_code == 0, r.output
    assert "note: checkpoint step-000002 cannot be read" in r.output and "resuming from step-000001" in r.output
    assert "resuming" in r.output and "from step 1" in r.output and "done: 3 steps" in r.output
    assert ckpt.list_checkpoints(ck)[-1] == 3


def test_resume_with_no_readable_checkpoint_names_what_to_do(tmp_path, tiny_data):
    base = train_args(tmp_path, tiny_data, "t")
    assert invoke([*base, "--steps", "1"]).exit_code == 0
    (tmp_path / "runs" / "t" / "checkpoints" / "step-000001.safetensors").write_bytes(b"\x00" * 10)
    out = one_line_error(invoke([*base, "--steps", "2", "--resume"]), "its only checkpoint, step-000001, cannot be read")
    assert "delete" in out and "--run NEW_NAME" in out


def test_resume_names_the_resolution_the_run_was_trained_at(tmp_path, tiny_data):
    # Regression: "the run was trained with resolution=None, not 32" for a run at its data's own 16 px.
    base = train_args(tmp_path, tiny_data, "t")
    assert invoke([*base, "--steps", "1"]).exit_code == 0
    one_line_error(
        invoke([*base, "--steps", "2", "--resume", "--resolution", "32"]),
        "cannot resume: the run was trained with resolution=16 (the data's own), not 32",
    )
    r = invoke([*base, "--steps", "2", "--resume", "--resolution", "16"])  # that very resolution: no change
    assert r.exit_code == 0, r.output


def test_the_last_line_names_the_command_for_the_model():
    # Regression: srgan's training ended with "translate with: ..." instead of `ganforge enhance`.
    from ganforge.cli.train import _next_command

    run = Path("runs/x")
    assert _next_command(TrainConfig(model="srgan"), run).startswith("enhance with: ganforge enhance runs/x ")
    colorize = TrainConfig(model="pix2pix", family={"preset": "colorize"})
    assert _next_command(colorize, run).startswith("colorize with: ganforge colorize runs/x ")
    assert _next_command(TrainConfig(model="pix2pix"), run).startswith("translate with: ganforge translate runs/x ")
    assert _next_command(TrainConfig(model="cyclegan"), run).startswith("translate with: ganforge translate ")
    assert _next_command(TrainConfig(model="dcgan"), run).startswith("generate with: ganforge generate runs/x ")
    for verb in ("enhance", "colorize", "translate", "generate"):
        assert verb in main.commands
    assert {"--out"} <= {o for p in main.commands["enhance"].params for o in p.opts}


@pytest.mark.parametrize("name", ["../../escape", "a/b", "/tmp/abs", ".hidden", "..", " x", "a\\b"])
def test_run_names_are_one_folder_inside_runs_dir(tmp_path, tiny_data, name, monkeypatch):
    # Regression: --run ../../escape wrote outside --runs-dir without a word.
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke(["train", "--run", name, "--dry-run"]), "a run name is one folder name inside --runs-dir")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    r = invoke(["train", "--data", tiny_data, "--run", name, "--runs-dir", tmp_path / "deep" / "er" / "runs", "--steps", "1"])
    one_line_error(r, "--runs-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "tiny.zip"]
    assert not (tmp_path / "deep" / "er" / "runs").exists()
    with pytest.raises(ConfigError, match="one folder name"):
        train(tiny_config(tmp_path, tiny_data, run=name), progress=False)
    assert run_name_problem(name)


def test_plain_run_names_are_fine():
    for name in ("cats-64", "run 2", "v1.2", "ünïcode", "a..b"):
        assert run_name_problem(name) is None, name
