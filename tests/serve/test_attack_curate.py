"""The studio's attack page and curate view (issue 28): their APIs in-process (TestClient) on the built-in digits
classifier and the tiny runs of conftest.py, and each page once in headless Chromium when it is installed."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import Server


def detail(resp, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert "Traceback" not in body["detail"] and "\n" not in body["detail"]
    return body["detail"]


def decode(data_url: str) -> np.ndarray:
    """A PNG data URL as an int (H, W, C) array."""
    head, _, b64 = data_url.partition(",")
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        assert im.format == "PNG"
        arr = np.asarray(im).astype(np.int64)
    return arr[:, :, None] if arr.ndim == 2 else arr


def noise_png(size=(20, 20), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def attack(client, files=None, **fields):
    return client.post("/api/attack", data={k: str(v) for k, v in fields.items()}, files=files)


# ---- attack API ---------------------------------------------------------------------------------------------


def test_attack_models(client):
    body = client.get("/api/attack/models").json()
    ids = [m["id"] for m in body["models"]]
    assert ids[:3] == ["digits", "emoji", "digits16"]
    # Unconditional noise-to-image runs with a checkpoint; not the conditional one, pix2pix or the crashed run.
    assert "run:dc" in ids and "run:sg" in ids
    assert not {"run:dccond", "run:p2p", "run:crashed"} & set(ids)
    assert body["methods"] == ["fgsm", "pgd"] and body["norms"] == ["linf", "l2"]


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attack_upload_stays_within_eps(client, method):
    r = attack(client, {"image": ("noise.png", noise_png((20, 14)), "image/png")}, model="digits", method=method, eps=8)
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["clean_pred"] in [str(k) for k in range(10)] and row["adv_pred"] in [str(k) for k in range(10)]
    assert 0 < row["clean_conf"] <= 1 and 0 < row["adv_conf"] <= 1
    assert row["label_source"] == "clean prediction" and row["label"] == row["clean_pred"]
    assert row["flipped"] == (row["clean_pred"] != row["adv_pred"]) and row["success"] == row["flipped"]
    assert row["eps_label"] == "8/255" and row["size"] == [20, 14]
    clean, adv = decode(row["images"]["clean"]), decode(row["images"]["adversarial"])
    assert clean.shape == adv.shape == (14, 20, 1)  # the digits classifier reads gray
    diff = np.abs(adv - clean)
    assert diff.max() <= 8, "the PNG sent back respects ε = 8/255 on every pixel"
    assert diff.max() >= 1, "the attack moved some pixel"
    assert row["linf"] * 255 == pytest.approx(diff.max(), abs=1e-3)
    assert row["l2"] == pytest.approx(math.sqrt(((diff / 255.0) ** 2).sum()), rel=1e-4)
    pert = decode(row["images"]["perturbation"])  # x10 around grey
    d = (adv - clean)[..., 0]
    assert np.abs(pert[..., 0] - np.clip(np.round(10 * d + 127.5), 0, 255)).max() <= 1


def test_attack_l2_budget(client):
    r = attack(client, {"image": ("n.png", noise_png((16, 16), 1), "image/png")}, model="digits", norm="l2", eps=0.5)
    row = r.json()
    assert r.status_code == 200 and row["eps_label"] == "0.5"
    diff = (decode(row["images"]["adversarial"]) - decode(row["images"]["clean"])) / 255.0
    assert math.sqrt((diff**2).sum()) <= 0.5 + 1e-6


def test_attack_heldout_examples(client):
    """Held-out digits with their true classes: the route gives what `ganforge.attack` gives on the same images
    (PGD-20, seed 0, 8-bit), flips some of them at 8/255, and changes nothing at ε = 0."""
    import torch

    from ganforge.attack import attack_images, heldout_split, load_model
    from ganforge.data import load_dataset

    rows = []
    ex = client.get("/api/attack/example", params={"model": "digits", "index": "2"}).json()
    assert ex["index"] == 2 and ex["count"] > 50 and ex["label"] in [str(k) for k in range(10)]
    assert decode(ex["png"]).shape[2] == 1
    ds = load_dataset("digits")
    model = load_model("digits")
    for i, j in enumerate(heldout_split(len(ds))[1][:4].tolist()):
        # One image at a time, as the page sends them (PGD's random start is drawn per batch).
        ref = attack_images(model, ds.images[j : j + 1].float() / 255, ds.labels[j : j + 1], eps=8 / 255, quantize=True)
        want = ref.rows()[0]
        row = attack(client, model="digits", method="pgd", eps=8, example=i).json()
        assert row["label_source"] == "true" and row["example"] == i
        assert [row[k] for k in ("label", "clean_pred", "adv_pred")] == [
            want[k] for k in ("label", "clean_pred", "adv_pred")
        ]
        got = torch.from_numpy(decode(row["images"]["adversarial"])).permute(2, 0, 1).float() / 255
        assert torch.equal(got, ref.adv[0]), "the PNG holds the library's 8-bit adversarial image"
        assert np.abs(decode(row["images"]["adversarial"]) - decode(row["images"]["clean"])).max() <= 8
        rows.append(row)
    assert any(r["success"] and r["flipped"] for r in rows), "PGD at 8/255 fools the digits classifier on some"
    row = attack(client, model="digits", method="pgd", eps=0, example=2).json()
    assert row["label"] == ex["label"] and row["linf"] == 0 and not row["flipped"]


def test_attack_run_discriminator(client):
    row = attack(client, model="run:dc", method="fgsm", eps=4, example=0).json()
    assert row["label"] == "real" and row["label_source"] == "true"
    assert {row["clean_pred"], row["adv_pred"]} <= {"fake", "real"}
    assert row["model"]["name"] == "discriminator of run dc"
    assert np.abs(decode(row["images"]["adversarial"]) - decode(row["images"]["clean"])).max() <= 4


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"model": "digits", "eps": "99", "example": "0"}, 422, "eps must be"),
        ({"model": "digits", "eps": "-1", "example": "0"}, 422, "eps must be"),
        ({"model": "digits", "eps": "nan", "example": "0"}, 422, "eps must be"),
        ({"model": "digits", "norm": "l2", "eps": "11", "example": "0"}, 422, "eps must be"),
        ({"model": "digits", "method": "cw", "example": "0"}, 422, "method must be"),
        ({"model": "digits", "norm": "l3", "example": "0"}, 422, "norm must be"),
        ({"model": "mnist", "example": "0"}, 422, "unknown model"),
        ({"example": "0"}, 422, "model is required"),
        ({"model": "run:nosuch", "example": "0"}, 404, "no run named"),
        ({"model": "run:..", "example": "0"}, 404, "no run named"),
        ({"model": "run:dccond", "example": "0"}, 400, "class-conditional"),
        ({"model": "run:p2p", "example": "0"}, 400, "discriminator"),
        ({"model": "digits", "example": "99999"}, 422, "example must be"),
        ({"model": "digits"}, 422, "either an image"),
    ],
)
def test_attack_bad_input(client, fields, status, words):
    assert words in detail(attack(client, **fields), status)


def test_attack_bad_upload(client):
    r = attack(client, {"image": ("x.png", b"not an image", "image/png")}, model="digits")
    assert "not an image" in detail(r, 415)
    r = attack(client, {"image": ("x.png", noise_png(), "image/png")}, model="digits", example="1")
    assert "not both" in detail(r, 422)


def test_attack_reduces_large_uploads(client):
    row = attack(client, {"image": ("big.png", noise_png((300, 150), 2), "image/png")}, model="emoji", eps=2).json()
    assert row["size"] == [128, 64] and row["reduced_from"] == [300, 150]
    assert decode(row["images"]["adversarial"]).shape == (64, 128, 3)


# ---- curate API ---------------------------------------------------------------------------------------------


def test_curate_scorers(client):
    body = client.get("/api/runs/dc/curate/scorers").json()
    by = {s["name"]: s for s in body["scorers"]}
    assert by["sharpness"]["available"] and by["iqa"]["available"] and by["drs"]["available"]
    assert not by["face-pose"]["available"] and by["face-pose"]["why"]
    assert by["classifier"]["takes"] == "class"
    assert client.get("/api/runs/dccond/curate/scorers").json()["classes"] == ["c0", "c1", "c2"]
    assert "seeds" in detail(client.get("/api/runs/p2p/curate/scorers"), 400)


def test_curate_keeps_the_best_sorted(client):
    r = client.get("/api/runs/dc/curate", params={"by": "sharpness", "num": "24", "keep": "5"})
    assert r.status_code == 200, r.text
    body = r.json()
    kept = body["kept"]
    assert len(kept) == 5 and body["method"] == "rank" and body["num"] == 24 and body["step"] == 4
    scores = [k["scores"]["sharpness"] for k in kept]
    assert scores == sorted(scores, reverse=True), "best first"
    assert len({k["seed"] for k in kept}) == 5 and all(0 <= k["seed"] < 24 for k in kept)
    s = body["scorers"]["sharpness"]
    assert s["after_mean"] == pytest.approx(sum(scores) / 5, rel=1e-5) and s["after_mean"] > s["before_mean"]
    # Each kept image is its seed's image, as generate.png gives it.
    for k in kept[:2]:
        r = client.get(k["url"])
        assert r.status_code == 200
        with Image.open(io.BytesIO(r.content)) as im:
            ref = np.asarray(im).astype(np.int64)
        got = decode(k["png"])
        assert np.abs(got.reshape(ref.shape) - ref).max() <= 1


def test_curate_two_scorers_and_drs(client):
    body = client.get("/api/runs/dc/curate", params={"by": "sharpness,iqa", "num": "16", "keep": "4"}).json()
    assert set(body["scorers"]) == {"sharpness", "iqa"} and len(body["kept"]) == 4
    assert [k["rank"] for k in body["kept"]] == [0, 1, 2, 3]
    body = client.get("/api/runs/dc/curate", params={"by": "drs", "num": "40", "keep": "6"}).json()
    assert body["method"] == "drs" and 0 <= body["accepted_fraction"] <= 1
    assert len(body["kept"]) <= 6
    probs = [k["scores"]["drs_probability"] for k in body["kept"]]
    assert probs == sorted(probs, reverse=True)


@pytest.mark.parametrize(
    ("run", "params", "status", "words"),
    [
        ("dc", {"by": "sharpness", "num": "513"}, 422, "num must be"),
        ("dc", {"by": "sharpness", "num": "100", "keep": "65"}, 422, "keep must be"),
        ("dc", {"by": "sharpness", "num": "8", "keep": "9"}, 422, "more than num"),
        ("dc", {"by": "sharpness", "num": "0"}, 422, "num must be"),
        ("dc", {"num": "8"}, 422, "by is required"),
        ("dc", {"by": "drs,sharpness"}, 422, "drs"),
        ("dc", {"by": "<script>"}, 422, "not a scorer name"),
        ("dc", {"by": "nosuch", "num": "4", "keep": "1"}, 400, "unknown scorer"),
        ("dc", {"by": "realism", "num": "4", "keep": "1"}, 400, "labelled"),
        ("p2p", {"by": "sharpness"}, 400, "seeds"),
        ("nosuch", {"by": "sharpness"}, 404, "no run named"),
    ],
)
def test_curate_bad_input(client, run, params, status, words):
    assert words in detail(client.get(f"/api/runs/{run}/curate", params=params), status)


# ---- the new parameters, fuzzed (as tests/serve/test_fuzz_params.py does for the others) ---------------------


def test_params_fuzzed():
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    from ganforge.serve import params as P

    def outcome(fn, *args):
        try:
            return "ok", fn(*args)
        except P.ParamError as e:
            assert 400 <= e.status < 500 and e.detail and "\n" not in e.detail
            return "err", e.status

    text = st.one_of(st.none(), st.text(max_size=60), st.from_regex(r"[+-]?[0-9]{0,6}(\.[0-9]{0,4})?", fullmatch=True))

    @hyp.settings(max_examples=200, deadline=None)
    @hyp.given(text, text, st.sampled_from(["linf", "l2"]))
    def check(a, b, norm):
        kind, eps = outcome(P.parse_eps, a, norm)
        if kind == "ok":
            assert 0 <= eps <= (P.EPS_LINF_MAX / 255 if norm == "linf" else P.EPS_L2_MAX)
        kind, m = outcome(P.parse_attack_model, a)
        if kind == "ok":
            assert m[0] in ("shipped", "run") and m[1]
        kind, names = outcome(P.parse_scorers, a)
        if kind == "ok":
            assert 1 <= len(names) <= P.MAX_CURATE_SCORERS and all(n.strip() == n and n for n in names)
        kind, nk = outcome(P.parse_curate_counts, a, b)
        if kind == "ok":
            assert 1 <= nk[1] <= nk[0] <= P.MAX_CURATE_NUM and nk[1] <= P.MAX_CURATE_KEEP
        kind, c = outcome(P.parse_choice, a, "method", P.ATTACK_METHODS, "pgd")
        if kind == "ok":
            assert c in P.ATTACK_METHODS

    check()
    assert P.parse_eps("8", "linf") == 8 / 255 and P.parse_eps(None, "l2") == 0.5
    assert P.eps_label(8 / 255, "linf") == "8/255" and P.eps_label(0.5, "l2") == "0.5"
    assert P.parse_attack_model("run:dc") == ("run", "dc") and P.parse_attack_model("emoji") == ("shipped", "emoji")
    assert P.parse_scorers(" sharpness, classifier:c1 ,sharpness") == ["sharpness", "classifier:c1"]


# ---- the pages, in headless Chromium ------------------------------------------------------------------------

def _page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


def _shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    shots = Path("/tmp/briefs")
    if shots.is_dir():
        (shots / name).write_bytes((tmp_path / name).read_bytes())


def test_attack_page(browser, app, tmp_path):
    with Server(app) as url:
        page, errors = _page(browser)
        page.goto(f"{url}/")
        page.click("#open-attack")
        page.wait_for_selector("#attack-model")
        assert page.input_value("#attack-model") == "digits" and page.input_value("#eps") == "8"
        page.click("#attack-example")
        page.wait_for_function("() => (document.querySelector('#attack-adv').src || '').startsWith('data:image/png')")
        verdict = page.text_content("#attack-verdict")
        assert verdict.startswith(("flipped", "held"))
        assert "L∞" in page.text_content(".attack-cell:nth-child(2) figcaption")
        _shot(page, tmp_path, "serve-screenshot-attack.png")
        # ε 0: the adversarial image is the clean one, so the prediction holds.
        page.fill("#eps", "0")
        page.wait_for_function("() => document.querySelector('#attack-stats').textContent.includes('0/255')")
        assert page.text_content("#attack-verdict").startswith("held")
        assert "eps=0" in page.url
        assert not errors, errors


def test_curate_page(browser, app, tmp_path):
    with Server(app) as url:
        page, errors = _page(browser)
        page.goto(f"{url}/#/run/dc")
        page.click("#open-curate")
        page.wait_for_selector("#curate-go")
        assert page.is_checked("input[data-scorer=sharpness]") and page.is_disabled("input[data-scorer=face-pose]")
        page.fill("#curate-num", "32")
        page.fill("#curate-keep", "6")
        page.click("#curate-go")
        page.wait_for_function("() => document.querySelectorAll('#curate-grid .kept img').length === 6", timeout=30_000)
        assert page.locator(".scores-table tbody tr").count() == 2  # sharpness and iqa, before and after
        seeds = page.eval_on_selector_all("#curate-grid .kept", "ks => ks.map(k => Number(k.dataset.seed))")
        assert len(set(seeds)) == 6 and all(0 <= s < 32 for s in seeds)
        assert "by=sharpness%2Ciqa" in page.url or "by=sharpness,iqa" in page.url
        _shot(page, tmp_path, "serve-screenshot-curate.png")
        assert not errors, errors
