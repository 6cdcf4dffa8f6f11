"""End-to-end CLI tests, in-process: train -> generate -> info, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

import ganforge
from ganforge.cli import main, parse_seeds
from ganforge.errors import GanforgeError

TINY = ["--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"]


def run(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_parse_seeds():
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(GanforgeError):
        parse_seeds("3-1")
    with pytest.raises(GanforgeError):
        parse_seeds("a,b")
    with pytest.raises(GanforgeError, match="cannot be negative"):
        parse_seeds("-1")
    with pytest.raises(GanforgeError, match="more than 1,000,000 seeds"):
        parse_seeds("0-2000000")


def test_train_generate_info(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    r = run(
        [
            "train",
            "--data",
            tiny_data,
            "--steps",
            "3",
            "--run",
            "e2e",
            "--runs-dir",
            str(runs),
            "--sample-every",
            "2",
            *TINY,
        ]
    )
    assert r.exit_code == 0, r.output
    assert "done: 3 steps" in r.output
    run_dir = runs / "e2e"
    assert (run_dir / "samples" / "grid-000003.png").exists()

    r = run(["generate", str(run_dir), "--seeds", "0-3", "--out", str(tmp_path / "gen")])
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert files == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0003.png"]
    assert Image.open(tmp_path / "gen" / "seed0002.png").size == (16, 16)

    r = run(["generate", str(run_dir), "--seeds", "0-8", "--grid", "--out", str(tmp_path / "grid.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "grid.png").size == (3 * 17 + 1, 3 * 17 + 1)

    # Same seed -> same image, through the CLI and the library.
    r = run(["generate", str(run_dir), "--seeds", "2", "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "seed0002.png").read_bytes() == (tmp_path / "gen" / "seed0002.png").read_bytes()
    model = ganforge.load(str(run_dir))
    pil = model.generate(seeds=[2])
    assert list(pil[0].getdata()) == list(Image.open(tmp_path / "gen" / "seed0002.png").getdata())
    t = model.generate(seeds=[0, 1], output="tensor")
    assert t.shape == (2, 3, 16, 16)

    r = run(["info", str(run_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["model"] == "dcgan" and info["steps_trained"] == 3 and info["checkpoints"] == [3]
    assert "loss_D" in info["last"]


def test_resume_cli(tmp_path, tiny_data):
    runs = str(tmp_path / "runs")
    base = ["train", "--data", tiny_data, "--run", "r", "--runs-dir", runs, *TINY]
    assert run([*base, "--steps", "2"]).exit_code == 0
    r = run([*base, "--steps", "4", "--resume"])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "done: 4 steps" in r.output
    r = CliRunner().invoke(main, [*base, "--steps", "6", "--resume", "--batch", "4"])
    assert r.exit_code == 2
    assert "cannot resume: the run was trained with batch=8, not 4" in r.output


def test_dry_run_prints_config(tmp_path):
    r = run(["train", "--dry-run", "--set", "ngf=32", "--steps", "10"])
    cfg = json.loads(r.output)
    assert cfg["steps"] == 10 and cfg["family"]["ngf"] == 32 and cfg["model"] == "dcgan"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/nonexistent/folder"], "no such file or folder: /nonexistent/folder"),
        (["train", "--data", "nosuchbuiltin"], "unknown dataset 'nosuchbuiltin'"),
        (["train", "--set", "nosuchkey=1"], "unknown setting 'nosuchkey'"),
        (["train", "--set", "ngf=abc"], "bad value for ngf"),
        (["train", "--resolution", "24", "--steps", "1"], "power-of-two resolution"),
        (["train", "--run", "x", "--resume"], "no run to resume"),
        (["train", "--class-balance", "2", "--steps", "1"], "class_balance = 2.0 is out of range"),
        (["generate", "/nonexistent/run"], "no run at /nonexistent/run"),
        (["info", "/nonexistent/run"], "no run at /nonexistent/run"),
    ],
)
def test_bad_input_gives_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1


def test_empty_folder_and_unwritable_runs_dir(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run folder ./runs/dcgan-empty must not land in the repository
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "empty folder" in r.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(main, ["train", "--data", tiny_data, "--runs-dir", str(blocker / "runs"), "--steps", "1"])
    assert r.exit_code == 2 and "cannot write the run folder" in r.output
