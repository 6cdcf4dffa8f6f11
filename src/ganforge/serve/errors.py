"""How every failure reaches a studio client: JSON `{"detail": "..."}` with the right status, never a traceback."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import GanforgeError
from . import params as P


class Cancelled(Exception):
    """The client went away before its turn on the model came: its work is skipped."""


def json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _param_error(request: Request, exc: P.ParamError) -> JSONResponse:
    return json_error(exc.status, exc.detail)


async def _user_error(request: Request, exc: GanforgeError) -> JSONResponse:
    return json_error(400, str(exc)[:1000])


async def _cancelled(request: Request, exc: Cancelled) -> JSONResponse:
    return json_error(499, "the client closed the request")


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return json_error(422, "; ".join(parts) or "invalid request")


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return json_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


def add_error_handlers(app: FastAPI) -> None:
    """Bad parameters (4xx from `params`), user errors (400), cancelled work (499), FastAPI's own validation
    (422) and routing errors (404, 405), each as one JSON detail."""
    app.add_exception_handler(P.ParamError, _param_error)  # type: ignore[arg-type]
    app.add_exception_handler(GanforgeError, _user_error)  # type: ignore[arg-type]
    app.add_exception_handler(Cancelled, _cancelled)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
