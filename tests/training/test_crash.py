"""Hard kills mid-training: every resume starts from the newest complete checkpoint, no checkpoint is
ever torn, and the final weights equal those of an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ganforge import checkpoint as ckpt

STEPS = 40


def _cmd(data: str, runs: Path, run: str, resume: bool) -> list[str]:
    args = [
        sys.executable, "-m", "ganforge", "train", "--data", data, "--runs-dir", str(runs), "--run", run,
        "--steps", str(STEPS), "--batch", "8", "--ckpt-every", "1", "--sample-every", "1000", "--log-every", "1",
        "--precision", "fp32", "--threads", "1", "--quiet", "--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8",
    ]
    return args + (["--resume"] if resume else [])


def test_kill_9_at_random_points_then_resume_equals_uninterrupted(tmp_path, tiny_data):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = tmp_path / "runs"
    subprocess.run(_cmd(tiny_data, runs, "clean", False), check=True, env=env, timeout=300)
    rng = random.Random(0)
    kills, resumed_from = 0, []
    deadline = time.monotonic() + 240
    done = False
    while not done and time.monotonic() < deadline:
        # A run killed before it wrote config.json does not exist yet: start it; otherwise resume.
        resume = (runs / "killed" / "config.json").exists()
        proc = subprocess.Popen(_cmd(tiny_data, runs, "killed", resume), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 10:
            # Kill once a random number (1-3) of new checkpoints has appeared, plus a random few ms: mid-step
            # or mid-write, whatever the machine's speed.
            ck = runs / "killed" / "checkpoints"
            before = ckpt.list_checkpoints(ck)[-1] if ck.exists() and ckpt.list_checkpoints(ck) else 0
            want = before + rng.randint(1, 3)
            while proc.poll() is None and time.monotonic() < deadline:
                now = ckpt.list_checkpoints(ck)[-1] if ck.exists() and ckpt.list_checkpoints(ck) else 0
                if now >= want:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            else:
                assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        else:
            proc.wait(timeout=300)
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        ck = runs / "killed" / "checkpoints"
        steps = ckpt.list_checkpoints(ck) if ck.exists() else []
        for s in steps:  # every listed checkpoint is complete and readable
            base = ck / ckpt.ckpt_name(s)
            ckpt.read_meta(base)
            ckpt.load_tensors(base)
        if steps:
            resumed_from.append(steps[-1])
            assert json.loads((ck / "latest.json").read_text())["step"] in steps
        done = bool(steps) and steps[-1] == STEPS
    assert done, f"did not finish in time (kills {kills}, checkpoints {resumed_from})"
    assert kills >= 10
    a = ckpt.load_tensors(ckpt.resolve_checkpoint(runs / "clean"))
    b = ckpt.load_tensors(ckpt.resolve_checkpoint(runs / "killed"))
    for k in a:
        if k.startswith(("net/", "opt/")):
            assert torch.equal(a[k], b[k]), k
    # metrics.jsonl has each step once, in order, after all the kills.
    recs = [json.loads(x) for x in (runs / "killed" / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [r["step"] for r in recs if "loss_D" in r]
    assert steps_logged == sorted(set(steps_logged)) and steps_logged[-1] == STEPS
