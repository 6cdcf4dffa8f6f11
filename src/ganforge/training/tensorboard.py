"""TensorBoard events in the run folder (`events.out.tfevents.*`), when the tensorboard package is installed.

Three things are written: every logged scalar (the same values as metrics.jsonl), each sample grid the
loop writes (tag `samples`, read back from its PNG so TensorBoard shows exactly the file), and the
resolved configuration as text once per session (tag `config`). `tensorboard --logdir runs` then
compares runs side by side.

Only one process writes: under distributed training the loop passes `enabled=False` on every rank but
0. Without tensorboard (an optional extra: pip install 'ganforge[tensorboard]') every call is a no-op,
so training never depends on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class TensorBoard:
    """A SummaryWriter that may be absent. `enabled=False` (non-zero ranks) writes nothing."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, config: dict[str, Any] | None = None) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            return
        self.writer = SummaryWriter(str(run_dir))
        if config is not None:
            self.config(config)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Scalars: every int or float in `values` except the step itself."""
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                self.writer.add_scalar(k, v, step)

    def config(self, config: dict[str, Any]) -> None:
        """The configuration as text (TensorBoard renders markdown: a code block keeps the JSON readable)."""
        if self.writer is None:
            return
        text = json.dumps(config, indent=2, default=str)
        self.writer.add_text("config", "```json\n" + text + "\n```", 0)

    def grid(self, step: int, path: Path) -> None:
        """The sample grid the loop just wrote to `path` (skipped when it is missing or unreadable)."""
        if self.writer is None or not Path(path).exists():
            return
        from PIL import Image

        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
        except OSError:
            return
        self.writer.add_image("samples", arr, step, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
