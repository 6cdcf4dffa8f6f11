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
import re
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


_MARKER = ".ganforge-dataset"  # inside every folder dataset ganforge writes: what --overwrite may replace
_MEMBER = re.compile(r"\d{5}/img\d{8}\.png")  # archive_member_name's layout (also stylegan2-ada's dataset_tool)
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.(tmp|old)")  # write_archive's temporary siblings (tempfile names)


def _marker_text() -> str:
    from .. import __version__

    return json.dumps({"format": "stylegan2-ada dataset", "ganforge": __version__}) + "\n"


def _looks_like_dataset_folder(path: str | os.PathLike) -> bool:
    """A folder ganforge wrote: it holds the marker, or (older versions wrote none) a dataset.json beside
    a `00000/img00000000.png`-style sub-folder. Used to keep earlier outputs out of a source scan."""
    path = Path(path)
    if (path / _MARKER).is_file():
        return True
    if not (path / "dataset.json").is_file():
        return False
    try:
        with os.scandir(path) as entries:
            subs = [e.name for e in entries if e.is_dir(follow_symlinks=False) and re.fullmatch(r"\d{5}", e.name)]
        return any(_MEMBER.fullmatch(f"{d}/{n}") for d in subs for n in os.listdir(path / d))
    except OSError:
        return False


def _why_not_ours(dest: Path) -> str | None:
    """Why ganforge may not replace the existing `dest`, or None when ganforge wrote it all.

    A folder qualifies only with the `.ganforge-dataset` marker and nothing but `dataset.json` and
    `NNNNN/imgNNNNNNNN.png` files beside it, so a user's notes dropped into a dataset folder are never
    deleted. A zip qualifies when it is a readable zip holding `dataset.json` and otherwise only members in
    that image layout (a marker member is tolerated): exactly what ganforge, or stylegan2-ada's
    dataset_tool, writes. Any other zip (a backup, a zip of photos, a corrupt file) is refused.
    """
    if dest.is_dir():
        if not (dest / _MARKER).is_file():
            return f"it has no {_MARKER} marker"
        names = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_symlink() or not p.is_dir()]
    else:
        try:
            with zipfile.ZipFile(dest) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, OSError):
            return "it is not a readable zip"
        if "dataset.json" not in names:
            return "it has no dataset.json"
    foreign = [n for n in names if n not in ("dataset.json", _MARKER) and not _MEMBER.fullmatch(n)]
    if foreign:
        return "it holds " + ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return None


def _check_replaceable(dest: Path) -> None:
    """Raise DataError unless `dest` (which exists) is a dataset ganforge wrote, and so safe to replace."""
    why = _why_not_ours(dest)
    if why:
        raise DataError(
            f"{dest} is not a dataset ganforge wrote ({why}); refusing to replace it; "
            "remove it yourself or choose another destination"
        )


def _missing_parents(folder: Path) -> list[Path]:
    """The ancestors of `folder` (itself included) that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _swap_in(tmp: Path, dest: Path) -> None:
    """Put the finished `tmp` at `dest`. An existing `dest` is first renamed aside (never deleted before the
    new dataset is in place) and put back if the swap fails; it is deleted only once `tmp` is `dest`."""
    if not dest.exists():
        os.replace(tmp, dest)
        return
    if dest.is_file():
        os.replace(tmp, dest)  # atomic for a file: readers see the old zip or the new one
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    old = aside / dest.name
    try:
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            if not dest.exists():
                os.replace(old, dest)
            raise
    except BaseException:
        if not old.exists():
            shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_archive(data: ArchiveData, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `data` as a zip (dest ends in .zip) or a folder, atomically.

    Everything is written to a temporary sibling first and renamed into place at the end, so a crash
    or Ctrl-C never leaves a half-written dataset at `dest` (nor the folders created to hold it), and an
    old dataset is replaced only once the new one is complete. `overwrite` replaces only what ganforge
    wrote (see `_foreign_entries`): folders get a `.ganforge-dataset` marker file (JSON: format, ganforge
    version) for this. A symlinked `dest` is written through, at its target.
    """
    dest = Path(os.path.realpath(os.path.expanduser(dest)))
    if dest.exists():
        if not overwrite:
            raise DataError(f"{dest} already exists: choose another destination or pass --overwrite")
        if dest.is_dir() == (dest.suffix.lower() == ".zip"):
            kind = "folder" if dest.is_dir() else "file"
            raise DataError(
                f"{dest} is a {kind}, which --overwrite will not replace; remove it or choose another destination"
            )
        _check_replaceable(dest)
    parent = dest.parent
    created = _missing_parents(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create folder {parent}: {exc.strerror}; choose a writable destination") from exc
    if not os.access(parent, os.W_OK):
        raise DataError(f"cannot write to {parent}: permission denied; choose a writable destination")
    n = len(data.images)
    meta = json.dumps(dataset_json(data.labels, data.class_names, n))
    tmp: Path | None = None
    try:
        if dest.suffix.lower() == ".zip":
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
            os.close(fd)
            tmp = Path(name)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for i in range(n):
                    zf.writestr(archive_member_name(i), _png_bytes(data.images[i]))
                zf.writestr("dataset.json", meta)
            os.chmod(tmp, _default_mode(0o666))
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
            (tmp / _MARKER).write_text(_marker_text())  # first: an abandoned temp folder is recognisably ours
            for i in range(n):
                p = tmp / archive_member_name(i)
                p.parent.mkdir(exist_ok=True)
                p.write_bytes(_png_bytes(data.images[i]))
            (tmp / "dataset.json").write_text(meta)
            os.chmod(tmp, _default_mode(0o777))
        _swap_in(tmp, dest)
    except BaseException:
        if tmp is not None and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            tmp.unlink(missing_ok=True)
        for folder in created:  # deepest first; only the ones this call made, and only while empty
            try:
                folder.rmdir()
            except OSError:
                break
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
