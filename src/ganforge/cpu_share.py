"""Sharing the CPU with other processes: how many cores they keep busy, and the thread count that follows.

Every torch process starts one OpenMP thread per core, and idle OpenMP threads spin before they sleep, so two
trainings on two cores with the default threads each run at about a quarter of their solo speed, while one
thread each keeps about 60 % (measured, issue 29). `ThreadGovernor` gives a `--threads 0` (auto) run the cores
other processes leave free: it reads the kernel's CPU counters (`/proc/stat`, only the cores this process may
use) and its own CPU time, so "other processes" excludes itself, and changes torch's thread count when their
load changes for two probes in a row. Where the counters cannot be read (not Linux), it keeps torch's default.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

# A core counts as taken when other processes keep it busy at least this much (a shell, an editor, the
# studio idling stay far below; another training or a test suite stays above).
BUSY_CORE = 0.6
PROBE_SECONDS = 0.25  # the first probe, before the run starts
MIN_INTERVAL = 2.0  # seconds between later probes (they happen at log intervals)


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity), or all of them."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _busy_seconds(cores: list[int], stat: str = "/proc/stat") -> float | None:
    """Seconds the given cores spent running anything (user, nice, system, irq, softirq) since boot."""
    try:
        with open(stat, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    want = {f"cpu{c}" for c in cores}
    total, found = 0, 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in want and len(parts) >= 8:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in parts[1:8])
            total += user + nice + system + irq + softirq
            found += 1
    return total / hz if found else None


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class LoadProbe:
    """Cores kept busy by other processes since the last `read()`."""

    cores: list[int] = field(default_factory=usable_cores)
    stat: str = "/proc/stat"
    _last: tuple[float, float, float] | None = None

    def reset(self) -> bool:
        busy = _busy_seconds(self.cores, self.stat)
        if busy is None:
            return False
        self._last = (time.monotonic(), busy, _own_seconds())
        return True

    def read(self) -> float | None:
        """Average number of cores other processes used since the last read (None: unknown)."""
        if self._last is None and not self.reset():
            return None
        busy = _busy_seconds(self.cores, self.stat)
        if busy is None or self._last is None:
            return None
        now, own = time.monotonic(), _own_seconds()
        t0, b0, o0 = self._last
        self._last = (now, busy, own)
        wall = now - t0
        if wall <= 0:
            return None
        return max(0.0, ((busy - b0) - (own - o0)) / wall)


def threads_for(cores: int, others: float) -> int:
    """The intra-op threads to use when other processes keep `others` cores busy: the cores they leave."""
    taken = math.floor(others + (1.0 - BUSY_CORE)) if others > 0 else 0
    return max(1, min(cores, cores - taken))


class ThreadGovernor:
    """Chooses torch's CPU thread count for a run with `--threads 0` from the load of other processes.

    `start()` probes for a moment and sets the first count; `update()` (called at log intervals) probes
    again and changes the count when the new choice held for two probes in a row. Both return a line for
    the user when they changed something (None otherwise)."""

    def __init__(self, probe: LoadProbe | None = None, *, set_threads=None, interval: float | None = None) -> None:
        import torch

        self.probe = probe or LoadProbe()
        self.cores = len(self.probe.cores)
        self._set = set_threads or torch.set_num_threads
        self.threads = min(self.cores, torch.get_num_threads())
        self.interval = MIN_INTERVAL if interval is None else interval
        self._pending: int | None = None
        self._last_probe = 0.0
        self.others = 0.0

    def start(self, wait: float = PROBE_SECONDS) -> str | None:
        if not self.probe.reset():
            return None
        time.sleep(wait)
        others = self.probe.read()
        self._last_probe = time.monotonic()
        if others is None:
            return None
        self.others = others
        want = threads_for(self.cores, others)
        if want != self.threads:
            self._apply(want)
        if want == self.cores:
            return None
        return f"threads: {want} of {self.cores} cores (other processes keep {others:.1f} busy; --threads N to fix it)"

    def update(self) -> str | None:
        now = time.monotonic()
        if now - self._last_probe < self.interval:
            return None
        self._last_probe = now
        others = self.probe.read()
        if others is None:
            return None
        self.others = others
        want = threads_for(self.cores, others)
        if want == self.threads:
            self._pending = None
            return None
        if self._pending != want:  # a change must hold for two probes (a checkpoint write is not a new neighbour)
            self._pending = want
            return None
        self._pending = None
        was = self.threads
        self._apply(want)
        why = f"other processes keep {others:.1f} of {self.cores} cores busy" if want < was else "the cores are free again"
        return f"threads {was} -> {want}: {why}"

    def _apply(self, n: int) -> None:
        self._set(n)
        self.threads = n


class RequestThreads:
    """The studio's thread count per request (`ganforge serve --threads 0`): every usable core, or the cores other
    processes leave free when they keep some busy (a training beside it), re-read at most once a second. A
    request that computes with every core while a training does makes both many times slower."""

    def __init__(self, probe: LoadProbe | None = None, *, set_threads=None, interval: float = 1.0) -> None:
        import torch

        self.probe = probe or LoadProbe()
        self.cores = len(self.probe.cores)
        self._set = set_threads or torch.set_num_threads
        self.threads = min(self.cores, torch.get_num_threads())
        self.interval = interval
        self._last = -math.inf
        self.probe.reset()

    def apply(self) -> int:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            others = self.probe.read()
            want = self.cores if others is None else threads_for(self.cores, others)
            if want != self.threads:
                self._set(want)
                self.threads = want
        return self.threads
