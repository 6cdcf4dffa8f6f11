"""ganforge report: one self-contained HTML file; rendered in headless Chromium and screenshotted."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.report import build_report, pick_evenly, write_report

pytest.importorskip("matplotlib", reason="pip install 'ganforge[report]'")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Set to keep a copy of the screenshot for a person to look at (e.g. GANFORGE_SCREENSHOT=/tmp/report.png).
SCREENSHOT_COPY = os.environ.get("GANFORGE_SCREENSHOT")


def test_pick_evenly_keeps_first_and_last():
    assert pick_evenly(list(range(30)), 12)[0] == 0 and pick_evenly(list(range(30)), 12)[-1] == 29
    assert len(pick_evenly(list(range(30)), 12)) == 12
    assert pick_evenly([1, 2, 3], 12) == [1, 2, 3]
    assert pick_evenly(list(range(5)), 1) == [4]


def test_report_is_self_contained(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["dcgan-cond"], run)
    for step in range(6, 60, 2):  # a long run's worth of grids: the timeline shows 12 of them
        shutil.copyfile(run / "samples" / "grid-000004.png", run / "samples" / f"grid-{step:06d}.png")
    text, info = build_report(run)
    assert info["grids"] == 12 and info["plots"] >= 3
    assert "grid-000058" in text and "step 58" in text and "step 2<" in text  # first and last always shown
    # Nothing is fetched: every image is a data URI, no external script, stylesheet or font.
    srcs = re.findall(r"src=['\"]([^'\"]+)", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert (
        "<script" not in text
        and "<link" not in text
        and "http" not in text.split("<footer>")[0].replace("http-equiv", "")
    )
    for s in srcs[:3]:
        assert base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "Final metrics" in text and "loss_D" in text and "Configuration" in text


def test_image_to_image_report_has_pairs(runs, tmp_path):
    text, info = build_report(runs["pix2pix"], pairs=3)
    assert "Input / output" in text and text.count("<tr><td><img") == 3
    assert not info["notes"]


def test_cli_report(runs, tmp_path):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["report", str(runs["dcgan"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<!doctype html>")
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no run at" in r.output


def test_report_renders_in_chromium(runs, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    out = tmp_path / "report.html"
    write_report(runs["pix2pix"], out)
    shot = tmp_path / "report.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(out.as_uri())
            # Every embedded image decoded (naturalWidth > 0) and laid out on the page.
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            assert page.title() == "ganforge report: pix2pix"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    if SCREENSHOT_COPY:
        shutil.copyfile(shot, SCREENSHOT_COPY)
