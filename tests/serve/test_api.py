"""The studio's REST API in-process (FastAPI's TestClient) on tiny trained runs: every endpoint, and every
kind of bad input giving a 4xx with a one-line JSON detail (never a traceback)."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from ganforge.serve import create_app


def png_of(resp) -> Image.Image:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(resp.content))
    im.load()
    return im


def detail(resp, status: int) -> str:
    """The one-line message of an error response, checked to be JSON {"detail": str} without a traceback."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert "Traceback" not in body["detail"] and "\n" not in body["detail"]
    return body["detail"]


def png_bytes(size=(20, 20), color=(200, 30, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def _claims_size(png: bytes, w: int, h: int) -> bytes:
    """The PNG with its IHDR rewritten to claim w x h pixels (the CRC fixed, the pixel data unchanged)."""
    import struct
    import zlib

    ihdr = bytearray(png[12:29])  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", w, h)
    return png[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr))) + png[33:]


# ---- runs ------------------------------------------------------------------------------------------
def test_runs_list(client):
    body = client.get("/api/runs").json()
    runs = {r["name"]: r for r in body["runs"]}
    assert sorted(runs) == ["crashed", "dc", "dccond", "p2p", "sg"], (
        "hidden folders, plain folders and files are not runs"
    )
    dc = runs["dc"]
    assert dc["family"] == "dcgan" and dc["dataset"] == "blobs" and dc["resolution"] == 16
    assert dc["step"] == 4 and dc["steps_planned"] == 4 and dc["checkpoint_step"] == 4
    assert dc["status"]["state"] == "done"
    assert set(dc["losses"]) >= {"loss_D", "loss_G"} and all(isinstance(v, float) for v in dc["losses"].values())
    assert dc["sample_steps"] == [4], "the list carries the newest grid only"
    assert runs["dccond"]["num_classes"] == 3
    assert runs["sg"]["capabilities"]["style_mixing"] and runs["sg"]["capabilities"]["truncation"]
    assert runs["p2p"]["capabilities"]["inputs"] == "image"


def test_crashed_run_shows_stopped_with_what_could_be_read(client):
    run = client.get("/api/runs/crashed").json()
    assert run["status"]["state"] == "stopped", "a 'training' status whose process is gone is stale"
    assert "no longer running" in run["status"]["message"]
    assert run["losses"] == {"loss_D": 1.5, "loss_G": 0.7}, "NaN and torn lines are skipped"
    assert run["metric"] == {"key": "fid", "value": 80.5, "step": 2}
    assert run["dataset"] == "faces" and run["checkpoint_step"] is None
    m = client.get("/api/runs/crashed/metrics").json()
    assert m["series"]["loss_D"] == {"x": [1.0], "y": [1.5]}
    assert m["series"]["fid"] == {"x": [2.0], "y": [80.5]}
    assert detail(client.get("/api/runs/crashed/generate.png"), 409).startswith("run 'crashed' has no checkpoint")


def test_run_detail(client):
    run = client.get("/api/runs/dc").json()
    assert run["config"]["model"] == "dcgan" and run["config"]["steps"] == 4
    assert run["checkpoints"] == [2, 4] and run["sample_steps"] == [2, 4]
    assert client.get("/api/runs/dccond").json()["class_names"] == ["c0", "c1", "c2"]


def test_metrics(client):
    m = client.get("/api/runs/dc/metrics").json()
    assert m["step"] == 4
    assert m["series"]["loss_D"]["x"] == [1.0, 2.0, 3.0, 4.0]
    titles = [g["title"] for g in m["groups"]]
    assert titles[0] == "Losses" and "loss_G" in m["groups"][0]["keys"]
    thin = client.get("/api/runs/dc/metrics?max_points=10").json()
    assert thin["series"]["loss_D"]["x"] == m["series"]["loss_D"]["x"]
    assert "max_points" in detail(client.get("/api/runs/dc/metrics?max_points=5"), 422)


def test_sample_grid(client):
    assert png_of(client.get("/api/runs/dc/samples/2.png")).size[0] > 16
    assert "no sample grid at step 3" in detail(client.get("/api/runs/dc/samples/3.png"), 404)
    for bad in ("abc", "-1", "1e3", "99999999999999999999"):
        detail(client.get(f"/api/runs/dc/samples/{bad}.png"), 422)


# ---- generation ----------------------------------------------------------------------------------
def test_generate_is_addressed_by_seed(client):
    a = client.get("/api/runs/dc/generate.png?seed=5")
    assert png_of(a).size == (16, 16)
    assert a.headers["x-ganforge-step"] == "4"
    assert client.get("/api/runs/dc/generate.png?seed=5").content == a.content, "same seed, same image"
    assert client.get("/api/runs/dc/generate.png?seed=6").content != a.content
    assert png_of(client.get("/api/runs/dc/generate.png?seed=5&size=64")).size == (64, 64)
    assert png_of(client.get(f"/api/runs/dc/generate.png?seed={2**32 - 1}")).size == (16, 16)


def test_generate_matches_the_library(client, runs_dir):
    from ganforge.sample.model import Model

    want = Model.load(runs_dir / "sg").generate([3], trunc=0.5, output="pil")[0]
    got = png_of(client.get("/api/runs/sg/generate.png?seed=3&psi=0.5"))
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_truncation_and_noise(client):
    # psi = 0 gives the average image, whatever the seed (Karras et al. 2019, sec. 3).
    a = client.get("/api/runs/sg/generate.png?seed=1&psi=0").content
    assert client.get("/api/runs/sg/generate.png?seed=2&psi=0").content == a
    assert client.get("/api/runs/sg/generate.png?seed=2&psi=1").content != a
    assert png_of(client.get("/api/runs/sg/generate.png?seed=1&noise=random")).size == (16, 16)
    # Models without truncation or noise refuse them in one line, as the CLI and Model.generate do (one policy).
    r = client.get("/api/runs/dc/generate.png?seed=1&psi=0.5")
    assert r.status_code == 422 and r.json()["detail"] == "model 'dcgan' has no truncation trick; drop psi"
    r = client.get("/api/runs/dc/generate.png?seed=1&noise=random")
    assert r.status_code == 422 and r.json()["detail"] == "model 'dcgan' has no per-pixel noise; drop noise"
    assert client.get("/api/runs/dc/generate.png?seed=1&psi=1&noise=const").status_code == 200


def test_class_by_index_and_name(client):
    by_name = client.get("/api/runs/dccond/generate.png?seed=4&class=c2")
    assert png_of(by_name).size == (16, 16)
    assert client.get("/api/runs/dccond/generate.png?seed=4&class=2").content == by_name.content
    assert client.get("/api/runs/dccond/generate.png?seed=4&class=0").content != by_name.content
    # Without a class, seed s gets class s % 3 (as `ganforge generate`).
    assert (
        client.get("/api/runs/dccond/generate.png?seed=5").content
        == client.get("/api/runs/dccond/generate.png?seed=5&class=2").content
    )


@pytest.mark.parametrize(
    "query,needle",
    [
        ("seed=-1", "seed must be from 0 to 4294967295"),
        (f"seed={2**32}", "seed must be from 0 to 4294967295"),
        ("seed=abc", "whole number"),
        ("seed=1.5", "whole number"),
        ("seed=1e3", "whole number"),
        ("seed=" + "9" * 5000, "whole number"),
        ("psi=nan", "finite"),
        ("psi=inf", "finite"),
        ("psi=-Infinity", "finite"),
        ("psi=2.01", "from -2 to 2"),
        ("psi=-3", "from -2 to 2"),
        ("psi=x", "psi must be a number"),
        ("size=7", "size must be from 8 to 2048"),
        ("size=4096", "size must be from 8 to 2048"),
        ("noise=loud", "noise must be one of const, random, none"),
        ("class=1", "not class-conditional"),
    ],
)
def test_generate_rejects_bad_parameters(client, query, needle):
    assert needle in detail(client.get(f"/api/runs/dc/generate.png?{query}"), 422)


@pytest.mark.parametrize(
    "cls,needle",
    [
        ("7", "out of range"),
        ("3", "out of range"),
        ("cat", "unknown class 'cat'; classes: c0, c1, c2"),
        ("-1", "unknown class"),
    ],
)
def test_unknown_class(client, cls, needle):
    assert needle in detail(client.get(f"/api/runs/dccond/generate.png?seed=1&class={cls}"), 422)


def test_interpolation_gif(client):
    r = client.get("/api/runs/dc/interpolate.gif?from=3&to=9&frames=6")
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.n_frames == 6 and im.size == (16, 16) and im.info.get("loop") == 0
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
    # The loop starts at the first seed's image (GIF quantises colours: compare loosely).
    seed3 = np.asarray(png_of(client.get("/api/runs/dc/generate.png?seed=3")).convert("RGB"))
    assert np.abs(first.astype(int) - seed3.astype(int)).mean() < 12
    sg = client.get("/api/runs/sg/interpolate.gif?from=1&to=2&frames=4&psi=0.7&size=32")
    with Image.open(io.BytesIO(sg.content)) as im:
        assert im.n_frames == 4 and im.size == (32, 32)
    assert "frames must be from 2 to 240" in detail(client.get("/api/runs/dc/interpolate.gif?frames=241"), 422)
    assert "frames" in detail(client.get("/api/runs/dc/interpolate.gif?frames=1"), 422)
    assert "to must be" in detail(client.get("/api/runs/dc/interpolate.gif?to=-5"), 422)
    assert "from must be" in detail(client.get(f"/api/runs/dc/interpolate.gif?from={2**40}"), 422)
    assert "fps" in detail(client.get("/api/runs/dc/interpolate.gif?fps=0"), 422)
    assert "unknown class" in detail(client.get("/api/runs/dccond/interpolate.gif?class=zebra"), 422)


def test_style_mixing_grid(client):
    im = png_of(client.get("/api/runs/sg/mix.png?rows=1,2&cols=3-5&styles=coarse&psi=0.8"))
    assert im.size == (4 * 17 + 1, 3 * 17 + 1), "(cols + 1) x (rows + 1) cells of 16 px with 1 px gutters"
    assert png_of(client.get("/api/runs/sg/mix.png?styles=0-1")).size == (5 * 17 + 1, 4 * 17 + 1)
    assert "styles must be from 0 to" in detail(client.get("/api/runs/sg/mix.png?styles=0-99"), 422)
    assert "rows holds more than 8" in detail(client.get("/api/runs/sg/mix.png?rows=0-20"), 422)
    assert "runs backwards" in detail(client.get("/api/runs/sg/mix.png?cols=5-3"), 422)
    assert "style mixing needs stylegan2" in detail(client.get("/api/runs/dc/mix.png"), 400)


def test_translate(client):
    # pix2pix is fully convolutional: the output keeps the input's size.
    r = client.post("/api/runs/p2p/translate", files={"image": ("in.png", png_bytes((40, 30)), "image/png")})
    assert png_of(r).size == (40, 30)
    jpg = client.post(
        "/api/runs/p2p/translate",
        files={"image": ("in.jpg", png_bytes(fmt="JPEG"), "image/jpeg")},
        data={"direction": "AtoB"},
    )
    assert png_of(jpg).size == (20, 20)
    again = client.post("/api/runs/p2p/translate", files={"image": ("in.jpg", png_bytes(fmt="JPEG"), "image/jpeg")})
    assert again.content == jpg.content, "same input, same output"
    assert "direction must be AtoB" in detail(
        client.post(
            "/api/runs/p2p/translate", files={"image": ("in.png", png_bytes(), "image/png")}, data={"direction": "BtoA"}
        ),
        422,
    )
    assert "generates from seeds" in detail(
        client.post("/api/runs/dc/translate", files={"image": ("a.png", png_bytes(), "image/png")}), 400
    )
    assert "translates images" in detail(client.get("/api/runs/p2p/generate.png?seed=1"), 400)
    assert "image" in detail(client.post("/api/runs/p2p/translate"), 422)


def test_uploads_that_are_not_images(client):
    def post(data: bytes, name="x.png", mime="image/png"):
        return client.post("/api/runs/p2p/translate", files={"image": (name, data, mime)})

    assert "not an image" in detail(post(b"hello, not a picture", "a.txt", "text/plain"), 415)
    assert "empty" in detail(post(b""), 415)
    assert "not an image" in detail(post(b"%PDF-1.4 fake"), 415)
    truncated = png_bytes((64, 64), (1, 2, 3))
    assert "not a readable image" in detail(post(truncated[:60] + b"\x00" * 40), 415)
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, format="ICO")
    assert "not supported" in detail(post(ico.getvalue(), "a.ico", "image/x-icon"), 415)


def test_uploads_that_are_too_large(client):
    wide = png_bytes((4097, 4))  # a small file with a huge side: refused from its header
    assert len(wide) < 100_000
    assert "at most 4096 pixels" in detail(
        client.post("/api/runs/p2p/translate", files={"image": ("w.png", wide, "image/png")}), 413
    )
    # A bomb: a tiny PNG whose header claims 30000 x 30000 pixels; it is refused before any decoding.
    bomb = _claims_size(png_bytes((4, 4)), 30000, 30000)
    assert "4096" in detail(client.post("/api/runs/p2p/translate", files={"image": ("b.png", bomb, "image/png")}), 413)
    big = b"\x89PNG" + b"\x00" * (11 * 2**20)
    assert "10 MB" in detail(
        client.post("/api/runs/p2p/translate", files={"image": ("big.png", big, "image/png")}), 413
    )


def test_body_over_the_limit_is_refused_from_its_header(app):
    from fastapi.testclient import TestClient

    seen = []

    def body():
        for _ in range(12):
            seen.append(1)
            yield b"\x00" * 2**20

    with TestClient(app) as c:
        r = c.post(
            "/api/runs/p2p/translate",
            content=b"x" * 10,
            headers={"content-length": str(50 * 2**20), "content-type": "multipart/form-data; boundary=x"},
        )
        assert "10 MB" in detail(r, 413)
        r = c.post(
            "/api/runs/p2p/translate", content=body(), headers={"content-type": "multipart/form-data; boundary=x"}
        )
        assert r.status_code == 413, r.text
        assert len(seen) <= 12


# ---- run names -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "nope",
        "..",
        "%2E",
        "%2E%2E",
        ".hidden",
        "notarun",
        "README.txt",
        "dc%5C..%5Cdc",
        "..%5Cdc",
        "dc%00",
        " dc",
        "%2e%2e%2fdc",
    ],
)
def test_unknown_or_unsafe_run_names_are_404(client, name):
    for path in (
        f"/api/runs/{name}",
        f"/api/runs/{name}/metrics",
        f"/api/runs/{name}/generate.png",
        f"/api/runs/{name}/samples/2.png",
    ):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert isinstance(r.json()["detail"], str)


def test_path_traversal_never_reads_outside(client, runs_dir, tmp_path):
    for path in (
        "/api/runs/../../etc/passwd",
        "/api/runs/..%2F..%2Fetc/metrics",
        "/api/runs/dc/samples/..%2F..%2Fconfig.png",
        "/api/runs/%2Fetc/metrics",
    ):
        r = client.get(path)
        assert r.status_code == 404, (path, r.text)
    # A symlink inside RUNS_DIR to a run folder outside it is not served, nor listed.
    outside = tmp_path / "elsewhere"
    (outside / "checkpoints").mkdir(parents=True)
    (outside / "config.json").write_text(json.dumps({"model": "dcgan"}))
    link = runs_dir / "sneaky"
    link.symlink_to(outside, target_is_directory=True)
    try:
        assert client.get("/api/runs/sneaky").status_code == 404
        assert "sneaky" not in [r["name"] for r in client.get("/api/runs").json()["runs"]]
    finally:
        link.unlink()


# ---- the server ----------------------------------------------------------------------------------
def test_pages_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/api/runs",
        "/api/runs/{run}",
        "/api/runs/{run}/metrics",
        "/api/runs/{run}/samples/{step}.png",
        "/api/runs/{run}/generate.png",
        "/api/runs/{run}/interpolate.gif",
        "/api/runs/{run}/translate",
        "/api/runs/{run}/mix.png",
    ):
        assert p in paths, p
    names = {q["name"] for q in paths["/api/runs/{run}/generate.png"]["get"]["parameters"]}
    assert {"seed", "psi", "class", "size", "noise"} <= names
    assert detail(client.get("/api/nothing"), 404) == "Not Found"
    assert detail(client.delete("/api/runs"), 405)


def test_token(runs_dir):
    from fastapi.testclient import TestClient

    with TestClient(create_app(runs_dir, token="s3cret-token")) as c:
        assert "Bearer" in detail(c.get("/api/runs"), 401)
        assert c.get("/api/runs").headers["www-authenticate"] == "Bearer"
        detail(c.get("/api/runs", headers={"Authorization": "Bearer wrong"}), 401)
        detail(c.get("/api/runs/dc/generate.png", headers={"Authorization": "s3cret-token"}), 401)
        detail(c.get("/api/runs/dc/generate.png?token=s3cret-token"), 401)
        ok = {"Authorization": "Bearer s3cret-token"}
        assert c.get("/api/runs", headers=ok).status_code == 200
        assert png_of(c.get("/api/runs/dc/generate.png?seed=1", headers=ok)).size == (16, 16)
        # The pages hold no data and must load before the script can send the header.
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200


def test_host_header_check(runs_dir):
    from fastapi.testclient import TestClient

    app = create_app(runs_dir, allowed_hosts=("127.0.0.1", "localhost", "::1"))
    with TestClient(app, base_url="http://evil.example:7860") as c:
        assert "Host" in detail(c.get("/api/runs"), 400)
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert c.get("/api/runs").status_code == 200
    with TestClient(app, base_url="http://[::1]:7860") as c:
        assert c.get("/api/runs").status_code == 200


def test_no_traceback_reaches_the_client(runs_dir, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    import ganforge.serve.routes.runs as server

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server, "summary", boom)
    with TestClient(create_app(runs_dir)) as c:
        msg = detail(c.get("/api/runs/dc"), 500)
        assert "secret" not in msg and "server's log" in msg
        runs = c.get("/api/runs").json()["runs"]
        assert all("error" in r for r in runs), "one unreadable run does not fail the list"
    assert "secret internals" in caplog.text, "the error is logged on the server"


def test_concurrent_requests(client):
    """Eight threads at once on two models: every answer right, none mixed up."""
    want = {s: client.get(f"/api/runs/dc/generate.png?seed={s}").content for s in range(4)}
    want_sg = client.get("/api/runs/sg/generate.png?seed=1").content
    errors: list[str] = []

    def worker(i: int) -> None:
        for j in range(6):
            s = (i + j) % 4
            r = client.get(f"/api/runs/dc/generate.png?seed={s}")
            if r.content != want[s]:
                errors.append(f"dc seed {s}")
            if j % 3 == 0 and client.get("/api/runs/sg/generate.png?seed=1").content != want_sg:
                errors.append("sg")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    loaded = client.get("/api/server").json()["loaded"]
    assert {"run": "dc", "step": 4} in loaded


def test_model_cache_is_lru(runs_dir):
    from ganforge.serve.models import ModelCache

    cache = ModelCache(size=2)
    a = cache.get(runs_dir / "dc", 4)
    assert cache.get(runs_dir / "dc", 4) is a, "a hit returns the loaded model"
    cache.get(runs_dir / "dccond", 2)
    cache.get(runs_dir / "dc", 4)  # dc is now the most recent
    cache.get(runs_dir / "sg", 2)  # evicts dccond
    assert [i["run"] for i in cache.info()] == ["dc", "sg"]
    older = cache.get(runs_dir / "dc", 2)  # a newer checkpoint of a run replaces the older one
    assert older.step == 2 and [i["step"] for i in cache.info() if i["run"] == "dc"] == [2]


def test_examples_are_the_runs_own_preview_inputs(client, runs_dir):
    """Issue 24: the image-to-image playground offers the inputs of the run's sample grid (input | output
    | target rows, from its dataset) as one-click examples, each translatable as an upload would be."""
    listing = client.get("/api/runs/p2p/examples")
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["run"] == "p2p" and body["note"] == "" and isinstance(body["step"], int)
    assert [e["index"] for e in body["examples"]] == [0, 1, 2, 3]
    assert all(e["direction"] == "AtoB" and (e["width"], e["height"]) == (16, 16) for e in body["examples"])
    grid = Image.open(runs_dir / "p2p" / "samples" / f"grid-{body['step']:06d}.png").convert("RGB")
    for e in body["examples"]:
        im = png_of(client.get(e["url"]))
        assert im.size == (16, 16)
        y = 1 + e["index"] * 17
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(grid.crop((1, y, 17, y + 16))))  # column 0
    ex = client.get(body["examples"][1]["url"]).content
    r = client.post("/api/runs/p2p/translate", files={"image": ("example.png", ex, "image/png")})
    assert png_of(r).size == (16, 16)
    # Runs that take no images, or have none to offer, say why; bad indices are 4xx.
    dc = client.get("/api/runs/dc/examples").json()
    assert dc["examples"] == [] and "generates from seeds" in dc["note"]
    assert client.get("/api/runs/crashed/examples").json()["examples"] == []
    assert "no example 0" in detail(client.get("/api/runs/dc/examples/0.png"), 404)
    assert "index must be" in detail(client.get("/api/runs/p2p/examples/9.png"), 422)
    assert "index must be" in detail(client.get("/api/runs/p2p/examples/-1.png"), 422)
    detail(client.get("/api/runs/nope/examples"), 404)


def test_superres_examples_come_back_at_the_input_size(tmp_path):
    """An SR run's grid shows its inputs enlarged (nearest): the example is the input size again, exactly."""
    from fastapi.testclient import TestClient

    from ganforge.training.loop import train
    from helpers import make_archive, tiny_config

    data = str(make_archive(tmp_path / "blobs.zip"))
    sr = {"ngf": 4, "n_blocks": 1, "ndf": 4, "d_dense": 8, "scale": 2, "crop": 16, "pretrain_steps": 1}
    train(tiny_config(tmp_path, data, model="srgan", run="sr", steps=2, family=sr), progress=False)
    with TestClient(create_app(tmp_path / "runs")) as c:
        body = c.get("/api/runs/sr/examples").json()
        assert len(body["examples"]) == 4 and (body["examples"][0]["width"], body["examples"][0]["height"]) == (8, 8)
        small = png_of(c.get(body["examples"][0]["url"]))
        grid = Image.open(tmp_path / "runs" / "sr" / "samples" / f"grid-{body['step']:06d}.png").convert("RGB")
        big = np.asarray(grid.crop((1, 1, 17, 17)))
        assert np.array_equal(np.asarray(small.convert("RGB")), big[::2, ::2])
        r = c.post("/api/runs/sr/translate", files={"image": ("e.png", c.get(body["examples"][0]["url"]).content, "image/png")})
        assert png_of(r).size == (16, 16)
