"""ganforge: train, evaluate and use GANs, from a folder of images to a model and trustworthy numbers."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sample.model import Model


def load(run: str, *, checkpoint: str = "latest", device: str = "cpu") -> Model:
    """Load a trained model from its run folder: `ganforge.load("runs/dcgan-emoji").generate(seeds=[0, 1])`."""
    from .sample.model import Model

    return Model.load(run, checkpoint=checkpoint, device=device)


__all__ = ["__version__", "load"]
