"""`ganforge serve`: the local web studio (runs, live curves, sample timeline, generator playground) and
its REST API. Needs the `serve` extra (FastAPI, uvicorn, python-multipart), imported only when used."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_app(runs_dir: str | Path, token: str | None = None, **kw: Any) -> Any:
    """The FastAPI app for the runs in `runs_dir` (see `serve.app.create_app`)."""
    from ..errors import require

    require("fastapi", "serve")
    _require_multipart()
    from .app import create_app as _create

    return _create(runs_dir, token, **kw)


def _require_multipart() -> None:
    """python-multipart (uploads): imported as `python_multipart` since 0.0.13, as `multipart` before."""
    import importlib.util

    from ..errors import require

    if importlib.util.find_spec("python_multipart") is None:
        require("multipart", "serve")


__all__ = ["create_app"]
