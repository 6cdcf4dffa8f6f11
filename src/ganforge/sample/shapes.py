"""Seeing voxel shapes on any machine: shaded renderings in numpy (no GPU, no display, no plotting library), meshes
by marching cubes (`scikit-image`), and walks between shapes.

Volumes are (B, 1, R, R, R) in [-1, 1] (occupancy p as 2p - 1, axes x, y, z with y up; see `spec` DATA_KINDS).

The renderer draws what a voxel viewer shows: every occupied voxel face that borders an empty voxel and faces the
camera is sampled densely, projected orthographically from one fixed view (`YAW`, `PITCH`), kept where it is
nearest (a z-buffer) and shaded by its normal (Lambert, one light, plus ambient), at twice the size and then
averaged down (anti-aliasing). The same shape always gives the same picture, so grids compare over training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, MissingDependencyError

YAW = math.radians(-35.0)  # the fixed view: turned 35 degrees about the up axis ...
PITCH = math.radians(28.0)  # ... and looking down 28 degrees
LIGHT = np.array([-0.35, 0.75, 0.55])  # light direction in view coordinates (x right, y up, z toward the camera)
COLOUR = np.array([0.38, 0.55, 0.82])  # base colour of the shapes (RGB in [0, 1])
EXTENT = 1.35  # half the side of the square the view shows, in world units (the grid spans [-1, 1]^3)


def render_size(resolution: int) -> int:
    """Pixels on a side of a rendering of an R^3 grid: about 3 px per voxel, at least 64."""
    return max(64, 3 * resolution)


def _view() -> np.ndarray:
    """World -> view rotation: yaw about y, then pitch about x."""
    cy, sy, cp, sp = math.cos(YAW), math.sin(YAW), math.cos(PITCH), math.sin(PITCH)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rx @ ry


def render_voxels(occ: np.ndarray, size: int | None = None) -> np.ndarray:
    """A shaded picture of one occupancy grid (R, R, R) (bool, or > 0 occupied): uint8 (size, size, 3) on white."""
    occ = np.asarray(occ) > 0
    r = occ.shape[0]
    size = size or render_size(r)
    big = 2 * size  # supersampled
    rgb = np.ones((big, big, 3))
    if occ.any():
        m = _view()
        light = LIGHT / np.linalg.norm(LIGHT)
        voxel = 2.0 / r
        k = int(math.ceil(1.6 * big * voxel / (2 * EXTENT))) + 1  # samples along a face edge: under a pixel apart
        t = (np.arange(k) + 0.5) / k - 0.5  # (k,) offsets across a face, in voxels
        padded = np.pad(occ, 1)
        pts, shade = [], []
        for axis in range(3):
            for sign in (-1, 1):
                normal = np.zeros(3)
                normal[axis] = sign
                nv = m @ normal
                if nv[2] <= 1e-6:  # faces away from the camera
                    continue
                nb = np.roll(padded, -sign, axis=axis)[1:-1, 1:-1, 1:-1]  # the neighbour across this face
                idx = np.argwhere(occ & ~nb)  # (F, 3) voxels with this face exposed
                if not len(idx):
                    continue
                centre = -1.0 + (idx + 0.5) * voxel  # (F, 3)
                centre[:, axis] += sign * 0.5 * voxel
                a, b = [i for i in range(3) if i != axis]
                grid = np.zeros((k * k, 3))
                grid[:, a] = np.repeat(t, k) * voxel
                grid[:, b] = np.tile(t, k) * voxel
                p = (centre[:, None, :] + grid[None]).reshape(-1, 3)  # (F*k*k, 3)
                pts.append(p @ m.T)
                shade.append(np.full(len(p), 0.35 + 0.65 * max(float(nv @ light), 0.0)))
        v = np.concatenate(pts)
        s = np.concatenate(shade)
        px = np.floor((v[:, 0] / EXTENT + 1) * 0.5 * big).astype(np.int64)
        py = np.floor((1 - v[:, 1] / EXTENT) * 0.5 * big).astype(np.int64)
        ok = (px >= 0) & (px < big) & (py >= 0) & (py < big)
        px, py, depth, s = px[ok], py[ok], v[ok, 2], s[ok]
        order = np.argsort(-depth, kind="stable")  # nearest first
        pix = (py * big + px)[order]
        first = np.unique(pix, return_index=True)[1]  # the nearest sample of each pixel
        flat = rgb.reshape(-1, 3)
        flat[pix[first]] = s[order][first, None] * COLOUR[None]
    img = rgb.reshape(size, 2, size, 2, 3).mean((1, 3))  # 2x2 average: anti-aliased
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def render_volumes(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Volumes (B, 1, R, R, R) in [-1, 1] -> renderings (B, 3, S, S) in [-1, 1] (occupied: > 0)."""
    vol = x.detach().float().cpu()
    size = size or render_size(int(vol.shape[-1]))
    imgs = [render_voxels(v[0].numpy() > 0, size) for v in vol]
    out = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()  # (B, S, S, 3) -> (B, 3, S, S)
    return out.mul_(2.0 / 255.0).sub_(1.0)


# ---------------------------------------------------------------------------------------------------
# Meshes.


def marching_cubes(volume: np.ndarray, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The surface of a volume (R, R, R) in [-1, 1] at `level` (0: occupancy 1/2) as (vertices (V, 3) in the
    grid's [-1, 1]^3 world, x y z with y up; faces (F, 3), outward). Empty: no vertices, no faces."""
    try:
        from skimage import measure
    except ImportError:
        raise MissingDependencyError("writing meshes needs scikit-image: pip install 'ganforge[shapes]'") from None
    vol = np.pad(np.asarray(volume, np.float32), 1, constant_values=-1.0)  # closed at the grid's border
    if not (vol.max() > level > vol.min()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    verts, faces, _, _ = measure.marching_cubes(vol, level=level)
    r = volume.shape[0]
    verts = (verts - 1 + 0.5) * (2.0 / r) - 1.0  # padded index -> voxel centre coordinates
    tri = verts[faces]  # (F, 3, 3)
    if np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() < 0:  # signed volume: faces inward
        faces = faces[:, ::-1]  # wound counter-clockwise seen from outside, as OBJ/PLY viewers expect
    return verts.astype(np.float32), np.ascontiguousarray(faces, np.int64)


def write_obj(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    with open(path, "w", encoding="ascii") as f:
        f.write("# ganforge voxel shape (marching cubes)\n")
        f.writelines(f"v {x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in verts)
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)  # OBJ indices are 1-based
    return path


def write_ply(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    with open(path, "w", encoding="ascii") as f:
        f.write(
            f"ply\nformat ascii 1.0\ncomment ganforge voxel shape\nelement vertex {len(verts)}\n"
            "property float x\nproperty float y\nproperty float z\n"
            f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        f.writelines(f"{x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in verts)
        f.writelines(f"3 {a} {b} {c}\n" for a, b, c in faces)
    return path


def write_meshes(volumes: torch.Tensor, names: Sequence[str], folder: str | os.PathLike) -> list[Path]:
    """One NAME.obj and NAME.ply per volume (B, 1, R, R, R); an empty shape gets none. Returns the files written."""
    folder = Path(folder)
    out = []
    for v, name in zip(volumes.detach().float().cpu(), names):
        verts, faces = marching_cubes(v[0].numpy())
        if len(faces):
            out += [write_obj(folder / f"{name}.obj", verts, faces), write_ply(folder / f"{name}.ply", verts, faces)]
    return out


# ---------------------------------------------------------------------------------------------------
# Walks.


def render_walk(model: Any, z: torch.Tensor, label: int | str | None, first_seed: int) -> torch.Tensor:
    """Renderings (S, T, 3, H, W) in [-1, 1] of the shapes along a latent walk z (S, T, *latent_shape) (made by
    `sample.interpolate.walk`); one class for the whole walk: `label`, or by default the first seed's."""
    from .latents import labels_for_seeds

    if model.spec.kind != "voxels":
        raise ConfigError("render_walk draws voxel shapes; use sample.interpolate.latent_walk for images")
    s, t = z.shape[:2]
    labels = None
    if model.spec.num_classes:
        lab = labels_for_seeds([first_seed], model.spec.num_classes, model.label_index(label))
        labels = None if lab is None else lab.expand(s * t).clone()
    elif label is not None:
        model.label_index(label)  # raises the "not class-conditional" error
    vol = model.sample_latents(z.reshape(s * t, *z.shape[2:]), labels)  # (S*T, 1, R, R, R)
    img = render_volumes(vol)
    return img.view(s, t, *img.shape[1:])
