from __future__ import annotations

import json

from ganforge import checkpoint as ckpt
from ganforge.training.loop import train
from helpers import tiny_config


def test_periodic_eval_logs_metrics_and_picks_best(tmp_path, tiny_labelled_data, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(
        tmp_path, tiny_labelled_data, steps=4, eval_every=2, eval_metrics="fid,coverage", eval_num=16,
        eval_extractor="classifier", keep_ckpts=1,
    )
    res = train(cfg, progress=False)
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in recs if "fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["extractor"].startswith("classifier") and r["num_fake"] == 16 for r in evals)
    best = json.loads((res.run_dir / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "fid" and best["value"] == min(r["fid"] for r in evals)
    # The best checkpoint survives pruning.
    assert best["step"] in ckpt.list_checkpoints(res.run_dir / "checkpoints")
