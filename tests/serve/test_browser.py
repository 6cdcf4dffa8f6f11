"""End to end: the real server (uvicorn on a free loopback port) driven by headless Chromium through
Playwright. Opens the playground, moves the seed and checks that a new image arrived and decodes; also
the runs list, a run page, an image-to-image upload, the token flow and a phone-width layout.
Screenshots go to the test's tmp dir and to /tmp/briefs/ for people to look at."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from helpers import CHROMIUM, Server

SHOTS = Path("/tmp/briefs")

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright (pip install playwright; no browser download)"
)


def _page(browser, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


def _image_bytes(page, selector: str) -> bytes:
    """The bytes behind an <img> fed from a blob URL, read back in the page."""
    data = page.evaluate(
        """async (sel) => {
            const img = document.querySelector(sel);
            const buf = await (await fetch(img.src)).arrayBuffer();
            return Array.from(new Uint8Array(buf));
        }""",
        selector,
    )
    return bytes(data)


def _wait_image(page, selector: str, not_src: str | None = None) -> str:
    page.wait_for_function(
        """([sel, old]) => { const i = document.querySelector(sel);
            return i && i.src.startsWith('blob:') && i.src !== old && i.complete && i.naturalWidth > 0; }""",
        arg=[selector, not_src or ""],
        timeout=20_000,
    )
    return page.get_attribute(selector, "src")


def _save(page, tmp_path: Path, name: str) -> None:
    page.evaluate("() => window.scrollTo(0, 0)")  # a full-page shot taken scrolled repeats the sticky header
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SHOTS.is_dir():
        shutil.copyfile(tmp_path / name, SHOTS / name)


def test_playground_moves_the_seed(browser, app, tmp_path):
    with Server(app) as url:
        page, errors = _page(browser, 1280, 800)
        page.goto(f"{url}/#/play/sg")
        first = _wait_image(page, "#gen")
        before = _image_bytes(page, "#gen")
        assert Image.open(io.BytesIO(before)).size == (16, 16)
        assert "seed 0" in page.text_content("#caption")

        page.click("#seed-next")  # move the seed: 0 -> 1
        second = _wait_image(page, "#gen", not_src=first)
        after = _image_bytes(page, "#gen")
        with Image.open(io.BytesIO(after)) as im:
            im.load()
            assert im.size == (16, 16)
        assert after != before, "a new seed gives a new image"
        assert page.input_value("#seed") == "1"
        page.wait_for_function("() => document.querySelector('#caption').textContent.includes('seed 1')")

        # Dragging the slider fires many inputs: stale requests are aborted, the last position wins.
        for v in (5, 9, 14, 20):
            page.fill("#seed", str(v))
        _wait_image(page, "#gen", not_src=second)
        page.wait_for_function("() => document.querySelector('#gen').dataset.seed === '20'")
        assert page.get_attribute("#download", "download") == "sg-seed20.png"
        assert "seed=20" in page.url, "the address bar keeps the playground's state"

        # Interpolation GIF and the style-mixing grid.
        page.get_by_role("button", name="Animate", exact=True).click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('img[alt=interpolation]')].some(i => !i.hidden && i.naturalWidth > 0)",
            timeout=30_000,
        )
        page.get_by_role("button", name="Mix", exact=True).click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('img[alt=\"style mixing grid\"]')].some(i => !i.hidden && i.naturalWidth > 0)",
            timeout=30_000,
        )
        _save(page, tmp_path, "serve-screenshot.png")
        assert not errors, errors


def test_phone_width(browser, app, tmp_path):
    with Server(app) as url:
        page, errors = _page(browser, 390, 844)
        page.goto(f"{url}/#/play/dccond")
        _wait_image(page, "#gen")
        page.select_option("#class", "2")
        page.wait_for_function("() => location.hash.includes('class=2')")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the playground overflows a phone screen ({width} px)"
        _save(page, tmp_path, "serve-screenshot-phone.png")
        page.goto(f"{url}/#/")
        page.wait_for_selector(".card")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert not errors, errors


def test_runs_list_and_run_page(browser, app, tmp_path):
    with Server(app) as url:
        page, errors = _page(browser, 1280, 800)
        page.goto(f"{url}/")
        page.wait_for_selector(".card[data-run=crashed]")
        names = page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.run)")
        assert names == ["crashed", "dc", "dccond", "p2p", "sg"]
        assert "stopped" in page.text_content(".card[data-run=crashed] .badge")
        page.click(".card[data-run=dc]")
        page.wait_for_selector("canvas")
        assert page.locator(".chart h2").first.text_content() == "Losses"
        _wait_image(page, ".timeline img")
        assert "step 4" in page.text_content(".timeline")
        page.fill("input[aria-label='sample step']", "0")
        page.wait_for_function("() => document.querySelector('.timeline').textContent.includes('step 2')")
        # The chart is drawn: some of its pixels are not background.
        inked = page.evaluate(
            """() => { const c = document.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        )
        assert inked > 500
        _save(page, tmp_path, "serve-screenshot-run.png")
        # A run without a checkpoint: no playground button, and nothing shows as "null" or "undefined".
        page.goto(f"{url}/#/run/crashed")
        page.wait_for_selector(".pagehead h1")
        head = page.text_content(".pagehead")
        assert "no checkpoint yet" in head and "null" not in head and "undefined" not in head
        assert page.locator("text=Open playground").count() == 0
        assert not errors, errors


def test_translate_upload(browser, app, tmp_path):
    src = tmp_path / "edges.png"
    Image.new("RGB", (24, 24), (250, 250, 250)).save(src)
    with Server(app) as url:
        page, errors = _page(browser, 1280, 800)
        page.goto(f"{url}/#/play/p2p")
        page.set_input_files("#upload", str(src))
        _wait_image(page, "#translated")
        with Image.open(io.BytesIO(_image_bytes(page, "#translated"))) as im:
            assert im.size == (24, 24)
        assert not errors, errors


def test_translate_example_in_one_click(browser, app, tmp_path):
    """Issue 24: the image-to-image playground offers the run's own inputs; one click translates one."""
    with Server(app) as url:
        page, errors = _page(browser, 1280, 800)
        page.goto(f"{url}/#/play/p2p")
        _wait_image(page, "#examples .example[data-index='0'] img")
        assert page.locator("#examples .example").count() == 4
        page.click("#examples .example[data-index='2']")
        _wait_image(page, "#translated")
        with Image.open(io.BytesIO(_image_bytes(page, "#translated"))) as im:
            assert im.size == (16, 16)
        _save(page, tmp_path, "serve-screenshot-translate-examples.png")
        assert not errors, errors


def test_token_flow(browser, runs_dir, tmp_path):
    from ganforge.serve import create_app

    with Server(create_app(runs_dir, token="tok-123456")) as url:
        page, errors = _page(browser, 1280, 800)
        page.goto(f"{url}/")
        page.wait_for_selector("form.login")  # no token yet: the page asks for one
        page.goto(f"{url}/?token=tok-123456#/")
        page.wait_for_selector(".card[data-run=dc]")
        assert "token" not in page.url, "the token leaves the address bar"
        page.goto(f"{url}/#/play/dc")  # the tab keeps it
        _wait_image(page, "#gen")
        assert [e for e in errors if "401" not in e] == []
