"""`ganforge serve` under load, on the CPU: latency of GET /api/runs/{run}/generate.png for a 64 px DCGAN
and a 256 px StyleGAN2, then 1,000 requests at concurrency 8 (to the DCGAN) that must all succeed.

The networks are the families' default configurations at those sizes with freshly initialised weights
(written as run folders through the library, no training: speed does not depend on the weights), so no
dataset or download is needed. The server is the real one (`python -m ganforge serve` in a subprocess,
uvicorn on 127.0.0.1 only); the clients are threads with keep-alive connections in this process.
Latency is measured one request at a time, after one warm-up request per model (which loads it). Every
phase stops at its time budget, so the whole run is bounded (--quick: a few seconds of each).

Goal (issue 14): p50 <= 50 ms for dcgan64 and <= 500 ms for stylegan256 on 2 CPU cores, zero errors.

    python benchmarks/serve_load.py [--json PATH] [--quick] [--threads N]

On a busy CPU (another process training), run it with --threads 1 too: see `ganforge serve --threads`.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common

RUNS = {
    "dcgan64": ("dcgan", 64, {}),
    "stylegan256": ("stylegan2", 256, {}),
}


def make_run(root: Path, name: str, model: str, res: int, family: dict) -> None:
    """A run folder holding freshly initialised networks of the default config (step 0)."""
    import torch

    from ganforge import checkpoint as ckpt
    from ganforge.config import TrainConfig
    from ganforge.families.build import build_model
    from ganforge.spec import DataSpec

    torch.manual_seed(0)
    spec = DataSpec(kind="image", resolution=res, channels=3)
    cfg = TrainConfig(data=f"untrained:{res}px", model=model, run=name, runs_dir=str(root), family=dict(family))
    family_obj, _, nets = build_model(cfg, spec, torch.device("cpu"))
    run_dir = root / name
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    meta = {
        "family": family_obj.name,
        "config": cfg.to_dict(),
        "spec": spec.to_dict(),
        "loop": {"nimg": 0, "elapsed": 0.0, "sampler": {"epoch": 0, "pos": 0}, "precision": "fp32"},
        "torch_version": torch.__version__,
    }
    ckpt.save_checkpoint(run_dir / "checkpoints", 0, nets, {}, meta, family_obj.state_dict())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def sequential(port: int, run: str, n: int, budget_s: float) -> tuple[list[float], int]:
    """Milliseconds of up to n requests one after another (distinct seeds), and the errors."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times, errors = [], 0
    end = time.monotonic() + budget_s
    for seed in range(1, n + 1):
        if time.monotonic() > end:
            break
        t = time.perf_counter()
        try:
            status, body = get(conn, f"/api/runs/{run}/generate.png?seed={seed}")
            ok = status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
        except (OSError, http.client.HTTPException):
            ok = False
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
        errors += not ok
    conn.close()
    return times, errors


def load(port: int, run: str, total: int, workers: int, budget_s: float) -> dict:
    """`total` requests from `workers` threads at once; every answer must be a PNG."""
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "done": 0}
    times: list[float] = []
    end = time.monotonic() + budget_s

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if state["next"] >= total or time.monotonic() > end:
                    break
                i = state["next"]
                state["next"] += 1
            t = time.perf_counter()
            try:
                status, body = get(conn, f"/api/runs/{run}/generate.png?seed={i}")
                ok = status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            ms = (time.perf_counter() - t) * 1000
            with lock:
                times.append(ms)
                state["done"] += 1
                state["errors"] += not ok
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {
        "requests": state["done"],
        "errors": state["errors"],
        "wall_s": round(wall, 2),
        "rps": round(state["done"] / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(times, 50), 1) if times else None,
        "p99_ms": round(percentile(times, 99), 1) if times else None,
        "complete": state["done"] == total,
    }


def main() -> None:
    ap = _common.parser(__doc__, quick="a smoke run: few requests, seconds per phase")
    ap.add_argument("--threads", type=int, default=0, help="the server's --threads (0: torch's default, every core)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds allowed to each phase")
    args = ap.parse_args()
    quick = args.quick
    n_dc, n_sg, n_load = (20, 3, 100) if quick else (300, 40, 1000)
    budget = min(args.budget, 20.0) if quick else args.budget

    with tempfile.TemporaryDirectory(prefix="ganforge-serve-bench-") as tmp:
        root = Path(tmp) / "runs"
        for name, (model, res, fam) in RUNS.items():
            make_run(root, name, model, res, fam)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganforge", "serve", str(root), "--host", "127.0.0.1", "--port", str(port)]
            + ["--threads", str(args.threads)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    if get(c, "/api/runs")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    raise SystemExit(f"error: the server did not start:\n{out[-2000:]}")
                time.sleep(0.2)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            for name in RUNS:  # warm-up: loads the model into the server's cache
                status, _ = get(conn, f"/api/runs/{name}/generate.png?seed=0")
                if status != 200:
                    raise SystemExit(f"error: warm-up request to {name} failed with HTTP {status}")
            conn.close()
            dc, dc_err = sequential(port, "dcgan64", n_dc, budget)
            sg, sg_err = sequential(port, "stylegan256", n_sg, budget)
            burst = load(port, "dcgan64", n_load, 8, budget)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    res = {
        "p50_ms_dcgan64": round(percentile(dc, 50), 1),
        "p99_ms_dcgan64": round(percentile(dc, 99), 1),
        "n_dcgan64": len(dc),
        "p50_ms_stylegan256": round(percentile(sg, 50), 1),
        "p99_ms_stylegan256": round(percentile(sg, 99), 1),
        "n_stylegan256": len(sg),
        "requests": burst["requests"],
        "errors": burst["errors"] + dc_err + sg_err,
        "concurrency": 8,
        "load": burst,
        "goal": {"p50_ms_dcgan64": 50, "p50_ms_stylegan256": 500, "requests": n_load, "errors": 0},
        "networks": "default dcgan config at 64 px and default stylegan2 config at 256 px, freshly initialised (untrained)",
        "server_threads": args.threads or "torch default",
        "quick": quick,
    }
    met = res["p50_ms_dcgan64"] <= 50 and res["p50_ms_stylegan256"] <= 500 and res["errors"] == 0 and burst["complete"]
    res["goal_met"] = met
    print(f"{'model':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'dcgan64':<14}{len(dc):>6}{res['p50_ms_dcgan64']:>10}{res['p99_ms_dcgan64']:>10}")
    print(f"{'stylegan256':<14}{len(sg):>6}{res['p50_ms_stylegan256']:>10}{res['p99_ms_stylegan256']:>10}")
    print(
        f"load: {burst['requests']} requests at concurrency 8 in {burst['wall_s']} s ({burst['rps']} req/s), "
        f"p50 {burst['p50_ms']} ms, p99 {burst['p99_ms']} ms, errors {res['errors']}"
    )
    print("goal met" if met else "goal NOT met (p50 dcgan64 <= 50 ms, stylegan256 <= 500 ms, all requests, no errors)")
    _common.write_json(args.json, res)


if __name__ == "__main__":
    main()
