"""3-D shapes as occupancy grids: the built-in procedural set `shapes3d`, the `VoxelDataset` kind, the readers
`prepare` uses for voxel files (.npy, .npz, .binvox) and meshes (.obj, .off, .stl, voxelised with trimesh), and the
voxel archive they are written to.

Conventions. A shape is a cube of R^3 voxels, uint8 0/1 on disk and in memory, with axes (x, y, z) and y up (the
order a .binvox file has once read, see `read_binvox`); batches carry it as a float volume (B, 1, R, R, R) in
{-1, 1} under the key `image` (a volume is a 3-D image: what only batches or flattens examples treats it as one),
and generators return occupancy probabilities p as 2p - 1 in [-1, 1], so "occupied" is `x > 0` everywhere.

shapes3d: signed-distance functions of primitives (sphere, box, cylinder, cone, torus) and of composites built
from them (table, chair, lamp), with random sizes and poses, evaluated at the voxel centres of [-1, 1]^3 and
rasterised to occupancy (sdf <= 0). Shape i has class i % 8 and its parameters come from one seeded generator in a
fixed order, independent of the resolution, so the set is the same shapes at 8^3, 16^3, 32^3 or 64^3 on every
machine; 1,200 shapes at 32^3 take about a second to make, so nothing is shipped.

The voxel archive (`write_voxel_archive`, read by `read_voxel_archive`): a zip or folder holding `dataset.json`
(`{"layout": "voxels", "resolution": R, "count": N, "class_names": [...], "files": [...]}`) and `voxels.npz`
(`voxels`: uint8 (N, R, R, R); `labels`: int64 (N,) when labelled), read with numpy's pickle-free loader.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, MissingDependencyError
from ..spec import Batch, DataSpec
from . import builtin
from .kinds import IndexedSamples

SHAPES3D_CLASSES = ("sphere", "box", "cylinder", "cone", "torus", "table", "chair", "lamp")
SHAPES3D_PER_CLASS = 150  # 1,200 shapes
SHAPES3D_RESOLUTION = 32  # default side; 8 to 64 (powers of two) on request
SHAPES3D_SEED = 2016  # 3D-GAN's year (Wu et al. 2016); any fixed value would do
VOXEL_SUFFIXES = (".npy", ".npz", ".binvox")
MESH_SUFFIXES = (".obj", ".off", ".stl")
VOXEL_LAYOUT = "voxels"  # dataset.json "layout" of a voxel archive
VOXELS_MEMBER = "voxels.npz"
MAX_VOXEL_SIDE = 256  # larger grids in a file are refused (256^3 bytes = 16 MiB per shape)


# ---------------------------------------------------------------------------------------------------
# The dataset kind.


@dataclass
class VoxelDataset(IndexedSamples):
    """Occupancy grids as uint8 (N, R, R, R) 0/1 with optional int64 labels (N,)."""

    voxels: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    name: str = ""
    left_out: list[tuple[str, str]] = field(default_factory=list, repr=False)
    kind = "voxels"

    def __post_init__(self) -> None:
        v = self.voxels
        if v.dim() != 4 or not (v.shape[1] == v.shape[2] == v.shape[3]):
            raise DataError(f"voxel data must be cubes (N, R, R, R); got {tuple(v.shape)}")

    def __len__(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.voxels.shape[-1])

    def spec(self, *, conditional: bool = True) -> DataSpec:
        n = self.num_classes if conditional else 0
        return DataSpec(
            kind="voxels",
            resolution=self.resolution,
            channels=1,
            num_classes=n,
            class_names=list(self.class_names) if n else [],
        )

    def to(self, device: torch.device | str) -> VoxelDataset:
        labels = self.labels.to(device) if self.labels is not None else None
        return VoxelDataset(self.voxels.to(device), labels, self.class_names, self.name, self.left_out)

    def batch(self, idx: torch.Tensor, *, xflip: bool = False, generator: torch.Generator | None = None) -> Batch:
        """Shapes `idx` as float volumes (B, 1, R, R, R) in {-1, 1}; with `xflip`, each mirrored in x with
        probability 1/2 (a mirrored table is a table)."""
        v = self.voxels[idx]  # (B, R, R, R) uint8
        if xflip:
            flip = (torch.rand(v.shape[0], generator=generator, device="cpu") < 0.5).to(v.device)
            v[flip] = v[flip].flip(1)
        out: Batch = {"image": v[:, None].float().mul_(2.0).sub_(1.0)}  # (B, 1, R, R, R)
        if self.labels is not None:
            out["label"] = self.labels[idx]
        return out

    @property
    def device(self) -> torch.device:
        return self.voxels.device

    def resized(self, resolution: int) -> VoxelDataset:
        if resolution == self.resolution:
            return self
        return VoxelDataset(
            torch.from_numpy(resize_voxels(self.voxels.cpu().numpy(), resolution)),
            self.labels,
            self.class_names,
            self.name,
            self.left_out,
        )


def resize_voxels(v: np.ndarray, resolution: int) -> np.ndarray:
    """Occupancy grids (N, S, S, S) at side `resolution`: a voxel is occupied when at least half of the region it
    covers is (area averaging) when shrinking, nearest neighbour when enlarging. uint8 0/1 out."""
    x = torch.from_numpy(np.ascontiguousarray(v)).float()[:, None]  # (N, 1, S, S, S)
    if resolution < v.shape[-1]:
        y = F.adaptive_avg_pool3d(x, resolution) >= 0.5
    else:
        y = F.interpolate(x, size=(resolution,) * 3, mode="nearest") > 0.5
    return y[:, 0].to(torch.uint8).numpy()


# ---------------------------------------------------------------------------------------------------
# shapes3d: signed-distance functions (sdf < 0 inside), after Quilez's formulas for the primitives.


def _sd_box(p: np.ndarray, b: Sequence[float]) -> np.ndarray:
    q = np.abs(p) - np.asarray(b, np.float32)
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(-1), 0.0)


def _sd_cylinder(p: np.ndarray, r: float, h: float) -> np.ndarray:
    """Capped cylinder around the y axis: radius r, half-height h."""
    d = np.stack([np.hypot(p[..., 0], p[..., 2]) - r, np.abs(p[..., 1]) - h], -1)
    return np.minimum(d.max(-1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=-1)


def _sd_cone(p: np.ndarray, r: float, h: float) -> np.ndarray:
    """Solid cone around the y axis, base radius r at y = -h, apex at y = +h (a distance bound: exact sign)."""
    slope = r / (2 * h)  # radius lost per unit of height
    side = (np.hypot(p[..., 0], p[..., 2]) - slope * (h - p[..., 1])) / math.sqrt(1 + slope * slope)
    return np.maximum(side, np.abs(p[..., 1]) - h)


def _sd_frustum(p: np.ndarray, r_low: float, r_high: float, h: float) -> np.ndarray:
    """Truncated cone around the y axis: radius r_low at y = -h, r_high at y = +h (a distance bound)."""
    slope = (r_low - r_high) / (2 * h)
    side = (np.hypot(p[..., 0], p[..., 2]) - (r_low - slope * (p[..., 1] + h))) / math.sqrt(1 + slope * slope)
    return np.maximum(side, np.abs(p[..., 1]) - h)


def _sd_torus(p: np.ndarray, big: float, small: float) -> np.ndarray:
    """Torus in the xz plane: ring radius `big`, tube radius `small`."""
    return np.hypot(np.hypot(p[..., 0], p[..., 2]) - big, p[..., 1]) - small


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix: roll about z, then pitch about x, then yaw about y (the up axis)."""
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (ry @ rx @ rz).astype(np.float32)  # float32 points stay float32 (twice as fast as float64)


def _legs(p: np.ndarray, half_w: float, half_d: float, thick: float, y_low: float, y_high: float) -> np.ndarray:
    """Four square legs at the corners of a half_w x half_d rectangle, from y_low to y_high."""
    q = np.stack(
        [np.abs(p[..., 0]) - (half_w - thick), p[..., 1] - (y_low + y_high) / 2, np.abs(p[..., 2]) - (half_d - thick)],
        -1,
    )
    return _sd_box(q, (thick, (y_high - y_low) / 2, thick))


def _shape_sdf(cls: str, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """One random shape of class `cls` as a function of points (..., 3) in [-1, 1]^3 (x, y, z; y up). The draws
    happen here, in a fixed order, so a seed gives the same shapes at any resolution."""
    u = rng.uniform
    yaw = u(0, 2 * math.pi)
    tilt = (u(-math.pi / 4, math.pi / 4), u(-math.pi / 4, math.pi / 4))  # primitives: any heading, tilted up to 45 deg
    shift = u(-0.08, 0.08, 3).astype(np.float32)
    if cls == "sphere":
        r = u(0.35, 0.85)
        return lambda p: np.linalg.norm(p - shift, axis=-1) - r
    if cls == "box":
        b = u(0.2, 0.55, 3)
        rot = _rotation(yaw, *tilt)
        return lambda p: _sd_box((p - shift) @ rot, b)
    if cls == "cylinder":
        r, h = u(0.2, 0.45), u(0.4, 0.8)
        rot = _rotation(yaw, *tilt)
        return lambda p: _sd_cylinder((p - shift) @ rot, r, h)
    if cls == "cone":
        r, h = u(0.35, 0.65), u(0.45, 0.8)
        rot = _rotation(yaw, *tilt)
        return lambda p: _sd_cone((p - shift) @ rot, r, h)
    if cls == "torus":
        big, small = u(0.4, 0.65), u(0.14, 0.26)
        rot = _rotation(yaw, *tilt)
        return lambda p: _sd_torus((p - shift) @ rot, big, small)
    # Composites stand upright on the floor (y = -0.9) and turn about the up axis only.
    rot = _rotation(yaw, 0.0, 0.0)
    floor = -0.9
    if cls == "table":
        hw, hd, top_y, top_t, leg = u(0.5, 0.85), u(0.35, 0.7), u(0.0, 0.5), u(0.07, 0.12), u(0.08, 0.13)

        def table(p: np.ndarray) -> np.ndarray:
            q = p @ rot
            top = _sd_box(q - np.float32([0.0, top_y, 0.0]), (hw, top_t, hd))
            return np.minimum(top, _legs(q, hw, hd, leg, floor, top_y))

        return table
    if cls == "chair":
        hw, seat_y, seat_t, leg = u(0.35, 0.55), u(-0.3, 0.05), u(0.07, 0.11), u(0.07, 0.11)
        back_h, back_t = u(0.45, 0.8), u(0.07, 0.11)

        def chair(p: np.ndarray) -> np.ndarray:
            q = p @ rot
            seat = _sd_box(q - np.float32([0.0, seat_y, 0.0]), (hw, seat_t, hw))
            top = min(seat_y + back_h, 0.9)
            back = _sd_box(q - np.float32([0.0, (seat_y + top) / 2, -hw + back_t]), (hw, (top - seat_y) / 2, back_t))
            return np.minimum(np.minimum(seat, back), _legs(q, hw, hw, leg, floor, seat_y))

        return chair
    if cls == "lamp":
        base_r, base_t, pole_r = u(0.3, 0.5), u(0.07, 0.1), u(0.1, 0.14)  # a pole of at least one 16^3 voxel
        shade_y, shade_h, shade_low, shade_high = u(0.2, 0.45), u(0.2, 0.3), u(0.35, 0.6), u(0.15, 0.3)

        def lamp(p: np.ndarray) -> np.ndarray:
            q = p @ rot
            base = _sd_cylinder(q - np.float32([0.0, floor + base_t, 0.0]), base_r, base_t)
            pole_mid = (floor + shade_y) / 2
            pole = _sd_cylinder(q - np.float32([0.0, pole_mid, 0.0]), pole_r, (shade_y - floor) / 2)
            shade = _sd_frustum(q - np.float32([0.0, shade_y + shade_h, 0.0]), shade_low, shade_high, shade_h)
            return np.minimum(np.minimum(base, pole), shade)

        return lamp
    raise ValueError(f"unknown shapes3d class {cls}")


def voxel_centres(resolution: int) -> np.ndarray:
    """Centres (R, R, R, 3) of the voxels of [-1, 1]^3, indexed [x, y, z]."""
    t = (-1.0 + (np.arange(resolution) + 0.5) * (2.0 / resolution)).astype(np.float32)
    return np.stack(np.meshgrid(t, t, t, indexing="ij"), -1)


def shapes3d_arrays(
    per_class: int = SHAPES3D_PER_CLASS, resolution: int = SHAPES3D_RESOLUTION, seed: int = SHAPES3D_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(voxels uint8 (N, R, R, R) 0/1, labels int64 (N,)), N = per_class * 8; shape i has class i % 8."""
    rng = np.random.default_rng(seed)
    pts = voxel_centres(resolution)
    n = per_class * len(SHAPES3D_CLASSES)
    labels = np.arange(n, dtype=np.int64) % len(SHAPES3D_CLASSES)
    vox = np.empty((n, resolution, resolution, resolution), np.uint8)
    for i, k in enumerate(labels):
        vox[i] = _shape_sdf(SHAPES3D_CLASSES[k], rng)(pts) <= 0.0
    return vox, labels


def _shapes3d(resolution: int | None, channels: int | None) -> VoxelDataset:
    if channels not in (None, 1):
        raise DataError("shapes3d is voxel data (one occupancy channel); drop --channels")
    r = resolution or SHAPES3D_RESOLUTION
    if r < 8 or r > 64 or r & (r - 1):
        raise DataError(f"shapes3d is made at 8, 16, 32 or 64 voxels a side, not {r}; use --resolution 16 or 32")
    vox, labels = shapes3d_arrays(resolution=r)
    return VoxelDataset(torch.from_numpy(vox), torch.from_numpy(labels), list(SHAPES3D_CLASSES), "shapes3d")


builtin.register(
    "shapes3d",
    _shapes3d,
    "3-D voxels: 1,200 procedural shapes, 8 classes (sphere, box, cylinder, cone, torus, table, chair, lamp), "
    "32^3 (--resolution 8 to 64)",
)


# ---------------------------------------------------------------------------------------------------
# Reading voxel and mesh files.


def read_binvox(data: bytes, where: str = "file") -> tuple[np.ndarray, tuple[float, float, float], float]:
    """A .binvox file (Min's binvox format, as ShapeNet ships voxels) -> (occupancy bool (X, Y, Z) with y up,
    translate, scale).

    The format: an ASCII header `#binvox 1`, then `dim D W H`, `translate tx ty tz`, `scale s` and `data` lines,
    then the voxels run-length encoded as byte pairs (value 0 or 1, count 1..255). Voxels are stored with y
    running fastest, then z, then x (index = x * W * H + z * W + y), so the decoded run reshapes to [x][z][y]."""

    def bad(why: str) -> DataError:
        return DataError(f"{where}: not a readable .binvox file ({why}); re-export it with binvox")

    pos = 0
    lines: list[str] = []
    while True:
        end = data.find(b"\n", pos)
        if end < 0 or len(lines) > 16:
            raise bad("no 'data' line ends the header")
        line = data[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        lines.append(line)
        if line == "data":
            break
    if not lines[0].startswith("#binvox"):
        raise bad("it does not start with '#binvox'")
    dims: list[int] | None = None
    translate, scale = (0.0, 0.0, 0.0), 1.0
    try:
        for line in lines[1:-1]:
            key, *vals = line.split()
            if key == "dim":
                dims = [int(v) for v in vals]
            elif key == "translate":
                translate = (float(vals[0]), float(vals[1]), float(vals[2]))
            elif key == "scale":
                scale = float(vals[0])
    except (ValueError, IndexError) as exc:
        raise bad(f"malformed header line '{line[:40]}'") from exc
    if dims is None or len(dims) != 3 or min(dims) < 1 or max(dims) > MAX_VOXEL_SIDE:
        raise bad(f"its 'dim' line must give three sides from 1 to {MAX_VOXEL_SIDE}")
    d, w, h = dims
    body = np.frombuffer(data, np.uint8, offset=pos)
    if body.size % 2:
        raise bad("the run-length data has an odd number of bytes")
    values, counts = body[0::2], body[1::2].astype(np.int64)
    total = int(counts.sum())
    if total != d * w * h:
        raise bad(f"the runs hold {total} voxels, not {d}x{w}x{h} = {d * w * h}")
    flat = np.repeat(values != 0, counts)
    vox = flat.reshape(d, h, w).transpose(0, 2, 1)  # [x][z][y] -> [x][y][z]
    return np.ascontiguousarray(vox), translate, scale


def write_binvox(vox: np.ndarray, translate: Sequence[float] = (0.0, 0.0, 0.0), scale: float = 1.0) -> bytes:
    """Occupancy (X, Y, Z) -> .binvox bytes (the inverse of `read_binvox`), for exporting to binvox tools."""
    d, w, h = vox.shape
    flat = np.ascontiguousarray(np.asarray(vox, bool).transpose(0, 2, 1)).reshape(-1).astype(np.uint8)  # [x][z][y]
    out = bytearray(
        f"#binvox 1\ndim {d} {w} {h}\ntranslate {translate[0]} {translate[1]} {translate[2]}\nscale {scale}\ndata\n".encode()
    )
    i = 0
    while i < flat.size:
        j = i + 1
        while j < flat.size and flat[j] == flat[i] and j - i < 255:
            j += 1
        out += bytes((int(flat[i]), j - i))
        i = j
    return bytes(out)


def _cube(v: np.ndarray, where: str) -> np.ndarray:
    """A 3-D array as a cube (zero-padded around its centre) of occupancy 0/1."""
    if v.dtype == np.bool_:
        occ = v
    elif np.issubdtype(v.dtype, np.integer):
        occ = v != 0
    elif np.issubdtype(v.dtype, np.floating):
        if not np.isfinite(v).all():
            raise DataError(f"{where}: the grid holds NaN or infinite values; save occupancy as 0/1 or booleans")
        occ = v > 0.5  # occupancy probabilities
    else:
        raise DataError(f"{where}: a {v.dtype} array is not an occupancy grid; save 0/1 integers, booleans or floats")
    side = max(occ.shape)
    if side > MAX_VOXEL_SIDE:
        raise DataError(
            f"{where}: a {'x'.join(map(str, occ.shape))} grid is larger than {MAX_VOXEL_SIDE} a side; downsample it first"
        )
    pad = [((side - s) // 2, side - s - (side - s) // 2) for s in occ.shape]
    return np.pad(occ, pad).astype(np.uint8)


def _grids_of_array(v: np.ndarray, where: str) -> list[np.ndarray]:
    if v.ndim == 3:
        return [_cube(v, where)]
    if v.ndim == 4 and v.shape[0] == 1:
        return [_cube(v[0], where)]
    if v.ndim == 4:
        return [_cube(x, f"{where}[{i}]") for i, x in enumerate(v)]  # a stack of shapes
    if v.ndim == 5 and v.shape[1] == 1:
        return [_cube(x[0], f"{where}[{i}]") for i, x in enumerate(v)]
    raise DataError(
        f"{where}: a {v.ndim}-D array of shape {v.shape} is not a voxel grid; save (X, Y, Z) or (N, X, Y, Z)"
    )


def read_voxel_file(path: str | os.PathLike, resolution: int | None = None) -> list[np.ndarray]:
    """The occupancy grids in one file, uint8 cubes (S, S, S) with axes (x, y, z), y up: one for a .binvox or a
    mesh, one or a stack (N, X, Y, Z) for .npy/.npz (an .npz's `voxels` array, else its only one). Meshes are
    voxelised at `resolution` (default 32). Any problem raises one DataError naming the file."""
    path = Path(path)
    where, suffix = str(path), path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{where}: not a regular file")
    if suffix in MESH_SUFFIXES:
        return [voxelise_mesh(path, resolution or SHAPES3D_RESOLUTION)]
    try:
        if suffix == ".binvox":
            return [_cube(read_binvox(path.read_bytes(), where)[0], where)]
        if suffix == ".npy":
            return _grids_of_array(np.load(path, allow_pickle=False), where)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = "voxels" if "voxels" in keys else keys[0] if len(keys) == 1 else None
                if key is None:
                    raise DataError(f"{where}: holds arrays {', '.join(keys[:4])}; name the grid 'voxels'")
                return _grids_of_array(z[key], where)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: cannot read it as a {suffix} voxel grid ({str(exc)[:120]})") from None
    raise DataError(
        f"{where}: {suffix or 'no suffix'} is not a voxel or mesh file ({', '.join(VOXEL_SUFFIXES + MESH_SUFFIXES)})"
    )


def voxelise_mesh(path: Path, resolution: int) -> np.ndarray:
    """A mesh file -> occupancy (R, R, R): centred, scaled so its longest side spans R - 2 voxels, its surface
    voxelised by trimesh and the inside filled (a mesh that is not closed keeps only its shell)."""
    try:
        import trimesh
    except ImportError:
        raise MissingDependencyError(
            f"{path}: voxelising meshes needs the optional package 'trimesh': pip install 'ganforge[shapes]'"
        ) from None
    try:
        mesh = trimesh.load(str(path), force="mesh")
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ValueError("no triangles")
        lo, hi = mesh.bounds
        extent = float((hi - lo).max())
        if not math.isfinite(extent) or extent <= 0:
            raise ValueError("the mesh is flat or empty")
        mesh = mesh.copy()
        mesh.apply_translation(-(lo + hi) / 2)
        mesh.apply_scale((resolution - 2) / extent)  # one voxel of margin each side, pitch 1
        grid = mesh.voxelized(pitch=1.0).fill()
        occ = np.asarray(grid.matrix, bool)
    except MissingDependencyError:
        raise
    except Exception as exc:  # noqa: BLE001  (trimesh raises many types; one line names the file)
        raise DataError(
            f"{path}: cannot voxelise this mesh ({str(exc)[:120]}); check that it opens in a mesh viewer"
        ) from None
    out = np.zeros((resolution,) * 3, np.uint8)
    occ = occ[tuple(slice(0, resolution) for _ in range(3))]
    off = [(resolution - s) // 2 for s in occ.shape]
    out[off[0] : off[0] + occ.shape[0], off[1] : off[1] + occ.shape[1], off[2] : off[2] + occ.shape[2]] = occ
    return out


def _is_shape_name(name: str) -> bool:
    return name.lower().endswith(VOXEL_SUFFIXES + MESH_SUFFIXES)


def _walk(root: Path) -> tuple[list[Path], list[Path], int]:
    """(shape files, other files, image files) under `root`, sorted, hidden files and folders left out."""
    from .archive import IMAGE_EXTENSIONS

    shapes, others, images = [], [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            f = Path(dirpath, name)
            if name.startswith("."):
                others.append(f)
            elif _is_shape_name(name):
                shapes.append(f)
            else:
                images += name.lower().endswith(IMAGE_EXTENSIONS)
                others.append(f)
    return shapes, others, images


def is_voxel_source(sources: Sequence[str | os.PathLike]) -> bool:
    """True when the sources are voxel or mesh files, or folders that hold such files and no images (so a
    folder of .binvox files prepares as shapes without a flag; a folder of images never does)."""
    if not sources:
        return False
    for s in map(Path, sources):
        if s.is_dir():
            shapes, _, images = _walk(s)
            if not shapes or images:
                return False
        elif not _is_shape_name(s.name):
            return False
    return True


@dataclass
class VoxelSources:
    """What `read_voxel_sources` found: the grids at one side, their labels and files, what was left out."""

    voxels: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    files: list[str]
    skipped: list[tuple[str, str]]
    ignored: list[str]
    resolution: int


def read_voxel_sources(
    sources: Sequence[str | os.PathLike],
    *,
    resolution: int | None = None,
    folder_labels: bool = True,
    exclude: Sequence[str | os.PathLike] = (),
) -> VoxelSources:
    """Every voxel grid and mesh under `sources` at one side: `resolution`, else the most common side of the
    grids (meshes are voxelised at it; 32 when there are only meshes). Labels from the first sub-folder when
    shapes sit in two or more (as images are labelled). A file that cannot be read is skipped with the reason."""
    excluded = {os.path.realpath(p) for p in exclude}
    items: list[tuple[Path, tuple[str, ...]]] = []  # (file, path parts under its source)
    ignored: list[str] = []
    for s in map(Path, sources):
        if s.is_dir():
            shapes, others, _ = _walk(s)
            items += [
                (f, f.relative_to(s).parts) for f in shapes if not os.path.realpath(f).startswith(tuple(excluded))
            ]
            ignored += [str(f) for f in others]
        else:
            items.append((s, (s.name,)))
    grids: list[tuple[str, np.ndarray, str | None]] = []
    skipped: list[tuple[str, str]] = []
    meshes: list[tuple[Path, str | None]] = []
    top = {parts[0] for _, parts in items if len(parts) > 1}
    use_folders = folder_labels and len(top) >= 2
    for f, parts in items:
        label = parts[0] if use_folders and len(parts) > 1 else None
        if use_folders and label is None:
            skipped.append(
                (str(f), "no label: not in a class sub-folder (move it into one, or pass --no-folder-labels)")
            )
            continue
        if f.suffix.lower() in MESH_SUFFIXES:
            meshes.append((f, label))
            continue
        try:
            found = read_voxel_file(f)
        except DataError as exc:
            skipped.append((str(f), str(exc).split(": ", 1)[-1]))
            continue
        grids += [(str(f) if len(found) == 1 else f"{f}[{i}]", g, label) for i, g in enumerate(found)]
    side = resolution or (
        Counter(g.shape[0] for _, g, _ in grids).most_common(1)[0][0] if grids else SHAPES3D_RESOLUTION
    )
    for f, label in meshes:
        try:
            grids.append((str(f), voxelise_mesh(f, side), label))
        except DataError as exc:
            skipped.append((str(f), str(exc).split(": ", 1)[-1]))
    if not grids:
        why = f"; e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(
            f"no usable voxel grids or meshes in {', '.join(map(str, sources))}{why} "
            f"(give {', '.join(VOXEL_SUFFIXES + MESH_SUFFIXES)} files)"
        )
    vox = np.stack([g if g.shape[0] == side else resize_voxels(g[None], side)[0] for _, g, _ in grids])
    names = sorted({lab for _, _, lab in grids if lab is not None})
    labels = np.array([names.index(lab) for _, _, lab in grids], np.int64) if use_folders else None
    return VoxelSources(vox, labels, names if use_folders else [], [f for f, _, _ in grids], skipped, ignored, side)


# ---------------------------------------------------------------------------------------------------
# The voxel archive.


def write_voxel_archive(
    voxels: np.ndarray,
    labels: np.ndarray | None,
    class_names: Sequence[str],
    files: Sequence[str],
    dest: str | os.PathLike,
) -> Path:
    """Write a voxel archive (see the module docstring) at `dest`: a .zip, else a folder; atomically (a temporary
    sibling renamed into place)."""
    dest = Path(dest)
    meta = {
        "layout": VOXEL_LAYOUT,
        "resolution": int(voxels.shape[-1]),
        "count": int(len(voxels)),
        "class_names": list(class_names) if labels is not None else [],
        "files": list(files),
    }
    buf = io.BytesIO()
    arrays: dict[str, np.ndarray] = {"voxels": np.ascontiguousarray(voxels, np.uint8)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
    np.savez_compressed(buf, **arrays)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() == ".zip":
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp_name, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr("dataset.json", json.dumps(meta))
                zf.writestr(VOXELS_MEMBER, buf.getvalue())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return dest
    from .archive import _MARKER, _marker_text, _swap_in

    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        (tmp / "dataset.json").write_text(json.dumps(meta))
        (tmp / VOXELS_MEMBER).write_bytes(buf.getvalue())
        (tmp / _MARKER).write_text(_marker_text())
        os.chmod(tmp, 0o755)
        _swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def is_voxel_archive(meta: dict | None) -> bool:
    return meta is not None and meta.get("layout") == VOXEL_LAYOUT


def read_voxel_archive(path: str | os.PathLike, *, resolution: int | None = None) -> VoxelDataset:
    """A voxel archive (zip or folder) as a `VoxelDataset`, at `resolution` when given."""
    from .archive import read_dataset_json, read_zip_member

    path = Path(path)
    meta = read_dataset_json(path) or {}
    try:
        if path.is_file():
            with zipfile.ZipFile(path) as zf:
                raw = read_zip_member(zf, VOXELS_MEMBER)
        else:
            raw = (path / VOXELS_MEMBER).read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            vox = np.asarray(z["voxels"], np.uint8)
            labels = np.asarray(z["labels"], np.int64) if "labels" in z else None
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: the voxel archive is damaged ({str(exc)[:120]}); re-create it with `ganforge prepare`"
        ) from None
    names = [str(n) for n in meta.get("class_names") or []]
    if vox.ndim != 4 or len(set(vox.shape[1:])) != 1:
        raise DataError(f"{path}: {VOXELS_MEMBER} must hold cubes (N, R, R, R), not {vox.shape}; re-create it")
    if labels is not None and (
        len(labels) != len(vox) or labels.min(initial=0) < 0 or labels.max(initial=0) >= max(len(names), 1)
    ):
        raise DataError(
            f"{path}: its labels do not match its shapes or class names; re-create it with `ganforge prepare`"
        )
    ds = VoxelDataset(
        torch.from_numpy(np.minimum(vox, 1)),
        torch.from_numpy(labels) if labels is not None else None,
        names if labels is not None else [],
        path.stem,
    )
    return ds.resized(resolution) if resolution else ds


def load_voxels(path: Path, *, resolution: int | None = None, channels: int | None = None) -> VoxelDataset:
    """A voxel archive, or a raw folder of voxel/mesh files read in memory (as `prepare` would)."""
    if channels not in (None, 1):
        raise DataError(f"{path} holds voxel shapes (one occupancy channel); drop --channels")
    from .archive import read_dataset_json

    meta = read_dataset_json(path) if path.is_dir() or path.suffix.lower() == ".zip" else None
    if is_voxel_archive(meta):
        return read_voxel_archive(path, resolution=resolution)
    got = read_voxel_sources([path], resolution=resolution)
    ds = VoxelDataset(
        torch.from_numpy(got.voxels),
        torch.from_numpy(got.labels) if got.labels is not None else None,
        got.class_names,
        path.stem,
    )
    ds.left_out = list(got.skipped)
    return ds
