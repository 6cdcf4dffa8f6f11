"""What the studio's routers share: one `Studio` per app (the runs folder, the model cache, the metrics logs
being followed), kept on `app.state.studio` and handed to every route by the `StudioDep` dependency, and the
OpenAPI descriptions of their answers.

Model work runs in the thread pool under the model's lock, so the event loop stays free and one slow request
never blocks the others.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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
    # What the attack and curate routes load besides generators (classifiers, runs with D, datasets): `held_work`.
    held: HeldCache = field(default_factory=lambda: HeldCache(6), init=False, repr=False)
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

    async def model_work(
        self, request: Request, run_dir: Path, work: Callable[[Loaded], _T], *, inference: bool = True
    ) -> tuple[_T, Loaded]:
        """Load (cached) and run `work` in the thread pool under the model's lock. While it waits for its
        turn, a request whose client has gone (a stale slider position the page aborted) is skipped.
        `work` runs in `torch.inference_mode` unless `inference=False` (work that may need gradients)."""
        loaded = await run_in_threadpool(self.need_model, run_dir)
        return await self._locked(request, loaded.lock, lambda: work(loaded), inference), loaded

    async def held_work(
        self,
        request: Request,
        key: tuple[Any, ...],
        load: Callable[[], Any],
        work: Callable[[Any], _T],
        *,
        inference: bool = True,
    ) -> _T:
        """`model_work` for what else the routes load (an attack's classifier, a run with its discriminator, a
        dataset): `load()` once per `key` (kept in the small LRU `held`, loaded in the thread pool outside
        inference mode, so its tensors can take part in autograd later), then `work(value)` under its lock.
        `inference=False` for work that needs gradients (attacks)."""
        held = await run_in_threadpool(self.held.get, key, load)
        return await self._locked(request, held.lock, lambda: work(held.value), inference)

    async def _locked(self, request: Request, lock: threading.Lock, fn: Callable[[], _T], inference: bool = True) -> _T:
        gone = threading.Event()

        def locked() -> _T:
            import torch

            with lock:
                if gone.is_set():
                    raise Cancelled
                if self.cpu_threads is not None and self.device == "cpu":
                    self.cpu_threads.apply()
                if not inference:
                    return fn()
                with torch.inference_mode():
                    return fn()

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
        return value


class Held:
    """One thing `HeldCache` keeps, with the lock held while a request uses it."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.lock = threading.Lock()


class HeldCache:
    """A small thread-safe LRU like `ModelCache`, for any loader: each key loads once (other requests for the
    same key wait on that key's own load lock, not a global one) and the least recently used goes first."""

    def __init__(self, size: int = 4) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[tuple[Any, ...], Held] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[Any, ...], threading.Lock] = {}

    def get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Held:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
            try:
                held = Held(load())
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = held
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return held

    def keys(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._items)


async def _studio(request: Request) -> Studio:  # async: no thread-pool hop just to read app.state
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(_studio)]


def image_headers(loaded: Loaded) -> dict[str, str]:
    """The checkpoint step an image came from."""
    return {"X-Ganforge-Step": str(loaded.step), "Cache-Control": "no-cache"}
