"""The studio's FastAPI app: the REST API under /api and the static pages (plain HTML/CSS/JS, no build step).

`create_app` assembles it: one `Studio` (the state every route shares) on `app.state.studio`, the error
handlers of `serve.errors`, the routers of `serve.routes` (pages, runs, generate, translate, curate, attack) and `Guard`.
Every handler validates its parameters with the pure functions of `params` (so bad input is a 4xx with
{"detail": "..."}), resolves the run inside RUNS_DIR only, and runs model work in the thread pool under
the model's lock (`Studio.model_work`), so the event loop stays free and one slow request never blocks the others.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from . import params as P
from .errors import add_error_handlers, json_error
from .models import ModelCache
from .routes import attack, curate, generate, pages, runs, translate
from .studio import Studio

log = logging.getLogger("ganforge.serve")
PUBLIC = ("/", "/index.html", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
# The studio's pages load only their own files: no CDN, no inline script (`/docs` is FastAPI's page, left as is).
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self' blob:; frame-ancestors 'none'"


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
                await reply(json_error(400, "unexpected Host header: open the studio at http://127.0.0.1:PORT"))
                return
        path = scope["path"]
        if self.token is not None and not (path in PUBLIC or path.startswith("/static/")):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                await reply(
                    json_error(
                        401,
                        "this studio needs a token: send 'Authorization: Bearer TOKEN' (pages: open /?token=TOKEN)",
                        {"WWW-Authenticate": "Bearer"},
                    )
                )
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await reply(
                json_error(413, f"the request is over {self.max_body // 2**20} MB; uploads are limited to 10 MB")
            )
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body and not replied:  # a chunked body without a length
                    await reply(json_error(413, "the request is over the 10 MB upload limit"))
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if replied:  # the app failed reading a body we cut off (413): expected, answered already
                return
            log.exception("error while serving %s %s", scope.get("method"), path)
            if not started:
                await reply(json_error(500, "internal error in the studio (details are in the server's log)"))


def create_app(
    runs_dir: str | Path,
    token: str | None = None,
    *,
    device: str = "cpu",
    cache_size: int = 4,
    allowed_hosts: tuple[str, ...] | None = None,
    share_cpu: bool = False,
) -> FastAPI:
    """The studio for the runs in `runs_dir`. `token`: require `Authorization: Bearer TOKEN` on every API
    request. `allowed_hosts`: Host header names accepted (the CLI passes the loopback names when bound
    to loopback, which stops DNS-rebinding pages from reaching the API); None accepts any. `share_cpu`: on a
    CPU, generate with the cores other processes leave free (`cpu_share.RequestThreads`; the CLI's default)."""
    app = FastAPI(
        title="ganforge studio",
        version=__version__,
        description=(
            "Watch training runs and generate images from them. Images are addressed by seed (0..2^32-1): "
            'the same seed, checkpoint and parameters give the same image. Errors are JSON: {"detail": "..."}.'
            + (" Every /api request needs `Authorization: Bearer TOKEN`." if token else "")
        ),
    )
    root = Path(runs_dir).expanduser().resolve()
    app.state.studio = Studio(root, ModelCache(cache_size, device), device, needs_token=token is not None)
    if share_cpu:
        from ..cpu_share import RequestThreads

        app.state.studio.cpu_threads = RequestThreads()
    add_error_handlers(app)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    for area in (runs, generate, translate, curate, attack):
        app.include_router(area.router)
    # Outside the routing and its exception handlers, inside Starlette's last-resort error middleware.
    app.add_middleware(Guard, token=token, max_body=P.MAX_UPLOAD_BYTES + 256 * 1024, allowed_hosts=allowed_hosts)
    return app
