"""ganforge: train, evaluate and use GANs, from a folder of images to a model and trustworthy numbers."""

from __future__ import annotations

__version__ = "0.1.0"

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sample.model import Model


def load(
    run: str | os.PathLike,
    *,
    checkpoint: str | int = "latest",
    device: str = "cpu",
    nets: str = "generator",
    ema: bool = True,
    runs_dir: str | os.PathLike | None = None,
) -> Model:
    """Load a trained model: `ganforge.load("runs/dcgan-emoji").generate(seeds=[0, 1])`.

    `run` is a run folder (or its name under ./runs), a folder written by `ganforge export --format
    safetensors`, or a model pushed to the Hugging Face Hub, "hf:OWNER/NAME" (optionally "@REVISION"; needs
    `pip install 'ganforge[hub]'`). `nets="all"` loads the discriminator (and every other network) too;
    `ema=False` uses the raw generator instead of its moving average. `runs_dir`: where a bare run name is
    looked for (default: $GANFORGE_RUNS_DIR, else ./runs)."""
    from .sample.model import Model

    return Model.load(run, checkpoint=checkpoint, device=device, nets=nets, ema=ema, runs_dir=runs_dir)


__all__ = ["__version__", "load"]
