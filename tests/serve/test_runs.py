"""What the studio reads from run folders while training writes them: status (stale "training" becomes
"stopped"), the growing metrics log (torn lines wait, garbage is skipped) and curve thinning."""

from __future__ import annotations

import json
import os
import time

from ganforge.serve.runs import MetricsLog, dataset_name, last_values, pid_alive, run_status, series


def write_status(d, **kw):
    rec = {"state": "training", "pid": os.getpid(), "step": 10, "updated": time.time(), "message": ""} | kw
    (d / "status.json").write_text(json.dumps(rec))


def test_status(tmp_path):
    assert run_status(tmp_path)["state"] == "stopped", "no status.json: stopped"
    write_status(tmp_path)
    assert run_status(tmp_path)["state"] == "training", "this process is alive and wrote just now"
    write_status(tmp_path, updated=time.time() - 3600)
    st = run_status(tmp_path)
    assert st["state"] == "stopped" and "no progress for 60 minutes" in st["message"]
    # A fresh metrics.jsonl line is a sign of life too.
    (tmp_path / "metrics.jsonl").write_text('{"step": 11}\n')
    assert run_status(tmp_path)["state"] == "training"
    write_status(tmp_path, pid=0)
    assert run_status(tmp_path)["state"] == "stopped"
    for state in ("done", "failed", "stopped"):
        write_status(tmp_path, state=state, pid=0, message="boom" if state == "failed" else "")
        assert run_status(tmp_path)["state"] == state
    assert run_status(tmp_path)["message"] == ""
    for junk in ('{"state": "flying"}', "[1]", "\x00\xff", '{"state": "training", "pid": "me", "updated": "now"}'):
        (tmp_path / "status.json").write_text(junk)
        assert run_status(tmp_path)["state"] == "stopped", junk


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert (
        not pid_alive(0) and not pid_alive(-5) and not pid_alive("1") and not pid_alive(True) and not pid_alive(2**40)
    )


def test_metrics_log_reads_only_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    assert log.read() == []
    path.write_bytes(b'{"step": 1, "loss_D": 1.0}\n{"step": 2, "lo')
    assert [r["step"] for r in log.read()] == [1], "the torn line waits for its end"
    with open(path, "ab") as f:
        f.write(b'ss_D": 0.5}\nnot json\n{"no_step": 1}\n{"step": true}\n{"step": 3, "loss_D": NaN}\n')
    recs = log.read()
    assert [r["step"] for r in recs] == [1, 2, 3] and recs[1]["loss_D"] == 0.5
    assert log.read() == recs, "nothing new: the same records"
    path.write_text('{"step": 7}\n')  # replaced (a new run of the same name): read from the start
    assert [r["step"] for r in log.read()] == [7]


def test_series_and_last_values():
    recs = [
        {"step": i, "loss_D": float(i), "fid": 50.0 - i if i % 10 == 0 else None, "flag": True} for i in range(1, 5001)
    ]
    s = series(recs, max_points=100)
    assert len(s["loss_D"]["x"]) == 100 and s["loss_D"]["y"][0] == sum(range(1, 51)) / 50, "averaged runs of 50 points"
    assert "flag" not in s and len(s["fid"]["x"]) == 100
    losses, metric = last_values(recs + [{"step": 5001, "loss_D": float("inf")}])
    assert losses == {"loss_D": 5000.0} and metric == {"key": "fid", "value": -4950.0, "step": 5000}


def test_dataset_name():
    assert dataset_name("/data/faces.zip") == "faces"
    assert dataset_name("C:\\data\\cats\\") == "cats"
    assert dataset_name("hf:user/set") == "hf:user/set"
    assert dataset_name(None) == "" and dataset_name(3) == ""


def test_memorization_results_are_metrics_on_the_run_page():
    from ganforge.serve.runs import is_metric

    for key in ("memorization_px", "memorization_feat_p10", "copies_px", "fid2k[classifier]"):
        assert is_metric(key), key
    assert not is_metric("loss_D")
