"""A small, thread-safe LRU cache of generators loaded from run folders.

Requests run in a thread pool (never on the event loop), so several may ask for the same model at
once: one loads it while the others wait on that model's own load lock (not on a global one, so a slow
load never blocks requests for other models). The cache key holds the checkpoint step, so while a run
trains the studio follows its newest checkpoint. Each model also carries a lock held while it
generates: a network's forward pass is not documented as thread-safe, and on a CPU one request at a
time per model loses nothing, since torch already spreads one forward pass over every core.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sample.model import Model


@dataclass
class Loaded:
    model: Model
    step: int
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while this model generates


class ModelCache:
    def __init__(self, size: int = 4, device: str = "cpu"):
        self.size, self.device = max(1, size), device
        self._models: OrderedDict[tuple[str, int], Loaded] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts, never held while loading
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def get(self, run_dir: Path, step: int) -> Loaded:
        """The generator of `run_dir` at checkpoint `step`, loaded on first use."""
        key = (str(run_dir), int(step))
        with self._lock:
            hit = self._models.get(key)
            if hit is not None:
                self._models.move_to_end(key)
                return hit
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:  # another thread may have loaded it while we waited
                hit = self._models.get(key)
                if hit is not None:
                    self._models.move_to_end(key)
                    return hit
            try:
                model = Model.load(run_dir, checkpoint=int(step), device=self.device, nets="generator")
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            loaded = Loaded(model, int(step))
            with self._lock:
                # An older checkpoint of the same run will not be asked for again: drop it at once.
                for old in [k for k in self._models if k[0] == key[0] and k[1] != key[1]]:
                    del self._models[old]
                self._models[key] = loaded
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
            return loaded

    def info(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"run": Path(k[0]).name, "step": k[1]} for k in self._models]
