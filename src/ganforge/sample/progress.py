"""Progress for long loops (tiles of a huge image, images of an evaluation), on stderr.

On a terminal: a tqdm bar with its rate and ETA. Elsewhere (a log file, a CI job, a pipe) a bar would
be noise, so a plain line with the count and an ETA is printed every `every` seconds instead: a long
job is never silent, and a short one prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

EVERY = 30.0  # seconds between plain progress lines off a terminal (read at each Progress, so tests may lower it)


def duration(seconds: float) -> str:
    """3725 -> '1h02m', 95 -> '1m35s', 4.2 -> '4s'."""
    s = max(int(round(seconds)), 0)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """`with Progress(total, "tiles") as p: ... p.update(n)` (or `p.set(done)`, usable as a callback
    `fn(done, total)` through `p.callback`). `enabled=False` prints nothing."""

    def __init__(
        self,
        total: int,
        unit: str,
        desc: str = "",
        *,
        enabled: bool = True,
        file: TextIO | None = None,
        every: float | None = None,
        tty: bool | None = None,
    ) -> None:
        self.total, self.unit, self.desc, self.enabled = int(total), unit, desc, enabled
        self.file = file if file is not None else sys.stderr
        self.every = EVERY if every is None else every
        self.done = 0
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        is_tty = tty if tty is not None else bool(getattr(self.file, "isatty", lambda: False)())
        if enabled and is_tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, desc=desc or None, unit=unit, file=self.file, dynamic_ncols=True, leave=False
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def callback(self, done: int, total: int | None = None) -> None:
        """For code that reports (done, total): sets the count."""
        self.set(done)

    def set(self, done: int) -> None:
        step, self.done = done - self.done, done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step)
            return
        now = time.monotonic()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            print(self.line(now), file=self.file, flush=True)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate so far (None before the first item)."""
        elapsed = (now if now is not None else time.monotonic()) - self.t0
        if self.done <= 0 or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / self.done

    def line(self, now: float | None = None) -> str:
        pct = 100 * self.done / max(self.total, 1)
        eta = self.eta(now)
        left = f", about {duration(eta)} left" if eta is not None else ""
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%){left}"
