"""Built-in datasets: shipped with the package or generated locally, never downloaded.

- emoji: 3,786 Twemoji images (CC-BY 4.0, Twitter, Inc. and contributors), 32x32 on white, 10 categories.
- edges2shapes (paired, for pix2pix-like models): 1,000 pairs; the source is the black outline of one to
  three random filled discs, squares and triangles on white, the target those shapes filled with colour.
  The outline is the inner boundary of every coloured region (`max(1, side // 64)` px thick), so each
  outline pixel lies on a shape, at its edge, exactly where the target's colour changes.
- day2night (unpaired, for CycleGAN-like models): two domains of 500 procedural scenes each (sky
  gradient, horizon, ground, sun or moon, buildings with windows), bright day colours against dark blue
  nights with lit windows and stars; each domain has its own random scenes (no correspondence).
- digits, digits16 (`digits.py`), ring8, grid25 (`points.py`) and shapes3d (`voxels.py`, 3-D occupancy grids)
  register themselves.

The demo sets are drawn from fixed seeds in unit coordinates, so they are identical on every machine and
the same scenes at any resolution (default 32 px); they take well under a second to make.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError


def _emoji(resolution: int | None, channels: int | None):
    import numpy as np
    from PIL import Image

    from .kinds import ImageDataset

    pkg = resources.files("ganforge.builtin")
    meta = json.loads((pkg / "emoji.json").read_text())
    with resources.as_file(pkg / "emoji.webp") as p, Image.open(Path(p)) as im:
        sheet = np.asarray(im.convert("RGB"))
    t, cols, n = meta["tile"], meta["columns"], meta["count"]
    rows = sheet.shape[0] // t
    tiles = (
        sheet.reshape(rows, t, cols, t, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, t, t, 3)[:n]
    )  # (N, H, W, C)
    # Captions: each emoji's Unicode CLDR short name ("red heart", "flag Japan"; scripts/build_emoji_captions.py).
    ds = ImageDataset.from_numpy(
        tiles, np.array(meta["labels"]), meta["class_names"], name="emoji", captions=meta.get("captions")
    )
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds


# ---------------------------------------------------------------------------------------------------
# Procedural demo sets for image-to-image models.

EDGES2SHAPES_PAIRS = 1000
DAY2NIGHT_PER_DOMAIN = 500
DEMO_RESOLUTION = 32
EDGES2SHAPES_SEED = 2017  # pix2pix's year; any fixed value would do
DAY2NIGHT_SEED = 2017


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (any shape) -> RGB in [0, 1], shape (..., 3)."""
    h6 = (h % 1.0) * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ]
    )  # (6, ..., 3)
    return np.take_along_axis(table, i[None, ..., None], 0)[0]


def _edge_map(regions: np.ndarray) -> np.ndarray:
    """Pixels with an 8-neighbour of another region; the image border does not count. int (N, H, W) -> bool."""
    h, w = regions.shape[1:]
    padded = np.pad(regions, ((0, 0), (1, 1), (1, 1)), mode="edge")
    edge = np.zeros(regions.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                edge |= padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != regions
    return edge


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Box dilation of bool (N, H, W) by `radius` pixels (separable: rows, then columns)."""
    for axis in (1, 2):
        out = mask.copy()
        for d in range(1, radius + 1):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(None, -d), slice(d, None)
            out[tuple(lo)] |= mask[tuple(hi)]
            out[tuple(hi)] |= mask[tuple(lo)]
        mask = out
    return mask


def inner_boundary(regions: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of a non-zero region that have a pixel of another region within `width` (box distance): the
    region's own side of every colour change. int (N, H, W) -> bool (N, H, W).

    A pixel is within `width` of a change exactly when it is within `width - 1` of a pixel that has a
    differing 8-neighbour, so this is one pass of neighbour comparisons and a dilation."""
    return _dilate(_edge_map(regions), width - 1) & (regions != 0)


def _regular_polygon(cx: float, cy: float, r: float, angle: float, sides: int, res: int) -> list[tuple[float, float]]:
    return [
        (
            res * (cx + r * math.cos(angle + 2 * math.pi * j / sides)),
            res * (cy + r * math.sin(angle + 2 * math.pi * j / sides)),
        )
        for j in range(sides)
    ]


def edges2shapes_arrays(
    n: int = EDGES2SHAPES_PAIRS, resolution: int = DEMO_RESOLUTION, seed: int = EDGES2SHAPES_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(outlines, filled shapes), uint8 (n, res, res, 3) each: see the module docstring."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    slots = 3  # at most three shapes per image, painted in slot order (later ones on top)
    count = rng.integers(1, slots + 1, n)
    kind = rng.integers(0, 3, (n, slots))  # 0 disc, 1 square, 2 triangle
    size = rng.uniform(0.14, 0.3, (n, slots))  # circumradius, in image widths
    cx = size + rng.uniform(0, 1, (n, slots)) * (1 - 2 * size)  # the whole shape inside the image
    cy = size + rng.uniform(0, 1, (n, slots)) * (1 - 2 * size)
    angle = rng.uniform(0, 2 * math.pi, (n, slots))
    hue = (rng.uniform(0, 1, (n, 1)) + np.arange(slots) / slots + rng.uniform(-0.05, 0.05, (n, slots))) % 1.0
    colour = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0, (n, slots)), rng.uniform(0.45, 0.9, (n, slots)))  # (n, slots, 3)
    table = np.full((n, slots + 1, 3), 255, dtype=np.uint8)  # region index -> colour; 0 is the white background
    table[:, 1:] = np.round(colour * 255).astype(np.uint8)

    res = resolution
    regions = np.zeros((n, res, res), dtype=np.uint8)  # 0: background, k + 1: slot k
    for i in range(n):
        canvas = Image.new("L", (res, res), 0)
        draw = ImageDraw.Draw(canvas)
        for k in range(count[i]):
            x, y, r, a = cx[i, k], cy[i, k], size[i, k], angle[i, k]
            if kind[i, k] == 0:
                rr = 0.85 * r
                draw.ellipse([res * (x - rr), res * (y - rr), res * (x + rr) - 1, res * (y + rr) - 1], fill=k + 1)
            else:
                draw.polygon(_regular_polygon(x, y, r, a, 4 if kind[i, k] == 1 else 3, res), fill=k + 1)
        regions[i] = np.asarray(canvas)
    shapes = np.empty((n, res, res, 3), dtype=np.uint8)
    edges = np.empty((n, res, res, 3), dtype=np.uint8)
    step = max(1, 2**21 // (res * res))  # images per block: bounds the temporaries at large sizes
    for lo in range(0, n, step):
        block = regions[lo : lo + step]
        index = block + (np.arange(lo, lo + len(block), dtype=np.int32) * (slots + 1))[:, None, None]  # table rows
        for c in range(3):
            shapes[lo : lo + step, ..., c] = np.take(table[:, :, c].ravel(), index)
        edges[lo : lo + step] = np.where(inner_boundary(block, max(1, res // 64)), np.uint8(0), np.uint8(255))[
            ..., None
        ]
    return edges, shapes  # black outlines on white, filled shapes


def _scene(rng: np.random.Generator, img: np.ndarray, night: bool) -> None:
    """Paint one procedural town scene into `img`, float (res, res, 3) in 0..255."""
    res = img.shape[0]
    ticks = (np.arange(res) + 0.5) / res
    jitter = rng.uniform(-12, 12, 3)
    horizon = rng.uniform(0.6, 0.78)
    if night:
        top, low, ground = np.array([8, 10, 38.0]), np.array([32, 36, 88.0]), np.array([14, 26, 30.0])
    else:
        top, low, ground = np.array([62, 128, 222.0]), np.array([182, 216, 246.0]), np.array([78, 146, 62.0])
    t = np.clip(ticks / horizon, 0, 1)[:, None]  # (res, 1): 0 at the top, 1 at the horizon
    rows = np.where((ticks < horizon)[:, None], (top + jitter) * (1 - t) + (low + jitter) * t, ground + jitter)
    img[:] = rows[:, None, :]  # sky gradient above the horizon, ground below

    # The sun, or a crescent moon, in the sky (computed in its bounding box only).
    r = rng.uniform(0.06, 0.1)
    sx, sy = rng.uniform(0.12, 0.88), rng.uniform(0.1, max(0.12, horizon - 0.3))
    y0, y1 = max(0, int((sy - r) * res)), min(res, int((sy + r) * res) + 2)
    x0, x1 = max(0, int((sx - r) * res)), min(res, int((sx + r) * res) + 2)
    by, bx = ticks[y0:y1, None], ticks[None, x0:x1]
    body = (bx - sx) ** 2 + (by - sy) ** 2 <= r**2
    if night:
        ox, oy = rng.uniform(0.3, 0.6) * r * (rng.integers(0, 2, 2) * 2 - 1)
        body &= (bx - sx - ox) ** 2 + (by - sy - oy) ** 2 > r**2
        img[y0:y1, x0:x1][body] = (232, 232, 206)
        stars = int(rng.integers(3, 10))
        px, py = rng.integers(0, res, stars), (rng.uniform(0, horizon - 0.12, stars) * res).astype(np.int64)
        free = ~((px >= x0) & (px < x1) & (py >= y0) & (py < y1))  # not on the moon's box
        img[py[free], px[free]] = (206, 210, 232)
    else:
        img[y0:y1, x0:x1][body] = (255, 226, 92)

    # Buildings standing on the horizon, each with a grid of windows.
    win = max(1, res // 32)  # window side in pixels
    period = 3 * win
    palette = np.array([[128, 128, 134], [170, 150, 122], [150, 84, 70], [196, 188, 170], [104, 114, 128.0]])
    for _ in range(int(rng.integers(2, 7))):
        w, h = rng.uniform(0.1, 0.24), rng.uniform(0.14, 0.45)
        left = rng.uniform(-0.05, 1 - w + 0.05)
        facade = palette[rng.integers(len(palette))] + rng.uniform(-10, 10, 3)
        lit_cells = rng.uniform(0, 1, (16, 16)) < rng.uniform(0.35, 0.75)  # about 11 x 11 windows fit at any size
        x0, x1 = max(0, round(left * res)), min(res, round((left + w) * res))
        y0, y1 = max(0, round((horizon - h) * res)), min(res, round((horizon + 0.03) * res))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        block = img[y0:y1, x0:x1]
        block[:] = facade * 0.22 if night else facade
        ly, lx = np.arange(y1 - y0), np.arange(x1 - x0)
        row = (ly >= win) & (ly < len(ly) - 2 * win) & ((ly - win) % period < win)  # (h,)
        col = (lx >= win) & (lx < len(lx) - win) & ((lx - win) % period < win)  # (w,)
        window = row[:, None] & col[None, :]
        if night:
            on = lit_cells[np.clip((ly - win) // period, 0, 15)[:, None], np.clip((lx - win) // period, 0, 15)[None, :]]
            block[window & on] = (255, 218, 116)
            block[window & ~on] = (16, 16, 26)
        else:
            block[window] = (172, 204, 228)


def day2night_arrays(
    n: int = DAY2NIGHT_PER_DOMAIN, resolution: int = DEMO_RESOLUTION, seed: int = DAY2NIGHT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(day scenes, night scenes), uint8 (n, res, res, 3) each, different random scenes in each domain."""
    rng = np.random.default_rng(seed)
    out = []
    img = np.empty((resolution, resolution, 3))
    for night in (False, True):
        scenes = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
        for i in range(n):
            _scene(rng, img, night)
            scenes[i] = np.clip(np.round(img), 0, 255)
        out.append(scenes)
    return out[0], out[1]


def _demo_tensors(arrays: tuple[np.ndarray, ...], channels: int | None) -> list:
    from .kinds import ImageDataset

    out = []
    for arr in arrays:
        ds = ImageDataset.from_numpy(arr)
        out.append(ds.with_channels(channels).images if channels is not None else ds.images)
    return out


def _edges2shapes(resolution: int | None, channels: int | None):
    from .kinds import PairedDataset

    edges, shapes = _demo_tensors(edges2shapes_arrays(resolution=resolution or DEMO_RESOLUTION), channels)
    return PairedDataset(edges, shapes, domains=["edges", "shapes"], name="edges2shapes")


def _day2night(resolution: int | None, channels: int | None):
    from .kinds import UnpairedDataset

    day, night = _demo_tensors(day2night_arrays(resolution=resolution or DEMO_RESOLUTION), channels)
    return UnpairedDataset(day, night, domains=["day", "night"], name="day2night")


# name -> (loader, one-line description). Other modules add entries with `register`.
_BUILTINS: dict[str, tuple[Callable, str]] = {
    "emoji": (_emoji, "3,786 Twemoji sprites, 32x32 RGB on white, 10 categories (CC-BY 4.0)"),
    "edges2shapes": (
        _edges2shapes,
        "paired demo: 1,000 black outlines -> the same discs, squares and triangles filled with colour, 32x32 "
        "(procedural; for paired models such as pix2pix)",
    ),
    "day2night": (
        _day2night,
        "unpaired demo: 500 day and 500 night town scenes (sky, sun/moon, buildings, lit windows), 32x32 "
        "(procedural; for unpaired models such as cyclegan)",
    ),
}


def register(name: str, loader: Callable, description: str) -> None:
    _BUILTINS[name] = (loader, description)


def _ensure_registered() -> None:
    # Modules that define more built-ins register them on import.
    for module in ("ganforge.data.points", "ganforge.data.digits", "ganforge.data.voxels"):
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
        raise DataError(f"unknown dataset '{name}': not a file or folder, and not a built-in ({', '.join(_BUILTINS)})")
    return _BUILTINS[name][0](resolution, channels)


# ---------------------------------------------------------------------------------------------------
# Export: a built-in set as plain files, so that every tutorial step (prepare, labels, training on a
# folder) can start from data a user holds.


def _attribution(name: str) -> str | None:
    """The license text an export of `name` must carry, or None for data made here (procedural, digits)."""
    if name != "emoji":
        return None
    pkg = resources.files("ganforge.builtin")
    meta = json.loads((pkg / "emoji.json").read_text())
    return (
        "# Exported from ganforge's built-in `emoji` set\n\n"
        f"{meta['attribution']}\n\n"
        "These are the 32x32 RGB images (flattened onto white) that ganforge ships, not the 64x64 RGBA originals\n"
        "described below. Keep this file with the images: CC-BY 4.0 requires the attribution on redistribution.\n\n"
        "---\n\n" + (pkg / "EMOJI_ATTRIBUTION.md").read_text()
    )


def _png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)  # (H, W, C) uint8


def export(name: str, dest: str | Path) -> dict[str, object]:
    """Write the built-in set `name` into the new folder `dest` as PNGs, so that it can be prepared,
    relabelled or trained on like any user's folder.

    Image sets: `dest/images/*.png` plus `dest/labels.csv` (`file,label`, class names, paths relative to
    `dest`) when labelled, and `dest/captions.csv` (`file,caption`) when captioned; paired sets: `dest/A/` and `dest/B/` with matching names (what `prepare --paired`
    reads); unpaired sets: one folder per domain. `emoji` keeps its file names (Twemoji code points) and
    gets `ATTRIBUTION.md` (CC-BY 4.0). `dest` must not exist yet, so nothing is ever overwritten; the
    folder is written under a temporary name and renamed when complete. Returns a summary (counts, paths)."""
    import csv
    import shutil
    import tempfile

    from .kinds import ImageDataset, PairedDataset, UnpairedDataset

    dest = Path(dest).expanduser()
    if dest.exists():
        raise DataError(f"{dest} already exists; export into a new folder (ganforge never writes over one)")
    ds = load(name)
    if ds.kind == "voxels":
        raise DataError(f"'{name}' holds 3-D voxel shapes, not images; train on it directly with --data {name}")
    if not isinstance(ds, (ImageDataset, PairedDataset, UnpairedDataset)):
        raise DataError(f"'{name}' holds 2-D points, not images; there is nothing to export as PNG files")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    summary: dict[str, object] = {"name": name, "dest": str(dest)}
    try:
        if isinstance(ds, ImageDataset):
            images = ds.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
            files = _emoji_files() if name == "emoji" else [f"{name}-{i:05d}.png" for i in range(len(images))]
            (tmp / "images").mkdir()
            for arr, f in zip(images, files):
                _png(arr, tmp / "images" / f)
            summary.update(images=len(images), folder=str(dest / "images"))
            if ds.labels is not None:
                with open(tmp / "labels.csv", "w", newline="", encoding="utf-8") as fh:
                    w = csv.writer(fh)
                    w.writerow(["file", "label"])
                    w.writerows((f"images/{f}", ds.class_names[int(k)]) for f, k in zip(files, ds.labels.tolist()))
                summary.update(labels=str(dest / "labels.csv"), classes=len(ds.class_names))
            if ds.texts is not None:  # `file,caption`, what `prepare --captions` reads
                with open(tmp / "captions.csv", "w", newline="", encoding="utf-8") as fh:
                    w = csv.writer(fh)
                    w.writerow(["file", "caption"])
                    w.writerows((f"images/{f}", c) for f, c in zip(files, ds.captions))
                summary.update(captions=str(dest / "captions.csv"))
        else:
            sides = (ds.source, ds.target) if isinstance(ds, PairedDataset) else (ds.a, ds.b)
            folders = ["A", "B"] if isinstance(ds, PairedDataset) else list(ds.domains)
            for folder, side in zip(folders, sides):
                (tmp / folder).mkdir()
                for i, arr in enumerate(side.permute(0, 2, 3, 1).numpy()):
                    _png(arr, tmp / folder / f"{i:05d}.png")
            summary.update(images=sum(len(s) for s in sides), folders=[str(dest / f) for f in folders], layout=ds.kind)
        text = _attribution(name)
        if text:
            (tmp / "ATTRIBUTION.md").write_text(text, encoding="utf-8")
            summary["attribution"] = str(dest / "ATTRIBUTION.md")
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _emoji_files() -> list[str]:
    meta = json.loads((resources.files("ganforge.builtin") / "emoji.json").read_text())
    return list(meta["files"])
