"""The studio's FastAPI app: the REST API under /api and the static pages (plain HTML/CSS/JS, no build step).

Every handler validates its parameters with the pure functions of `params` (so bad input is a 4xx with
{"detail": "..."}), resolves the run inside RUNS_DIR only, and runs model work in the thread pool under
the model's lock, so the event loop stays free and one slow request never blocks the others.
"""

from __future__ import annotations

import hmac
import io
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import GanforgeError
from . import params as P
from .models import Loaded, ModelCache
from .runs import MAX_EXAMPLES, MetricsLog, example_inputs, is_metric, latest_step, list_runs, series, summary

log = logging.getLogger("ganforge.serve")
STATIC = Path(__file__).parent / "static"
PUBLIC = ("/", "/index.html", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
_T = TypeVar("_T")
# The studio's pages load only their own files: no CDN, no inline script (`/docs` is FastAPI's page, left as is).
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self' blob:; frame-ancestors 'none'"

REGULARISERS = ("r1", "gp", "pl_penalty", "pl_mean", "kl_loss", "recon", "cycle", "identity", "l1", "content")
PNG = {200: {"content": {"image/png": {}}, "description": "A PNG image."}}
GIF = {200: {"content": {"image/gif": {}}, "description": "An animated GIF that loops forever."}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such run (also for names with separators or '..')."},
    422: {"description": 'A parameter is out of range or malformed: {"detail": "..."}.'},
}


class Cancelled(Exception):
    """The client went away before its turn on the model came: its work is skipped."""


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """Outermost ASGI middleware: no traceback ever reaches a client (logged here instead), request
    bodies over the upload limit are refused with 413 before they are read in full, and with a token
    every request outside the static pages needs `Authorization: Bearer TOKEN`."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int, allowed_hosts: tuple[str, ...] | None):
        self.app, self.token, self.max_body, self.allowed_hosts = app, token, max_body, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        replied = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if replied:  # we answered already (413): the app's own answer goes nowhere
                return
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if not scope["path"].startswith(("/docs", "/redoc")):
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        async def reply(resp: Response) -> None:
            nonlocal replied
            await resp(scope, receive, guarded_send)
            replied = True

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.allowed_hosts:  # DNS rebinding: a web page naming our port
                await reply(_json_error(400, "unexpected Host header: open the studio at http://127.0.0.1:PORT"))
                return
        path = scope["path"]
        if self.token is not None and not (path in PUBLIC or path.startswith("/static/")):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                await reply(
                    _json_error(
                        401,
                        "this studio needs a token: send 'Authorization: Bearer TOKEN' (pages: open /?token=TOKEN)",
                        {"WWW-Authenticate": "Bearer"},
                    )
                )
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await reply(
                _json_error(413, f"the request is over {self.max_body // 2**20} MB; uploads are limited to 10 MB")
            )
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body and not replied:  # a chunked body without a length
                    await reply(_json_error(413, "the request is over the 10 MB upload limit"))
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if replied:  # the app failed reading a body we cut off (413): expected, answered already
                return
            log.exception("error while serving %s %s", scope.get("method"), path)
            if not started:
                await reply(_json_error(500, "internal error in the studio (details are in the server's log)"))


def create_app(
    runs_dir: str | Path,
    token: str | None = None,
    *,
    device: str = "cpu",
    cache_size: int = 4,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """The studio for the runs in `runs_dir`. `token`: require `Authorization: Bearer TOKEN` on every API
    request. `allowed_hosts`: Host header names accepted (the CLI passes the loopback names when bound
    to loopback, which stops DNS-rebinding pages from reaching the API); None accepts any."""
    root = Path(runs_dir).expanduser().resolve()
    cache = ModelCache(cache_size, device)
    logs: dict[Path, MetricsLog] = {}
    logs_lock = threading.Lock()

    app = FastAPI(
        title="ganforge studio",
        version=__version__,
        description=(
            "Watch training runs and generate images from them. Images are addressed by seed (0..2^32-1): "
            'the same seed, checkpoint and parameters give the same image. Errors are JSON: {"detail": "..."}.'
            + (" Every /api request needs `Authorization: Bearer TOKEN`." if token else "")
        ),
    )
    app.state.runs_dir, app.state.cache = root, cache

    def metrics_log(run_dir: Path) -> MetricsLog:
        with logs_lock:
            if run_dir not in logs:
                logs[run_dir] = MetricsLog(run_dir / "metrics.jsonl")
            return logs[run_dir]

    def run_of(name: str) -> Path:
        return P.run_dir(root, name)

    def need_model(run_dir: Path) -> Loaded:
        step = latest_step(run_dir)  # per request, so a training run's newest checkpoint is used
        if step is None:
            raise P.ParamError(409, f"run '{run_dir.name}' has no checkpoint yet: wait for its first one")
        return cache.get(run_dir, step)

    async def model_work(request: Request, run_dir: Path, work: Callable[[Loaded], _T]) -> tuple[_T, Loaded]:
        """Load (cached) and run `work` in the thread pool under the model's lock. While it waits for its
        turn, a request whose client has gone (a stale slider position the page aborted) is skipped."""
        loaded = await run_in_threadpool(need_model, run_dir)
        gone = threading.Event()

        def locked() -> _T:
            import torch

            with loaded.lock:
                if gone.is_set():
                    raise Cancelled
                with torch.inference_mode():
                    return work(loaded)

        outcome: list[tuple[bool, Any]] = []
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while True:
                    await anyio.sleep(0.05)
                    if await request.is_disconnected():
                        gone.set()
                        return

            tg.start_soon(watch)
            try:  # errors are kept out of the task group, which would wrap them in an ExceptionGroup
                outcome.append((True, await run_in_threadpool(locked)))
            except Exception as exc:
                outcome.append((False, exc))
            finally:
                tg.cancel_scope.cancel()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value, loaded

    def image_headers(loaded: Loaded, ignored: list[str]) -> dict[str, str]:
        h = {"X-Ganforge-Step": str(loaded.step), "Cache-Control": "no-cache"}
        if ignored:
            h["X-Ganforge-Ignored"] = ",".join(ignored)
        return h

    # ---- errors ----------------------------------------------------------------------------------
    @app.exception_handler(P.ParamError)
    async def _param_error(request: Request, exc: P.ParamError) -> JSONResponse:
        return _json_error(exc.status, exc.detail)

    @app.exception_handler(GanforgeError)
    async def _user_error(request: Request, exc: GanforgeError) -> JSONResponse:
        return _json_error(400, str(exc)[:1000])

    @app.exception_handler(Cancelled)
    async def _cancelled(request: Request, exc: Cancelled) -> JSONResponse:
        return _json_error(499, "the client closed the request")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:3]:
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _json_error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    # ---- pages -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ---- runs ------------------------------------------------------------------------------------
    @app.get("/api/runs", tags=["runs"], summary="Every run in RUNS_DIR")
    def get_runs() -> dict[str, Any]:
        """Family, dataset, step, last losses, last metric and status (training / done / stopped /
        failed) of every run folder. A run whose training process is gone shows as stopped."""
        runs = []
        for d in list_runs(root):
            try:
                runs.append(summary(d, metrics_log(d)))
            except Exception:  # one unreadable run must not hide the others
                log.exception("cannot summarise run %s", d)
                runs.append({"name": d.name, "error": "cannot read this run (see the server log)"})
        return {"runs_dir": str(root), "runs": runs}

    @app.get(
        "/api/runs/{run}",
        tags=["runs"],
        summary="One run: summary, config, checkpoints, sample steps",
        responses=ERRORS,
    )
    def get_run(run: str) -> dict[str, Any]:
        d = run_of(run)
        return summary(d, metrics_log(d), detail=True)

    @app.get("/api/runs/{run}/metrics", tags=["runs"], summary="Training curves from metrics.jsonl", responses=ERRORS)
    def get_metrics(
        run: str,
        max_points: str | None = Query(
            None, description=f"Points per curve, 10..{10_000} (default 2000); longer logs are averaged down."
        ),
    ) -> dict[str, Any]:
        """{"series": {key: {"x": steps, "y": values}}, "groups": [{"title", "keys"}], "step": last step}.
        Damaged or torn lines of the log are skipped; non-finite values are left out."""
        d = run_of(run)
        n = P.parse_int(max_points, "max_points", 10, 10_000, 2000)
        records = metrics_log(d).read()
        s = series(records, n)
        groups: dict[str, list[str]] = {}
        for k in sorted(s):
            if k.startswith("loss"):
                title = "Losses"
            elif is_metric(k):
                title = "Evaluation"
            elif k in ("D_real", "D_fake"):
                title = "D(x) and D(G(z))"
            elif k.startswith("grad"):
                title = "Gradient norms"
            elif k in REGULARISERS:
                title = "Regularisers"
            elif k == "img_s":
                title = "Speed (img/s)"
            else:
                title = "Other"
            groups.setdefault(title, []).append(k)
        order = ["Losses", "Evaluation", "D(x) and D(G(z))", "Gradient norms", "Regularisers", "Speed (img/s)", "Other"]
        return {
            "run": d.name,
            "step": int(records[-1]["step"]) if records else 0,
            "series": s,
            "groups": [{"title": t, "keys": groups[t]} for t in order if t in groups],
        }

    @app.get(
        "/api/runs/{run}/samples/{step}.png",
        tags=["runs"],
        summary="The sample grid saved at a step",
        response_class=Response,
        responses={**PNG, **ERRORS},
    )
    def get_sample(run: str, step: str) -> FileResponse:
        """samples/grid-NNNNNN.png: the same fixed seeds at every step, so grids compare over training."""
        d = run_of(run)
        n = P.parse_step(step)
        path = d / "samples" / f"grid-{n:06d}.png"
        if not path.is_file():
            raise P.ParamError(404, f"run '{d.name}' has no sample grid at step {n}")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    # ---- generation ------------------------------------------------------------------------------
    @app.get(
        "/api/runs/{run}/generate.png",
        tags=["generate"],
        summary="One image for a seed",
        response_class=Response,
        responses={**PNG, **ERRORS, 400: {"description": "The run translates images (use /translate)."}},
    )
    async def generate_png(
        request: Request,
        run: str,
        seed: str | None = Query(None, description="0..4294967295 (default 0)."),
        psi: str | None = Query(
            None, description="Truncation psi, finite, -2..2 (default 1: none). Models without truncation ignore it."
        ),
        class_: str | None = Query(
            None, alias="class", description="Class index or name, for conditional models (default: seed % classes)."
        ),
        size: str | None = Query(
            None, description="Side of the PNG in pixels, 8..2048 (default: the model's resolution)."
        ),
        noise: str | None = Query(
            None, description="Per-pixel noise (stylegan2): const, random or none (default const)."
        ),
    ) -> Response:
        """The generator's image for `seed` at the run's newest checkpoint (X-Ganforge-Step tells which)."""
        d = run_of(run)
        s, p, px, nm = P.parse_seed(seed), P.parse_psi(psi), P.parse_size(size), P.parse_noise(noise)

        def work(m: Loaded) -> tuple[bytes, list[str]]:
            model, ignored = m.model, []
            if model.capabilities.inputs != "noise":
                raise GanforgeError(f"run '{d.name}' translates images: POST an image to /api/runs/{d.name}/translate")
            label = P.parse_class(class_, model.class_names, model.spec.num_classes)
            p2, n2 = _honoured(model, p, nm, ignored)
            x = model.generate([s], label=label, trunc=p2, noise_mode=n2, output="tensor")
            return _png(_frames(x, px)[0]), ignored

        (data, ignored), loaded = await model_work(request, d, work)
        return Response(data, media_type="image/png", headers=image_headers(loaded, ignored))

    @app.get(
        "/api/runs/{run}/interpolate.gif",
        tags=["generate"],
        summary="An animation between two seeds",
        response_class=Response,
        responses={**GIF, **ERRORS},
    )
    async def interpolate_gif(
        request: Request,
        run: str,
        from_: str | None = Query(None, alias="from", description="First seed, 0..4294967295 (default 0)."),
        to: str | None = Query(None, description="Second seed, 0..4294967295 (default 1)."),
        frames: str | None = Query(None, description=f"Frames in the loop, 2..{P.MAX_FRAMES} (default 48)."),
        fps: str | None = Query(None, description="Frames per second, 1..50 (default 24)."),
        psi: str | None = Query(None, description="Truncation psi, -2..2 (default 1)."),
        class_: str | None = Query(None, alias="class", description="Class index or name (default: the first seed's)."),
        size: str | None = Query(None, description="Side of the frames in pixels, 8..2048."),
        noise: str | None = Query(None, description="const, random or none (default const)."),
    ) -> Response:
        """A looping GIF that walks from `from` to `to` and back along the great circle between their
        latents (spherical interpolation, White 2016), eased so the ends linger."""
        d = run_of(run)
        a, b = P.parse_seed(from_, "from"), P.parse_seed(to, "to", default=1)
        n, rate, p, px, nm = (
            P.parse_frames(frames),
            P.parse_fps(fps),
            P.parse_psi(psi),
            P.parse_size(size),
            P.parse_noise(noise),
        )

        def work(m: Loaded) -> tuple[bytes, list[str]]:
            import torch

            from ..sample.interpolate import slerp
            from ..sample.latents import labels_for_seeds, latents_for_seeds

            model, ignored = m.model, []
            if model.capabilities.inputs != "noise":
                raise GanforgeError(f"run '{d.name}' translates images; it has no seeds to walk between")
            label = P.parse_class(class_, model.class_names, model.spec.num_classes)
            p2, n2 = _honoured(model, p, nm, ignored)
            keys = latents_for_seeds([a, b], model.latent_shape)
            # Ping-pong with ease in and out: t = (1 - cos(2 pi k / n)) / 2 goes 0 -> 1 -> 0 over the loop.
            t = (1 - torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)) / 2
            z = slerp(keys[0], keys[1], t.to(keys.dtype))  # (n, *latent_shape)
            lab = labels_for_seeds([a], model.spec.num_classes, label)
            x = model.sample_latents(z, lab.expand(n) if lab is not None else None, trunc=p2, noise_mode=n2, batch=16)
            return _gif(_frames(x, px), rate), ignored

        (data, ignored), loaded = await model_work(request, d, work)
        return Response(data, media_type="image/gif", headers=image_headers(loaded, ignored))

    @app.get(
        "/api/runs/{run}/mix.png",
        tags=["generate"],
        summary="A style-mixing grid (stylegan2)",
        response_class=Response,
        responses={**PNG, **ERRORS, 400: {"description": "The model has no W space."}},
    )
    async def mix_png(
        request: Request,
        run: str,
        rows: str | None = Query(None, description="Row seeds, e.g. 1,2,3 or 1-3 (at most 8; default 1-3)."),
        cols: str | None = Query(None, description="Column seeds (at most 8; default 4-7)."),
        styles: str | None = Query(
            None, description="coarse, middle, fine (Karras et al. 2019, fig. 3) or layers like 0-3 (default coarse)."
        ),
        psi: str | None = Query(None, description="Truncation psi, -2..2 (default 1)."),
        class_: str | None = Query(None, alias="class", description="Class index or name, for conditional models."),
        noise: str | None = Query(None, description="const, random or none (default const)."),
    ) -> Response:
        """Cell (r, c) takes row r's latent with the layers `styles` taken from column c's; the first
        row and column show the seeds' own images (the style-mixing figure of Karras et al. 2019)."""
        d = run_of(run)
        rs, cs = P.parse_seed_list(rows, "rows", [1, 2, 3]), P.parse_seed_list(cols, "cols", [4, 5, 6, 7])
        p, nm = P.parse_psi(psi), P.parse_noise(noise)

        def work(m: Loaded) -> tuple[bytes, list[str]]:
            from ..sample.grid import make_grid
            from ..sample.styles import style_mix

            model = m.model
            if not model.capabilities.style_mixing:
                raise GanforgeError(
                    f"run '{d.name}' ({model.family.name}) has no W space: style mixing needs stylegan2"
                )
            label = P.parse_class(class_, model.class_names, model.spec.num_classes)
            layers = P.parse_styles(styles, model.family.num_ws(model.nets))
            grid = style_mix(model, rs, cs, layers, trunc=p, noise_mode=nm, label=label)  # (R+1, C+1, C, H, W)
            r1, c1 = grid.shape[:2]
            return _png_image(make_grid(grid.reshape(r1 * c1, *grid.shape[2:]), nrow=c1)), []

        (data, ignored), loaded = await model_work(request, d, work)
        return Response(data, media_type="image/png", headers=image_headers(loaded, ignored))

    @app.post(
        "/api/runs/{run}/translate",
        tags=["generate"],
        summary="Translate an uploaded image (pix2pix, CycleGAN, super-resolution)",
        response_class=Response,
        responses={
            **PNG,
            **ERRORS,
            413: {"description": "Over 10 MB, or over 4096 pixels on a side."},
            415: {"description": "Not an image (PNG, JPEG, WebP, BMP, GIF, TIFF)."},
        },
    )
    async def translate(
        request: Request,
        run: str,
        image: UploadFile = File(..., description="The input image: at most 10 MB and 4096 px on a side."),
        direction: str | None = Form(None, description="CycleGAN: AtoB or BtoA (default: the model's first)."),
    ) -> Response:
        """The translated (or enhanced) image as PNG. The upload is checked from its header (size,
        dimensions, format) before any pixel is decoded."""
        d = run_of(run)
        data = await image.read(P.MAX_UPLOAD_BYTES + 1)
        P.check_upload(data)

        def work(m: Loaded) -> tuple[bytes, list[str]]:
            model = m.model
            if model.capabilities.inputs != "image":
                raise GanforgeError(f"run '{d.name}' generates from seeds: use /api/runs/{d.name}/generate.png")
            way = P.parse_direction(direction, model.capabilities.directions)
            try:
                out = model.translate(data, direction=way, output="png")
            except GanforgeError as exc:
                if "cannot read" in str(exc):
                    raise P.ParamError(415, f"the upload is not a readable image ({str(exc)[:200]})") from None
                raise
            return out[0], []

        (png, ignored), loaded = await model_work(request, d, work)
        return Response(png, media_type="image/png", headers=image_headers(loaded, ignored))

    @app.get(
        "/api/runs/{run}/examples",
        tags=["generate"],
        summary="Example inputs for an image-to-image run (its own preview inputs)",
        responses=ERRORS,
    )
    def get_examples(run: str) -> dict[str, Any]:
        """The fixed inputs the run shows in its sample grids (taken from its dataset when training
        started), as one-click examples for the translate playground: [{"index", "url", "direction",
        "width", "height"}]. Empty, with a "note", for runs that generate from seeds or have no grid yet."""
        d = run_of(run)
        found = example_inputs(d)
        examples = [
            {
                "index": i,
                "url": f"/api/runs/{quote(d.name, safe='')}/examples/{i}.png",
                "direction": way,
                "width": im.width,
                "height": im.height,
            }
            for i, (im, way) in enumerate(found["examples"])
        ]
        return {"run": d.name, "step": found["step"], "examples": examples, "note": found["note"]}

    @app.get(
        "/api/runs/{run}/examples/{index}.png",
        tags=["generate"],
        summary="One example input as PNG",
        response_class=Response,
        responses={**PNG, **ERRORS},
    )
    def get_example(run: str, index: str) -> Response:
        d = run_of(run)
        i = P.parse_int(index, "index", 0, MAX_EXAMPLES - 1)
        found = example_inputs(d)
        if i >= len(found["examples"]):
            raise P.ParamError(404, f"run '{d.name}' has no example {i}" + (f": {found['note']}" if found["note"] else ""))
        im, _ = found["examples"][i]
        return Response(_png_image(im), media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/api/server", tags=["runs"], summary="The studio itself: version, runs folder, loaded models")
    def server_info() -> dict[str, Any]:
        return {
            "version": __version__,
            "runs_dir": str(root),
            "device": device,
            "loaded": cache.info(),
            "token": token is not None,
        }

    # Outside the routing and its exception handlers, inside Starlette's last-resort error middleware.
    app.add_middleware(Guard, token=token, max_body=P.MAX_UPLOAD_BYTES + 256 * 1024, allowed_hosts=allowed_hosts)
    return app


def _honoured(model: Any, psi: float, noise: str, ignored: list[str]) -> tuple[float, str]:
    """psi and noise mode as the model can use them: a model without truncation or per-pixel noise
    ignores them (named in X-Ganforge-Ignored) rather than failing the page's shared controls."""
    caps = model.capabilities
    if psi != 1.0 and not caps.truncation:
        ignored.append("psi")
        psi = 1.0
    if noise != "const" and noise not in caps.noise_modes:
        ignored.append("noise")
        noise = "const"
    return psi, noise


def _frames(x: Any, size: int | None) -> list[Any]:
    """Float images (B, C, H, W) in [-1, 1] as PIL images, resized to `size`: nearest-neighbour when
    enlarging by a whole factor (small models stay crisp), Lanczos otherwise."""
    from PIL import Image

    from ..sample.grid import to_pil

    ims = to_pil(x)
    if size is None:
        return ims
    out = []
    for im in ims:
        if im.size == (size, size):
            out.append(im)
            continue
        up = size > im.width and size % im.width == 0
        out.append(im.resize((size, size), Image.Resampling.NEAREST if up else Image.Resampling.LANCZOS))
    return out


def _png_image(im: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # speed over a few % of size: these go over loopback
    return buf.getvalue()


def _png(im: Any) -> bytes:
    return _png_image(im)


def _gif(frames: list[Any], fps: int) -> bytes:
    buf = io.BytesIO()
    rgb = [f.convert("RGB") for f in frames]
    rgb[0].save(
        buf, format="GIF", save_all=True, append_images=rgb[1:], duration=round(1000 / fps), loop=0, optimize=False
    )
    return buf.getvalue()
