"""Dataset archives in the format of NVlabs' stylegan2-ada-pytorch `dataset_tool.py`.

Layout (zip or folder): `00000/img00000000.png`, ... (1000 images per sub-folder) and a
`dataset.json` at the root: `{"labels": [["00000/img00000000.png", 3], ...]}` or `{"labels": null}`.
ganforge adds `"class_names": [...]` and, for captioned data, `"captions": [["00000/img00000000.png", "red heart"],
...]` (both ignored by stylegan2-ada-pytorch), so datasets move both ways.
Reading accepts any zip/folder of images, with or without `dataset.json`.

ganforge also writes image-to-image data in the same format, told apart by an optional `"layout"` key
(stylegan2-ada-pytorch ignores it and sees every image of both sides as one unlabelled set):

- absent or `"images"`: the format above;
- `"paired"`: `"pairs": [[source member, target member], ...]` and `"domains": [source name, target name]`
  (e.g. `["edges", "photos"]`); `write_paired_archive` stores pair i as members 2i (source) and 2i+1;
- `"unpaired"`: `"domains": {"<name A>": [members...], "<name B>": [members...]}`, in that order (the
  first is domain A); `write_unpaired_archive` stores A's images first, then B's.

Zip members are only ever read into memory, never extracted, so a member's name (`../x`, `/etc/x`) never
becomes a path; a member that declares more than `MAX_MEMBER_BYTES` uncompressed, or that would expand
more than `MAX_COMPRESSION_RATIO` times (a zip bomb), is refused before any of it is decompressed.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
LAYOUTS = ("images", "paired", "unpaired")  # dataset.json "layout" values

# Zip safety. Read at call time, so tests may lower them.
MAX_MEMBER_BYTES = 256 * 2**20  # largest uncompressed zip member read (a 8192x8192 RGBA BMP is 256 MiB)
MAX_COMPRESSION_RATIO = 1000  # uncompressed / compressed size above which a member is a zip bomb ...
RATIO_MIN_BYTES = 2**20  # ... once it is this large (a small blank BMP may compress 500:1 and is harmless)
_CHUNK = 2**20  # bytes decompressed at a time


class UnsafeZipMember(DataError):
    """A zip member that is refused unread (too large, or an absurd compression ratio); `reason` says why."""

    def __init__(self, zip_path: str | os.PathLike, member: str, reason: str) -> None:
        super().__init__(
            f"{zip_path}: refusing to read member {member}: {reason}; remove it from the zip or unzip what you trust"
        )
        self.member, self.reason = member, reason


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why the member `info` must not be decompressed (from its declared sizes alone), or None."""
    if info.file_size > MAX_MEMBER_BYTES:
        return f"it declares {_mib(info.file_size)} uncompressed, over the {_mib(MAX_MEMBER_BYTES)} limit"
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
        return f"it would expand {ratio:,.0f}:1 (over {MAX_COMPRESSION_RATIO:,}:1), as zip bombs do"
    return None


def read_zip_member(zf: zipfile.ZipFile, name: str | zipfile.ZipInfo) -> bytes:
    """The bytes of one member, checked first (`zip_member_problem`) and then decompressed a chunk at a
    time, stopping at the size limit whatever the headers claim. Raises UnsafeZipMember, KeyError for a
    missing member, and zipfile's own errors (bad CRC, ...) for corrupt data."""
    info = name if isinstance(name, zipfile.ZipInfo) else zf.getinfo(name)
    where = zf.filename or "zip"
    problem = zip_member_problem(info)
    if problem:
        raise UnsafeZipMember(where, info.filename, problem)
    limit = min(info.file_size, MAX_MEMBER_BYTES)
    chunks, total = [], 0
    with zf.open(info) as f:
        while chunk := f.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise UnsafeZipMember(where, info.filename, f"it expands beyond {_mib(limit)}")
            chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class ArchiveData:
    """Images as uint8 (N, H, W, C) plus optional integer labels and class names."""

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # archive member names, one per image
    captions: list[str] | None = None  # one caption per image, for text-to-image models (None: not captioned)


def archive_member_name(index: int) -> str:
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    arr = img[:, :, 0] if img.shape[2] == 1 else img
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def dataset_json(
    labels: np.ndarray | None, class_names: Sequence[str], n: int, captions: Sequence[str] | None = None
) -> dict:
    entries = None
    if labels is not None:
        entries = [[archive_member_name(i), int(labels[i])] for i in range(n)]
    meta: dict = {"labels": entries}
    if class_names:
        meta["class_names"] = list(class_names)
    if captions is not None:
        if len(captions) != n:
            raise ValueError(f"{len(captions)} captions for {n} images")
        meta["captions"] = [[archive_member_name(i), str(captions[i])] for i in range(n)]
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
    wrote (see `_why_not_ours`): folders get a `.ganforge-dataset` marker file (JSON: format, ganforge
    version) for this. A symlinked `dest` is written through, at its target.
    """
    n = len(data.images)
    meta = dataset_json(data.labels, data.class_names, n, data.captions)
    return _write_members(n, lambda i: data.images[i], meta, dest, overwrite=overwrite)


def write_paired_archive(
    source: np.ndarray,
    target: np.ndarray,
    dest: str | os.PathLike,
    *,
    domains: Sequence[str] = ("A", "B"),
    overwrite: bool = False,
) -> Path:
    """Aligned pairs, uint8 (N, H, W, C) each (channels may differ), as a `"layout": "paired"` archive:
    pair i is members 2i (source) and 2i+1 (target). Atomic and overwrite-safe as `write_archive`."""
    if len(source) != len(target) or source.shape[1:3] != target.shape[1:3]:
        raise DataError(
            f"paired data needs one target per source image of the same size; got {source.shape} and {target.shape}"
        )
    n = len(source)
    meta = {
        "labels": None,
        "layout": "paired",
        "domains": _two_names(domains),
        "pairs": [[archive_member_name(2 * i), archive_member_name(2 * i + 1)] for i in range(n)],
    }
    return _write_members(2 * n, lambda k: (source if k % 2 == 0 else target)[k // 2], meta, dest, overwrite=overwrite)


def write_unpaired_archive(
    a: np.ndarray,
    b: np.ndarray,
    dest: str | os.PathLike,
    *,
    domains: Sequence[str] = ("A", "B"),
    overwrite: bool = False,
) -> Path:
    """Two domains, uint8 (N_A, H, W, C) and (N_B, H, W, C), as a `"layout": "unpaired"` archive: A's
    images first, then B's. Atomic and overwrite-safe as `write_archive`."""
    na, nb = len(a), len(b)
    name_a, name_b = _two_names(domains)
    meta = {
        "labels": None,
        "layout": "unpaired",
        "domains": {
            name_a: [archive_member_name(i) for i in range(na)],
            name_b: [archive_member_name(na + i) for i in range(nb)],
        },
    }
    return _write_members(na + nb, lambda k: a[k] if k < na else b[k - na], meta, dest, overwrite=overwrite)


def _two_names(domains: Sequence[str]) -> list[str]:
    names = [str(d) for d in domains]
    if len(names) != 2 or names[0] == names[1] or not all(names):
        raise DataError(f"two different, non-empty domain names are needed, not {names}")
    return names


def _write_members(
    n: int, image: Callable[[int], np.ndarray], meta: dict, dest: str | os.PathLike, *, overwrite: bool
) -> Path:
    """Write images 0..n-1 (`image(i)`, uint8 (H, W, C)) as `archive_member_name(i)` plus `meta` as
    dataset.json, atomically (see `write_archive`)."""
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
    meta_text = json.dumps(meta)
    tmp: Path | None = None
    try:
        if dest.suffix.lower() == ".zip":
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
            os.close(fd)
            tmp = Path(name)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for i in range(n):
                    zf.writestr(archive_member_name(i), _png_bytes(image(i)))
                zf.writestr("dataset.json", meta_text)
            os.chmod(tmp, _default_mode(0o666))
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
            (tmp / _MARKER).write_text(_marker_text())  # first: an abandoned temp folder is recognisably ours
            for i in range(n):
                p = tmp / archive_member_name(i)
                p.parent.mkdir(exist_ok=True)
                p.write_bytes(_png_bytes(image(i)))
            (tmp / "dataset.json").write_text(meta_text)
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


def _bad_zip(path: Path) -> DataError:
    return DataError(f"{path} is not a valid zip file; re-create it, or use a folder of images instead")


def _iter_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, bytes) of every image in a zip or folder, sorted by name."""
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                infos = sorted(
                    (i for i in zf.infolist() if i.filename.lower().endswith(IMAGE_EXTENSIONS)),
                    key=lambda i: i.filename,
                )
                for info in infos:
                    yield info.filename, read_zip_member(zf, info)
        except zipfile.BadZipFile as exc:
            raise _bad_zip(path) from exc
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
                meta = json.loads(read_zip_member(zf, "dataset.json"))
        else:
            f = path / "dataset.json"
            if not f.exists():
                return None
            meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: dataset.json is not valid JSON ({str(exc)[:200]}); fix or delete it") from exc
    except zipfile.BadZipFile as exc:
        raise _bad_zip(path) from exc
    if not isinstance(meta, dict):
        raise DataError(f'{path}: dataset.json must hold an object such as {{"labels": null}}; fix or delete it')
    return meta


def _layout_of(path: Path, meta: dict | None) -> str:
    layout = (meta or {}).get("layout") or "images"
    if layout not in LAYOUTS:
        raise DataError(
            f"{path}: dataset.json has layout {layout!r}, which this ganforge does not know ({', '.join(LAYOUTS)}); "
            "upgrade ganforge or re-create the dataset"
        )
    return str(layout)


def read_layout(path: str | os.PathLike) -> str:
    """What an archive holds: "images" (also for any zip/folder without dataset.json), "paired" or "unpaired"."""
    path = Path(path)
    return _layout_of(path, read_dataset_json(path))


def is_prepared_archive(path: Path) -> bool:
    """True for a zip/folder with a dataset.json (the StyleGAN2-ADA dataset format)."""
    return read_dataset_json(path) is not None


def _labels_of(path: Path, meta: dict) -> tuple[dict[str, int], list[str]]:
    """dataset.json's labels as {member: class index} and its class names, checked: `labels` is null or
    a list of [member name, integer label] pairs (the stylegan2-ada-pytorch format), labels are from 0,
    below len(class_names) when names are given, and below 2^31."""
    bad = f"{path}: dataset.json has a malformed"
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise DataError(f'{bad} "class_names" (expected a list of strings); fix dataset.json or re-prepare')
    class_names = list(names or [])
    raw = meta.get("labels")
    if not raw:
        return {}, class_names
    if not isinstance(raw, list):
        raise DataError(f'{bad} "labels" (expected null or a list of [file, label] pairs); fix dataset.json or re-prepare')
    out: dict[str, int] = {}
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DataError(f'{bad} "labels" entry {str(entry)[:60]!r} (expected [file, label]); fix dataset.json or re-prepare')
        value = entry[1]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise DataError(f"{bad} label {str(value)[:40]!r} for {entry[0][:80]!r} (expected a whole number from 0); fix dataset.json")
        if class_names and value >= len(class_names):
            raise DataError(
                f"{path}: dataset.json gives {entry[0][:80]!r} label {value}, but names only {len(class_names)} classes; fix dataset.json"
            )
        out[entry[0].replace("\\", "/")] = value
    return out, class_names


def _captions_of(path: Path, meta: dict) -> dict[str, str] | None:
    """dataset.json's captions as {member: caption}, checked (None when the data has none)."""
    from ..spec import text_problem

    raw = meta.get("captions")
    if raw is None:
        return None
    bad = f"{path}: dataset.json has a malformed"
    if not isinstance(raw, list):
        raise DataError(f'{bad} "captions" (expected a list of [file, caption] pairs); fix dataset.json or re-prepare')
    out: dict[str, str] = {}
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise DataError(f'{bad} "captions" entry {str(entry)[:60]!r} (expected [file, caption]); fix dataset.json or re-prepare')
        problem = text_problem(entry[1], "it")
        if problem:
            raise DataError(f"{path}: dataset.json's caption for {entry[0][:80]!r}: {problem}")
        out[entry[0].replace("\\", "/")] = entry[1]
    return out


def read_archive(path: str | os.PathLike) -> ArchiveData:
    """Read a prepared archive (zip or folder) into memory. All images must share one size."""
    path = Path(path)
    meta = read_dataset_json(path) or {}
    label_map, class_names = _labels_of(path, meta)
    images, names = [], []
    for name, raw in _iter_members(path):
        try:
            with Image.open(io.BytesIO(raw)) as im:
                arr = np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16") else im.convert("RGB"))
        except Exception as exc:
            raise DataError(f"{path}: cannot read {name} ({exc}); re-create the dataset with ganforge prepare") from exc
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if images and arr.shape[:2] != images[0].shape[:2]:
            raise DataError(
                f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]} but {names[0]} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; run `ganforge prepare` on it to give all images one size"
            )
        images.append(arr)
        names.append(name)
    if not images:
        raise DataError(f"{path} contains no images; add PNG/JPEG files or run `ganforge prepare` on your image folder")
    if len({im.shape[2] for im in images}) > 1:  # grayscale beside RGB (e.g. both sides of a paired archive)
        images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]
    labels = None
    if label_map:
        missing = [n for n in names if n not in label_map]
        if missing:
            raise DataError(f"{path}: dataset.json has no label for {missing[0]}; fix dataset.json or re-prepare")
        labels = np.array([label_map[n] for n in names], dtype=np.int64)
    if labels is not None and not class_names:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    caption_map, captions = _captions_of(path, meta), None
    if caption_map is not None:
        missing = [n for n in names if n not in caption_map]
        if missing:
            raise DataError(f"{path}: dataset.json has no caption for {missing[0]}; fix dataset.json or re-prepare")
        captions = [caption_map[n] for n in names]
    return ArchiveData(images=np.stack(images), labels=labels, class_names=class_names, names=names, captions=captions)


@dataclass
class SidesData:
    """The two sides of a paired or unpaired archive, uint8 (N, H, W, C) each. For "paired", a[i] is the
    source of target b[i]; for "unpaired", a and b are independent domains (of any sizes N_A, N_B)."""

    layout: str  # "paired" | "unpaired"
    a: np.ndarray
    b: np.ndarray
    domains: list[str]  # [name of A (source), name of B (target)]
    names_a: list[str] = field(default_factory=list)  # member names
    names_b: list[str] = field(default_factory=list)


def read_paired_archive(path: str | os.PathLike) -> SidesData:
    """A `"layout": "paired"` archive (zip or folder): sources and targets, aligned."""
    return _read_sides(Path(path), "paired")


def read_unpaired_archive(path: str | os.PathLike) -> SidesData:
    """A `"layout": "unpaired"` archive (zip or folder): the images of domain A and of domain B."""
    return _read_sides(Path(path), "unpaired")


def read_sides(path: str | os.PathLike) -> SidesData:
    """A paired or unpaired archive, whichever it is."""
    path = Path(path)
    layout = read_layout(path)
    if layout == "images":
        raise DataError(
            f"{path} holds plain images, not paired or unpaired data; re-create it with "
            "`ganforge prepare --paired` or `--unpaired` from a folder with two sub-folders (A/ and B/)"
        )
    return _read_sides(path, layout)


def _side_members(path: Path, meta: dict, layout: str) -> tuple[list[str], list[str], list[str]]:
    """(members of A, members of B, domain names) from a two-sided dataset.json, validated."""
    fix = f"re-create it with `ganforge prepare --{layout}`"

    def bad(what: str) -> DataError:
        return DataError(f"{path}: dataset.json {what}; {fix}")

    def members(value: object, what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            raise bad(f"{what} must be a list of member names")
        return list(value)

    domains = meta.get("domains")
    if layout == "paired":
        pairs = meta.get("pairs")
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise bad('needs "pairs": [[source member, target member], ...] for the paired layout')
        if not pairs:
            raise bad("lists no pairs")
        a = members([p[0] for p in pairs], "pairs")
        b = members([p[1] for p in pairs], "pairs")
        if domains is None:
            domains = ["A", "B"]
        if not (isinstance(domains, list) and len(domains) == 2 and all(isinstance(d, str) for d in domains)):
            raise bad('"domains" must name the two sides, e.g. ["edges", "photos"]')
        names = list(domains)
    else:
        if not (isinstance(domains, dict) and len(domains) == 2):
            raise bad('needs "domains": {"<name A>": [members...], "<name B>": [members...]} for the unpaired layout')
        names = [str(k) for k in domains]
        a, b = (members(v, f"domain {k!r}") for k, v in domains.items())
        if not a or not b:
            raise bad(f"domain {names[0] if not a else names[1]!r} lists no images")
    for m in (*a, *b):
        parts = m.replace("\\", "/").split("/")
        if m.startswith(("/", "\\")) or ".." in parts or (len(m) > 1 and m[1] == ":"):
            raise bad(f"names {m!r}, which lies outside the dataset")
    return a, b, names


def _decode(path: Path, name: str, raw: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16") else im.convert("RGB"))
    except Exception as exc:
        raise DataError(f"{path}: cannot read {name} ({exc}); re-create the dataset with ganforge prepare") from exc
    return arr[:, :, None] if arr.ndim == 2 else arr


def _read_sides(path: Path, layout: str) -> SidesData:
    meta = read_dataset_json(path)
    found = _layout_of(path, meta)
    if meta is None or found != layout:
        raise DataError(
            f"{path} is not a {layout} dataset (its layout is {found!r}); "
            f"re-create it with `ganforge prepare --{layout}`, or train a model for {found} data"
        )
    names_a, names_b, domains = _side_members(path, meta, layout)
    cache: dict[str, np.ndarray] = {}  # a member listed twice is decoded once

    def load(read: Callable[[str], bytes], side: list[str]) -> np.ndarray:
        out = []
        for name in side:
            if name not in cache:
                try:
                    raw = read(name)
                except (KeyError, FileNotFoundError, IsADirectoryError):
                    raise DataError(
                        f"{path}: dataset.json names {name}, which is not in the dataset; re-create it with "
                        f"`ganforge prepare --{layout}`"
                    ) from None
                cache[name] = _decode(path, name, raw)
            arr = cache[name]
            if out and arr.shape != out[0].shape:
                raise DataError(
                    f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} but {side[0]} is "
                    f"{out[0].shape[1]}x{out[0].shape[0]}x{out[0].shape[2]}; re-create it with `ganforge prepare --{layout}`"
                )
            out.append(arr)
        return np.stack(out)  # (N, H, W, C)

    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                a = load(lambda n: read_zip_member(zf, n), names_a)
                b = load(lambda n: read_zip_member(zf, n), names_b)
        except zipfile.BadZipFile as exc:
            raise _bad_zip(path) from exc
    else:
        a = load(lambda n: (path / n).read_bytes(), names_a)
        b = load(lambda n: (path / n).read_bytes(), names_b)
    if a.shape[1:3] != b.shape[1:3] or (layout == "unpaired" and a.shape[1:] != b.shape[1:]):
        raise DataError(
            f"{path}: the two sides' images differ in size ({a.shape[2]}x{a.shape[1]} and {b.shape[2]}x{b.shape[1]}); "
            f"re-create it with `ganforge prepare --{layout}` at one --resolution"
        )
    return SidesData(layout, a, b, domains, names_a, names_b)
