"""ganforge: train, evaluate and use GANs, from a folder of images to a model and trustworthy numbers."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sample.model import Model


def load(run: str, *, checkpoint: str = "latest", device: str = "cpu", ema: bool = True) -> Model:
    """Load a trained model: `ganforge.load("runs/dcgan-emoji").generate(seeds=[0, 1])`.

    `run` is a run folder (or its name under ./runs), a folder written by `ganforge export --format
    safetensors`, or a model pushed to the Hugging Face Hub, "hf:OWNER/NAME" (optionally "@REVISION"; needs
    `pip install 'ganforge[hub]'`). `ema=False` uses the raw generator instead of its moving average."""
    from .sample.model import Model

    return Model.load(run, checkpoint=checkpoint, device=device, ema=ema)


__all__ = ["__version__", "load"]
