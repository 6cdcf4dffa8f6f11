"""Built-in datasets: shipped with the package or generated locally, never downloaded.

- emoji: 3,786 Twemoji images (CC-BY 4.0, Twitter, Inc. and contributors), 32x32 on white, 10 categories.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..errors import DataError


def _emoji(resolution: int | None, channels: int | None):
    import numpy as np
    from PIL import Image

    from .dataset import ImageDataset

    pkg = resources.files("ganforge.builtin")
    meta = json.loads((pkg / "emoji.json").read_text())
    with resources.as_file(pkg / "emoji.webp") as p, Image.open(Path(p)) as im:
        sheet = np.asarray(im.convert("RGB"))
    t, cols, n = meta["tile"], meta["columns"], meta["count"]
    rows = sheet.shape[0] // t
    tiles = sheet.reshape(rows, t, cols, t, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, t, t, 3)[:n]  # (N, H, W, C)
    ds = ImageDataset.from_numpy(tiles, np.array(meta["labels"]), meta["class_names"], name="emoji")
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds


# name -> (loader, one-line description). Other modules add entries with `register`.
_BUILTINS: dict[str, tuple[Callable, str]] = {
    "emoji": (_emoji, "3,786 Twemoji sprites, 32x32 RGB on white, 10 categories (CC-BY 4.0)"),
}


def register(name: str, loader: Callable, description: str) -> None:
    _BUILTINS[name] = (loader, description)


def _ensure_registered() -> None:
    # Modules that define more built-ins register them on import.
    for module in ("ganforge.data.points", "ganforge.data.digits"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def names() -> list[str]:
    _ensure_registered()
    return list(_BUILTINS)


def describe() -> dict[str, str]:
    _ensure_registered()
    return {k: v[1] for k, v in _BUILTINS.items()}


def load(name: str, *, resolution: int | None = None, channels: int | None = None):
    _ensure_registered()
    if name not in _BUILTINS:
        raise DataError(
            f"unknown dataset '{name}': not a file or folder, and not a built-in ({', '.join(_BUILTINS)})"
        )
    return _BUILTINS[name][0](resolution, channels)
