"""benchmarks/train_speed.py's CUDA mode, the parts that run on a CPU: the refusal without a GPU, the FLOPs
counter, the steady-state img/s, the row summaries and ratios, and one row measured through a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_speed

ROOT = Path(__file__).resolve().parents[2]
TINY_DCGAN = {"nz": 8, "ngf": 8, "ndf": 8}
TINY_SG2 = {"cfg": "small", "z_dim": 16, "channel_base": 64, "channel_max": 16, "map_layers": 1}


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """One CPU thread here and in child processes: these tests are tiny, and the machine may be shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


def test_cuda_without_a_gpu_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        train_speed.main(["--device", "cuda", "--quick"])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == train_speed.NO_CUDA + "\n"
    assert "--device cuda" in err and "torch.cuda.is_available() is False" in err
    assert train_speed.resolve_device("auto") == "cpu"
    assert train_speed.resolve_device("cpu") == "cpu"


def test_cuda_without_a_gpu_from_the_command_line_has_no_traceback():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--device", "cuda"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == train_speed.NO_CUDA
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_flops_per_image_counts_a_training_step():
    small, params_small = train_speed.step_flops_per_image("dcgan", 32, 8, TINY_DCGAN)
    assert small > 1e6 and params_small > 1000
    # Per image: the batch does not change it.
    same, _ = train_speed.step_flops_per_image("dcgan", 32, 4, TINY_DCGAN)
    assert same == pytest.approx(small, rel=0.02)
    # Twice the widths: about four times the convolution FLOPs (the first and last layers grow 2x).
    wide, params_wide = train_speed.step_flops_per_image("dcgan", 32, 8, {**TINY_DCGAN, "ngf": 16, "ndf": 16})
    assert 2.5 < wide / small < 4.5
    assert params_wide > 2.5 * params_small


def test_flops_per_image_amortises_stylegan2_path_length():
    amortised, params = train_speed.step_flops_per_image("stylegan2", 32, 8, TINY_SG2)  # path length every 4 steps
    # With path length every 16 steps it falls on R1's steps, which are left out: the plain step alone.
    plain, _ = train_speed.step_flops_per_image("stylegan2", 32, 8, {**TINY_SG2, "pl_interval": 16})
    assert plain > 1e6 and params > 1000
    assert plain * 1.01 < amortised < plain * 1.5, "the path-length step's extra FLOPs, over 4 steps"


def test_steady_img_s_leaves_the_warm_up_windows_out():
    recs = [
        {"step": 16, "img_s": 10.0},
        {"step": 32, "img_s": 100.0},
        {"step": 40, "rollback_from": 41},  # not a timing window
        {"step": 48, "img_s": 300.0},
    ]
    # 128 images at 100 img/s and 128 at 300: 256 images in 1.28 + 0.4267 s.
    assert train_speed.steady_img_s(recs, 8, 16) == pytest.approx(256 / (1.28 + 128 / 300))
    assert train_speed.steady_img_s(recs, 8, 32) == pytest.approx(300.0)
    assert train_speed.steady_img_s(recs, 8, 48) is None
    assert train_speed.steady_img_s([], 8, 0) is None


def test_plan_rows():
    quick = train_speed.ganforge_plan([64], "both", quick=True)
    assert [s["name"] for s in quick] == [
        "ganforge dcgan 64px",
        "ganforge dcgan 64px compile",
        "ganforge stylegan2 64px",
        "ganforge stylegan2 64px compile",
    ]
    assert [(s["batch"], s["compile"], s["precision"]) for s in quick] == [
        (64, False, "auto"),
        (64, True, "auto"),
        (32, False, "auto"),
        (32, True, "auto"),
    ]
    assert all(s["warmup"] % train_speed.WINDOW == 0 and s["steps"] >= 2 * train_speed.WINDOW for s in quick)
    full = train_speed.ganforge_plan([64, 128, 256], "off", quick=False, fp16_res=0)
    assert [(s["model"], s["resolution"]) for s in full] == [
        ("dcgan", 64),
        ("stylegan2", 64),
        ("stylegan2", 128),
        ("stylegan2", 256),
    ]
    assert full[1]["family"] == {"cfg": "auto", "num_fp16_res": 0} and not any(s["compile"] for s in full)
    assert full[0]["steps"] > quick[0]["steps"]


def fake_measurement(**kw):
    m = {
        "kind": "ganforge",
        "name": "ganforge stylegan2 64px",
        "model": "stylegan2",
        "resolution": 64,
        "batch": 32,
        "family": {"cfg": "auto"},
        "precision": "bf16",
        "compile": False,
        "warmup": 32,
        "steps": 64,
        "img_s": 500.04,
        "gpu_mem_gib": 3.4567,
        "flops_per_img": 20e9,
        "params": 48_760_000,
    }
    m.update(kw)
    return m


def test_summarize_and_format_a_row():
    row = train_speed.summarize_row(fake_measurement(), peak_tflops=400.0)
    assert set(row) == set(train_speed.ROW_KEYS) | {"gflop_per_img", "params_m"}
    assert row["name"] == "ganforge stylegan2 64px" and row["model"] == "stylegan2" and row["resolution"] == 64
    assert row["batch"] == 32 and row["precision"] == "bf16" and row["compile"] is False
    assert row["img_s"] == 500.0 and row["gpu_mem_gib"] == 3.46
    assert row["tflops"] == pytest.approx(10.0, abs=1e-3)  # 20 GFLOP/img x 500 img/s
    assert row["peak_fraction"] == pytest.approx(0.025, abs=1e-4)  # 10 of 400 TFLOP/s
    assert row["gflop_per_img"] == 20.0 and row["params_m"] == 48.76
    json.dumps(row)  # goes into the report as is
    line = train_speed.format_row(row)
    assert line.startswith("ganforge stylegan2 64px") and "500.0" in line and "3.46" in line and "2.5 %" in line
    assert len(train_speed.table_header()) == len(line)

    failed = train_speed.summarize_row(fake_measurement(error="exit 1: CUDA out of memory"), 400.0)
    assert failed["error"] == "exit 1: CUDA out of memory" and "img_s" not in failed
    assert "failed: exit 1: CUDA out of memory" in train_speed.format_row(failed)


def test_comparison_rows_and_ratios(capsys):
    def ours(res, img_s, compile):
        return train_speed.summarize_row(
            fake_measurement(name=f"sg2 {res}", resolution=res, img_s=img_s, compile=compile), 400.0
        )

    rows = [
        train_speed.summarize_row(fake_measurement(name="dcgan", model="dcgan", img_s=9000.0), 400.0),
        ours(64, 500.0, False),
        ours(64, 800.0, True),
        ours(128, 150.0, False),
        train_speed.summarize_row(fake_measurement(resolution=256, error="timed out"), 400.0),
    ]

    def theirs(lib, res, img_s, **kw):
        m = {
            "name": f"{lib} {res}px",
            "library": lib,
            "resolution": res,
            "batch": 32,
            "version": "1.9.0",
            "precision": "fp32",
            "img_s": img_s,
            "gpu_mem_gib": 5.0,
            "params": 30e6,
            "steps": 40,
            "images": 3786,
        }
        return train_speed.summarize_comparison({**m, **kw})

    comparison = [
        theirs("stylegan2-pytorch", 64, 200.0),
        theirs("lightweight-gan", 64, 1000.0),
        theirs("stylegan2-pytorch", 128, 120.0),
        theirs("stylegan2-pytorch", 256, 50.0),
    ]
    assert comparison[0]["params_m"] == 30.0 and comparison[0]["precision"] == "fp32"
    assert "-" in train_speed.format_row(comparison[0]) and "200.0" in train_speed.format_row(comparison[0])
    assert train_speed.ratios_vs_stylegan2_pytorch(rows, comparison, compiled=False) == {"64": 2.5, "128": 1.25}
    assert train_speed.ratios_vs_stylegan2_pytorch(rows, comparison, compiled=True) == {"64": 4.0}
    broken = [theirs("stylegan2-pytorch", 64, 0.0, error="exit 1")]
    assert train_speed.ratios_vs_stylegan2_pytorch(rows, broken, compiled=False) == {}

    train_speed.print_ratios({"64": 2.5, "128": 1.25}, {"64": 4.0})
    out = capsys.readouterr().out
    assert "64px 2.50x (compile 4.00x), 128px 1.25x" in out
    assert "not met without --compile, met with it" in out
    train_speed.print_ratios({"64": 2.5}, {})
    assert "met without --compile, - with it" in capsys.readouterr().out
    assert train_speed.goal_met({"64": 1.5, "128": 1.6}) is True and train_speed.goal_met({}) is None


def test_a_row_measured_in_a_child_process_on_the_cpu():
    spec = {
        "kind": "ganforge",
        "name": "tiny dcgan",
        "model": "dcgan",
        "resolution": 16,
        "batch": 8,
        "family": TINY_DCGAN,
        "precision": "fp32",
        "compile": False,
        "warmup": 2,
        "steps": 4,
        "window": 2,
        "device": "cpu",
    }
    m = train_speed.run_row(spec, timeout=120)
    assert "error" not in m, m.get("error")
    assert m["img_s"] > 0 and m["gpu_mem_gib"] == 0.0 and m["precision"] == "fp32"
    assert m["flops_per_img"] == pytest.approx(train_speed.step_flops_per_image("dcgan", 16, 8, TINY_DCGAN)[0])
    row = train_speed.summarize_row(m, peak_tflops=1.0)
    assert row["tflops"] >= 0 and row["name"] == "tiny dcgan"


def test_a_failing_or_hanging_row_comes_back_with_an_error(monkeypatch, capsys):
    spec = {"kind": "ganforge", "name": "row", "model": "stylegan2"}

    def failing(cmd, **kw):
        assert cmd[1].endswith("train_speed.py") and cmd[2] == "--row" and json.loads(cmd[3]) == spec
        return subprocess.CompletedProcess(
            cmd, 1, stdout="", stderr="Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory\n"
        )

    monkeypatch.setattr(train_speed.subprocess, "run", failing)
    bad = train_speed.run_row(spec, timeout=5)
    assert bad == {**spec, "error": "exit 1: torch.OutOfMemoryError: CUDA out of memory"}
    assert "row row failed (exit 1)" in capsys.readouterr().err

    def hanging(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(train_speed.subprocess, "run", hanging)
    assert train_speed.run_row(spec, timeout=5)["error"] == "timed out after 5 s"


def test_cuda_mode_report_with_fake_rows(monkeypatch, tmp_path, capsys):
    """cuda_main's table, skip lines, ratios and JSON, with the GPU work replaced by fake measurements."""
    monkeypatch.setattr(train_speed, "resolve_device", lambda name: "cuda")
    monkeypatch.setattr(train_speed, "bf16_matmul_peak_tflops", lambda: 400.0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    installed = {"stylegan2_pytorch"}
    monkeypatch.setattr(train_speed.importlib.util, "find_spec", lambda name: object() if name in installed else None)
    monkeypatch.setattr(train_speed, "write_image_folder", lambda res, folder: 3786)
    seen = []

    def fake_row(spec, timeout):
        seen.append(spec)
        if spec["kind"] == "ganforge":
            return fake_measurement(**{k: spec[k] for k in ("name", "model", "resolution", "batch", "compile")})
        return {**spec, "version": "1.9.0", "precision": "fp32", "img_s": 250.0, "gpu_mem_gib": 6.0, "params": 3e7}

    monkeypatch.setattr(train_speed, "run_row", fake_row)
    train_speed.main(["--device", "cuda", "--quick", "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert "Fake GPU" in out and "400.0 TFLOP/s" in out
    assert "lightweight-gan not installed (pip install lightweight-gan): comparison skipped" in out
    assert "stylegan2-pytorch not installed" not in out
    assert "64px 2.00x (compile 2.00x)" in out  # 500 / 250 img/s
    assert [s["name"] for s in seen] == [
        "ganforge dcgan 64px",
        "ganforge dcgan 64px compile",
        "ganforge stylegan2 64px",
        "ganforge stylegan2 64px compile",
        "stylegan2-pytorch 64px",
    ]
    assert seen[-1]["batch"] == 32 and seen[-1]["resolution"] == 64 and seen[-1]["steps"] + seen[-1]["warmup"] < 100
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["benchmark"] == "train_speed" and report["device"] == "cuda" and report["gpu"] == "Fake GPU"
    assert report["bf16_matmul_peak_tflops"] == 400.0
    assert [set(r) for r in report["rows"]] == [set(train_speed.ROW_KEYS) | {"gflop_per_img", "params_m"}] * 4
    assert report["comparison"][0]["library"] == "stylegan2-pytorch" and report["comparison"][0]["img_s"] == 250.0
    assert report["comparison_skipped"] == {"lightweight-gan": "not installed"}
    assert report["ratio_vs_stylegan2_pytorch"] == {"64": 2.0}
    assert report["goal_met"] == {"eager": True, "compile": True}
    assert report["command"].endswith("--device cuda --quick --json " + str(tmp_path / "out.json"))
