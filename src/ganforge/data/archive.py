"""Dataset archives in the format of NVlabs' stylegan2-ada-pytorch `dataset_tool.py`.

Layout (zip or folder): `00000/img00000000.png`, ... (1000 images per sub-folder) and a
`dataset.json` at the root: `{"labels": [["00000/img00000000.png", 3], ...]}` or `{"labels": null}`.
ganforge adds `"class_names": [...]` (ignored by stylegan2-ada-pytorch), so datasets move both ways.
Reading accepts any zip/folder of images, with or without `dataset.json`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class ArchiveData:
    """Images as uint8 (N, H, W, C) plus optional integer labels and class names."""

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # archive member names, one per image


def archive_member_name(index: int) -> str:
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    arr = img[:, :, 0] if img.shape[2] == 1 else img
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def dataset_json(labels: np.ndarray | None, class_names: Sequence[str], n: int) -> dict:
    entries = None
    if labels is not None:
        entries = [[archive_member_name(i), int(labels[i])] for i in range(n)]
    meta: dict = {"labels": entries}
    if class_names:
        meta["class_names"] = list(class_names)
    return meta


def _default_mode(base: int) -> int:
    """`base` (0o666 files, 0o777 folders) under the process umask: mkstemp/mkdtemp create 0600/0700,
    which would leave a dataset unreadable by other users of a shared machine."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def write_archive(data: ArchiveData, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `data` as a zip (dest ends in .zip) or a folder, atomically.

    Everything is written to a temporary sibling first and renamed into place at the end, so a crash
    or Ctrl-C never leaves a half-written dataset at `dest`.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise DataError(f"{dest} already exists: choose another destination or pass --overwrite")
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create folder {parent}: {exc.strerror}; choose a writable destination") from exc
    if not os.access(parent, os.W_OK):
        raise DataError(f"cannot write to {parent}: permission denied; choose a writable destination")
    n = len(data.images)
    meta = json.dumps(dataset_json(data.labels, data.class_names, n))
    if dest.suffix.lower() == ".zip":
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for i in range(n):
                    zf.writestr(archive_member_name(i), _png_bytes(data.images[i]))
                zf.writestr("dataset.json", meta)
            os.chmod(tmp, _default_mode(0o666))
            if dest.exists():
                dest.unlink()
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
        try:
            for i in range(n):
                p = tmpdir / archive_member_name(i)
                p.parent.mkdir(exist_ok=True)
                p.write_bytes(_png_bytes(data.images[i]))
            (tmpdir / "dataset.json").write_text(meta)
            os.chmod(tmpdir, _default_mode(0o777))
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmpdir, dest)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
    return dest


def _iter_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, bytes) of every image in a zip or folder, sorted by name."""
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTENSIONS))
                for name in names:
                    yield name, zf.read(name)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{path} is not a valid zip file; re-create it or point --data at a folder") from exc
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        for p in files:
            yield p.relative_to(path).as_posix(), p.read_bytes()


def read_dataset_json(path: Path) -> dict | None:
    """The parsed dataset.json of an archive, or None when it has none."""
    try:
        if path.is_file():
            with zipfile.ZipFile(path) as zf:
                if "dataset.json" not in zf.namelist():
                    return None
                return json.loads(zf.read("dataset.json"))
        f = path / "dataset.json"
        return json.loads(f.read_text()) if f.exists() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: dataset.json is not valid JSON ({exc}); fix or delete it") from exc
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a valid zip file; re-create it or point --data at a folder") from exc


def is_prepared_archive(path: Path) -> bool:
    """True for a zip/folder with a dataset.json (the StyleGAN2-ADA dataset format)."""
    return read_dataset_json(path) is not None


def read_archive(path: str | os.PathLike) -> ArchiveData:
    """Read a prepared archive (zip or folder) into memory. All images must share one size."""
    path = Path(path)
    meta = read_dataset_json(path) or {}
    label_map = {}
    if meta.get("labels"):
        label_map = {str(k).replace("\\", "/"): int(v) for k, v in meta["labels"]}
    images, names = [], []
    for name, raw in _iter_members(path):
        try:
            with Image.open(io.BytesIO(raw)) as im:
                arr = np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16") else im.convert("RGB"))
        except Exception as exc:
            raise DataError(f"{path}: cannot read {name} ({exc}); re-create the dataset with ganforge prepare") from exc
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if images and arr.shape != images[0].shape:
            raise DataError(
                f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]} but {names[0]} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; run `ganforge prepare` on it to give all images one size"
            )
        images.append(arr)
        names.append(name)
    if not images:
        raise DataError(f"{path} contains no images; add PNG/JPEG files or run `ganforge prepare` on your image folder")
    labels = None
    if label_map:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise DataError(f"{path}: dataset.json has no label for {missing[0]}; fix dataset.json or re-prepare")
        labels = np.array([label_map[n] for n in names], dtype=np.int64)
    class_names = list(meta.get("class_names") or [])
    if labels is not None and not class_names:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    return ArchiveData(images=np.stack(images), labels=labels, class_names=class_names, names=names)
