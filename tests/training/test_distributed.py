"""Distributed training on the CPU: real `torchrun` (torch.distributed.run) with gloo and 2 processes.

The equivalence tests use the VAE: it has no BatchNorm (which normalises per process on the CPU, where
PyTorch has no SyncBatchNorm) and all its noise goes through `StepContext.randn`, so 2 processes with a
global batch B must compute what 1 process computes with batch B."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganforge.data.dataset import BatchSampler, BatchStream

TIMEOUT = 240  # seconds for one torchrun launch (a hang fails the test instead of the suite)
VAE = ["--model", "vae", "--data", "digits", "--resolution", "16", "--batch", "16", "--no-xflip", "--precision", "fp32",
       "--device", "cpu", "--set", "nz=4", "--set", "nf=4", "--sample-every", "1000", "--log-every", "1", "--seed", "7"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _launch(args: list[str], nproc: int = 2, module: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}"] + (["-m", "ganforge"] if module else []) + args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _single(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(run / "checkpoints" / f"step-{step:06d}.safetensors").items() if k.startswith("net/")}


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_two_processes_compute_what_one_process_computes(tmp_path):
    """A 2-process run with global batch 16 ends with the weights of a 1-process run with batch 16; only
    rank 0 writes; a checkpoint of the 2-process run resumes on 1 process and matches too."""
    runs = tmp_path / "runs"
    ddp = _launch(["train", *VAE, "--steps", "6", "--ckpt-every", "3", "--runs-dir", str(runs), "--name", "ddp"])
    _single(["train", *VAE, "--steps", "6", "--ckpt-every", "3", "--runs-dir", str(runs), "--name", "one"])
    _assert_close(_weights(runs / "ddp", 6), _weights(runs / "one", 6))

    # Rank 0 alone reports and writes: one "done" line, one metrics log with one line per step.
    assert ddp.stdout.count("done: 6 steps") == 1
    steps = [json.loads(line)["step"] for line in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert json.loads((runs / "ddp" / "status.json").read_text())["state"] == "done"
    assert len(list((runs / "ddp").glob("events.out.tfevents.*"))) <= 1

    # Resume on a different number of processes: 3 steps on 2 processes, continued on 1 process to step 6,
    # land on the same weights.
    _launch(["train", *VAE, "--steps", "3", "--runs-dir", str(runs), "--name", "resumed"])
    _single(["train", "--runs-dir", str(runs), "--name", "resumed", "--resume", "--steps", "6"])
    _assert_close(_weights(runs / "resumed", 6), _weights(runs / "one", 6))


def test_dcgan_trains_on_two_processes_with_one_writer(tmp_path):
    runs = tmp_path / "runs"
    out = _launch(["train", "--model", "dcgan", "--data", "digits", "--resolution", "16", "--batch", "8", "--steps", "4",
                   "--device", "cpu", "--set", "ngf=4", "--set", "nz=8", "--runs-dir", str(runs), "--name", "d"])
    assert out.stdout.count("done: 4 steps") == 1
    run = runs / "d"
    assert (run / "checkpoints" / "step-000004.safetensors").exists()
    assert len(list((run / "samples").glob("grid-*.png"))) >= 1
    rec = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["step"] == 4 and rec[-1]["kimg"] == pytest.approx(0.032)  # 4 steps x global batch 8


def test_a_batch_that_does_not_split_is_one_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "ganforge", "train", *VAE, "--batch", "9", "--steps", "1",
           "--runs-dir", str(tmp_path), "--name", "x"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode != 0
    assert "error: --batch 9 does not split evenly over 2 processes" in proc.stderr
    # torchrun reports the failed children with its own traceback; none comes from ganforge's code.
    assert "src/ganforge" not in proc.stderr and "[rank0]:" not in proc.stderr


def test_shards_are_disjoint_and_cover_the_data():
    n, batch, world = 12, 4, 2
    streams = [BatchStream({"": BatchSampler(n, batch, seed=3)}, lambda idx: {"i": idx[""]}).shard(r, world)
               for r in range(world)]
    whole = BatchStream({"": BatchSampler(n, batch, seed=3)}, lambda idx: {"i": idx[""]})
    seen: list[int] = []
    for _ in range(6):  # 24 indices: two epochs of 12
        parts = [s.next()["i"] for s in streams]
        assert set(parts[0].tolist()).isdisjoint(parts[1].tolist())
        assert torch.equal(torch.cat(parts), whole.next()["i"])  # together: the 1-process batch
        seen += torch.cat(parts).tolist()
    assert sorted(seen[:12]) == list(range(12)) and sorted(seen[12:]) == list(range(12))
    assert streams[0].state_dict() == streams[1].state_dict() == whole.state_dict()


FID_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    from ganforge import distributed
    from ganforge.metrics.evaluate import Evaluator
    from ganforge.metrics.extractors import FeatureExtractor

    class Pixels(FeatureExtractor):
        name, dim = "pixels-test", 48
        def __call__(self, images):
            return {"features": torch.nn.functional.avg_pool2d(images.float(), 4).flatten(1).cpu()}

    group, _ = distributed.init_process_group(torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (37, 3, 16, 16), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 200, (29, 3, 16, 16), dtype=torch.uint8, generator=g)
    ev = Evaluator(real, metrics=["fid", "kid", "pr"], extractor=Pixels(), batch=5, use_cache=False, group=group,
                   kid_subset_size=10)
    gen = lambda start, count: fake[start:start + count].float() / 127.5 - 1
    res = ev(gen, num=29)
    res2 = ev(fake)  # generated images given as a tensor: shared the same way
    if group.rank == 0:
        print(json.dumps({k: res[k] for k in ("fid", "kid_mean", "precision", "recall", "num_real", "num_fake")} |
                         {"fid_tensor": res2["fid"]}))
    distributed.shutdown()
    """
)


def test_distributed_fid_equals_single_process_fid(tmp_path):
    script = tmp_path / "fid.py"
    script.write_text(FID_SCRIPT)
    two = json.loads(_launch([str(script)], module=False).stdout.strip().splitlines()[-1])
    one = json.loads(subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT,
                                    env=_env(), check=True).stdout.strip().splitlines()[-1])
    assert two["num_real"] == one["num_real"] == 37 and two["num_fake"] == one["num_fake"] == 29
    for k in ("fid", "kid_mean", "precision", "recall", "fid_tensor"):
        assert two[k] == pytest.approx(one[k], rel=1e-6, abs=1e-9), k
