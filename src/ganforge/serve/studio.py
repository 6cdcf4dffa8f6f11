"""What the studio's routers share: one `Studio` per app (the runs folder, the model cache, the metrics logs
being followed), kept on `app.state.studio` and handed to every route by the `StudioDep` dependency, and the
OpenAPI descriptions of their answers.

Model work runs in the thread pool under the model's lock, so the event loop stays free and one slow request
never blocks the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from . import params as P
from .errors import Cancelled
from .models import Loaded, ModelCache
from .runs import MetricsLog, latest_step

_T = TypeVar("_T")

PNG = {200: {"content": {"image/png": {}}, "description": "A PNG image."}}
GIF = {200: {"content": {"image/gif": {}}, "description": "An animated GIF that loops forever."}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such run (also for names with separators or '..')."},
    422: {"description": 'A parameter is out of range or malformed: {"detail": "..."}.'},
}


@dataclass
class Studio:
    root: Path  # RUNS_DIR, resolved: every run is looked up inside it only
    cache: ModelCache
    device: str
    needs_token: bool  # whether requests need `Authorization: Bearer TOKEN` (the token itself stays in `Guard`)
    cpu_threads: Any = None  # cpu_share.RequestThreads (`serve --threads 0`): fewer threads while other processes work
    _logs: dict[Path, MetricsLog] = field(default_factory=dict, init=False, repr=False)
    _logs_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def run_dir(self, name: str) -> Path:
        return P.run_dir(self.root, name)

    def metrics_log(self, run_dir: Path) -> MetricsLog:
        """The run's metrics log, followed across requests (each read parses only the lines added since)."""
        with self._logs_lock:
            if run_dir not in self._logs:
                self._logs[run_dir] = MetricsLog(run_dir / "metrics.jsonl")
            return self._logs[run_dir]

    def need_model(self, run_dir: Path) -> Loaded:
        step = latest_step(run_dir)  # per request, so a training run's newest checkpoint is used
        if step is None:
            raise P.ParamError(409, f"run '{run_dir.name}' has no checkpoint yet: wait for its first one")
        return self.cache.get(run_dir, step)

    async def model_work(self, request: Request, run_dir: Path, work: Callable[[Loaded], _T]) -> tuple[_T, Loaded]:
        """Load (cached) and run `work` in the thread pool under the model's lock. While it waits for its
        turn, a request whose client has gone (a stale slider position the page aborted) is skipped."""
        loaded = await run_in_threadpool(self.need_model, run_dir)
        gone = threading.Event()

        def locked() -> _T:
            import torch

            with loaded.lock:
                if gone.is_set():
                    raise Cancelled
                if self.cpu_threads is not None and self.device == "cpu":
                    self.cpu_threads.apply()
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


async def _studio(request: Request) -> Studio:  # async: no thread-pool hop just to read app.state
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(_studio)]


def image_headers(loaded: Loaded) -> dict[str, str]:
    """The checkpoint step an image came from."""
    return {"X-Ganforge-Step": str(loaded.step), "Cache-Control": "no-cache"}
