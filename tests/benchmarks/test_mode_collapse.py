"""A seconds-long run of the mode-collapse benchmark, through the real loop, and its bookkeeping."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mode_collapse_bench", ROOT / "benchmarks" / "mode_collapse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_short_ring_run(bench, tmp_path):
    tiny = replace(bench.VANILLA, family={**bench.VANILLA.family, "g_width": 16, "d_width": 16, "g_layers": 2, "d_layers": 2})
    other = bench.BenchConfig("tiny sngan", "sngan", {"width": 16, "layers": 2}, steps=30, batch=64)
    result = bench.run_benchmark([tiny, other], ("ring8",), (0,), steps=30, plot_dir=tmp_path, echo=lambda s: None)
    rows = result["rows"]
    assert [(r["config"], r["data"], r["seed"]) for r in rows] == [(tiny.name, "ring8", 0), ("tiny sngan", "ring8", 0)]
    for r in rows:
        assert 0 <= r["modes"] <= r["num_modes"] == 8 and 0.0 <= r["hq"] <= 1.0
        assert r["steps"] == 30 and r["cpu_s"] > 0
    assert result["best_ring8_config"] in (tiny.name, "tiny sngan")
    assert {"best_ring8_modes_min", "best_ring8_hq_min"} <= set(result)
    assert "vanilla_grid25_modes_mean" not in result, "no grid25 rows were run"
    table = result["table"]
    assert "PacGAN4" in table and "Unrolled GAN" in table and "VEEGAN" in table and tiny.name in table
    assert (tmp_path / "gan-vanilla-ring8.png").exists()
    json.dumps(result)  # the JSON file holds all of it


def test_summary_keys_and_best_choice(bench):
    rows = []
    for cfg, data, modes, hq in [
        ("gan (vanilla)", "grid25", [3, 5], [0.1, 0.2]),
        ("good", "grid25", [25, 24], [0.95, 0.99]),
        ("steady", "grid25", [25, 25], [0.91, 0.92]),
        ("good", "ring8", [8, 8], [0.97, 0.9]),
    ]:
        rows += [{"config": cfg, "data": data, "seed": s, "modes": m, "hq": h, "cpu_s": 1.0} for s, (m, h) in enumerate(zip(modes, hq))]
    configs = [bench.VANILLA, bench.BenchConfig("good", "gan", {}, 1, 1), bench.BenchConfig("steady", "gan", {}, 1, 1)]
    out = bench.summarise(rows, configs, ("ring8", "grid25"))
    # The best configuration is judged by its worst seed: "steady" beats "good", whose second seed lost a mode.
    assert out["best_grid25_config"] == "steady" and out["best_grid25_modes_min"] == 25 and out["best_grid25_hq_min"] == 0.91
    assert out["best_ring8_config"] == "good" and out["best_ring8_hq_min"] == 0.9
    assert out["vanilla_grid25_modes_mean"] == 4
