"""The `ganforge prepare` pipeline: a messy pile of images -> one square size, one colour mode, labels.

Sources are folders (searched recursively), zips and single image files, in any mix. Each image is read
with PIL, turned upright (EXIF orientation), flattened onto a background colour (transparency is
composited at full size, before any resizing, so edges blend with the colour the model will see), made
square (`pad`, `crop` or `stretch`), resized with the chosen filter and converted to RGB or grayscale.
`nearest` enlarges pixel art exactly but drops whole pixels when reducing (broken outlines, speckle), so
an image it would reduce is reduced with the area filter `box` instead; the summary says how many were.
A file that cannot be used is skipped with a reason, never fatal: one bad download must not cost a
user the other 10,000 images. `prepare_to` writes the result in the StyleGAN2-ADA archive format
(see `archive.py`) plus a per-file CSV report of everything that was left out.

Rules a user may need to know (the CLI help repeats them):

- Files are read in a stable order: sources in the order given, files sorted by path within each
  source. `dedupe` keeps the first of a group of identical prepared images in this order.
- Only .png .jpg .jpeg .gif .webp .bmp .tif .tiff files are read; other files (notes, .DS_Store,
  Thumbs.db, ...) and hidden files or folders (names starting with '.', macOS `__MACOSX/` debris) are
  counted as *ignored*, listed in the report, and otherwise left alone.
- Sub-folders of a source folder that are datasets ganforge wrote (a `.ganforge-dataset` marker, or
  older ones: `dataset.json` beside `00000/img00000000.png`), and the hidden temporary folders it
  writes while preparing, are not read: their images are copies. The summary and the report say so.
  A source folder that is itself a dataset is read as usual (re-preparing at another size).
- The destination must lie outside every source (and the labels file): one that is, contains or sits
  inside one, after resolving symlinks and `..`, is refused before anything is read or written.
- Hostile files never stop a run and are never trusted: only regular files are opened (a FIFO, device or
  socket named like an image, a broken symlink or a symlink loop is skipped with the reason); an image whose
  header claims more than `pixel_limit()` pixels (PIL's decompression-bomb threshold, 89,478,485 by default)
  is refused before decoding, with the limit in the reason. Zip members are read into memory, never
  extracted, and a member named with an absolute path or `..` is skipped ("unsafe name"), as is the
  earlier of two members with one name (zip readers see the later one); encrypted members are skipped.
- The *root* of a folder or zip source is the deepest folder that holds all its images, so a zip that
  wraps everything in one top folder behaves like that folder.
- Sub-folder labels: when no labels file is given and images sit in two or more first-level
  sub-folders under a root, each image's label is its first sub-folder's name. Images directly in the
  root then have no class and are skipped with reason "no label". A single sub-folder is not a labelling.
- A labels file (CSV `file,label` or JSON `{file: label}` / `[[file, label], ...]`) may name files by
  path relative to the source root, relative to the labels file's folder, by any trailing part of
  their path (`images/x.png`), or by bare file name. Images it does not list are skipped with reason
  "no label in LABELS".
- Class names are sorted (numerically when every name is an integer), and labels index that list.
- Automatic resolution (`resolution=None`): the most common image size wins (ties: the larger; among
  1,000 evenly spaced files when there are more, which reads headers only), and
  the side is its longer side for `pad`/`stretch`, its shorter side for `crop`, so the most typical
  image is never upscaled.
- Paired and unpaired data (`prepare_two_sided`, `ganforge prepare --paired/--unpaired`): the source is a
  folder with two sub-folders (trainA/ + trainB/, A/ + B/, or exactly two others; sorted, the first is
  side A) or, for paired data, a folder of side-by-side A|B images, split in the middle. Each side goes
  through the pipeline above (labels do not apply: the sub-folders are the sides), side B at side A's
  resolution. Paired files are matched by their path under their side's folder without the extension
  (A/train/1.png <-> B/train/1.jpg); one without a partner is skipped with the reason. With `dedupe`,
  a pair is dropped only when both of its sides repeat an earlier pair.
- 16-bit images are scaled to 8 bits (x * 255 / 65535), not clipped; 32-bit integer ("I") images
  are assumed to hold 16-bit data, as PIL loads 16-bit PNG and TIFF; float ("F") images are assumed to
  lie in [0, 1] when their maximum is at most 1, else in [0, 255].
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import sys
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor

from ..errors import ConfigError, DataError
from ..images import (
    convert,
    decode,
    flatten_alpha,
    header_size,
    open_image,
    read_problem,
    shown_path,
    too_large,
)
from ..images import pixel_limit as pixel_limit  # re-exported: the limit the module docstring names
from ..text import text_problem
from ..vocab import FITS, RESAMPLE_FILTERS
from .archive import (
    _TEMP,
    IMAGE_EXTENSIONS,
    ArchiveData,
    UnsafeZipMember,
    _check_replaceable,
    _looks_like_dataset_folder,
    read_zip_member,
    write_archive,
    write_paired_archive,
    write_unpaired_archive,
    zip_member_problem,
)

FILTERS = {name: getattr(Image.Resampling, name.upper()) for name in RESAMPLE_FILTERS}
MIN_RESOLUTION = 4
MAX_RESOLUTION = 16384
_LABEL_KEYS = ("label", "class", "category")  # tried in this order for JSON objects / CSV headers
_FILE_HEADERS = ("file", "filename", "file_name", "path", "image", "img", "name")
_WINDOW = 512  # files in flight per process-pool round: bounds memory when reading big zips
_SIZE_SAMPLE = 1000  # files whose size is read to choose an automatic resolution


@dataclass
class PrepareOptions:
    """How to turn source images into a dataset. Field names match the `ganforge prepare` options."""

    resolution: int | None = None  # output side in pixels; None: automatic (see the module docstring)
    fit: str = "pad"  # pad (letterbox with the background colour) | crop (centre square) | stretch
    filter: str = "lanczos"  # nearest | box | bilinear | bicubic | lanczos; nearest: exact enlarging, box reduces
    background: str = "white"  # PIL colour name or #rrggbb: transparency is composited onto it, pad fills with it
    channels: int = 3  # 3 = RGB, 1 = grayscale
    dedupe: bool = False  # drop images whose pixels are identical after preparation (keep the first)
    labels: str | None = None  # CSV (file,label) or JSON ({file: label} or [[file, label], ...]) file
    label_key: str | None = None  # JSON field / CSV column holding the label [default: label, class, category]
    folder_labels: bool = True  # without a labels file: label images by their first sub-folder's name
    captions: str | None = None  # CSV (file,caption) or JSON ({file: caption}): one caption per image (text-to-image)
    workers: int = 1  # processes that decode images (0: one per CPU core)
    half: str | None = None  # "left" | "right": that half of side-by-side A|B images (paired data); None: all

    def validate(self) -> None:
        """Raise ConfigError with the fix for the first invalid field: errors here cost no image reads."""
        r = self.resolution
        if r is not None:
            if isinstance(r, bool) or not isinstance(r, int):
                raise ConfigError(f"--resolution must be a whole number of pixels such as 64, not {r!r}")
            if r < MIN_RESOLUTION:
                raise ConfigError(f"--resolution {r} is too small: use {MIN_RESOLUTION} or more (e.g. 64 or 256)")
            if r > MAX_RESOLUTION:
                raise ConfigError(f"--resolution {r} is too large: use at most {MAX_RESOLUTION}")
        if self.fit not in FITS:
            raise ConfigError(f"unknown --fit '{self.fit}': use one of {', '.join(FITS)}")
        if self.filter not in FILTERS:
            raise ConfigError(f"unknown --filter '{self.filter}': use one of {', '.join(FILTERS)}")
        background_rgb(self.background)
        if self.channels not in (1, 3):
            raise ConfigError(f"--channels must be 1 (grayscale) or 3 (RGB), not {self.channels}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 (one per CPU core) or more, not {self.workers}")
        if self.half not in (None, "left", "right"):
            raise ConfigError(f"half must be 'left', 'right' or None, not {self.half!r}")


@dataclass
class PreparedData:
    """The prepared images and everything a user needs to trust them: what was kept, dropped and why."""

    images: np.ndarray  # uint8 (N, H, W, C), C = 1 or 3
    labels: np.ndarray | None  # int64 (N,) indices into class_names, or None when unlabelled
    class_names: list[str]
    files: list[str]  # source of each kept image (a path, or "archive.zip:member")
    captions: list[str] | None = None  # one per kept image, with --captions
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped, kept)
    ignored: list[str] = field(default_factory=list)  # non-image and hidden files, left alone
    in_datasets: list[tuple[str, int]] = field(default_factory=list)  # (folder, files): earlier outputs, not read
    resolution: int = 0
    dest: Path | None = None  # set by prepare_to
    report: Path | None = None  # set by prepare_to
    filter: str = ""  # the --filter asked for
    reduced: np.ndarray | None = None  # bool (N,): kept images reduced with box because the filter was nearest

    @property
    def filter_note(self) -> str:
        """The summary's line on how images were resized, when it differs from the --filter asked for."""
        return filter_note(self.filter, self.reduced)

    def summary(self) -> dict:
        return {
            "kept": len(self.files),
            "skipped": len(self.skipped),
            "duplicates": len(self.duplicates),
            "ignored": len(self.ignored),
            "in_datasets": sum(n for _, n in self.in_datasets),
            "classes": len(self.class_names) if self.labels is not None else 0,
            "captioned": self.captions is not None,
            "resolution": self.resolution,
            "channels": int(self.images.shape[3]) if self.images.ndim == 4 else 0,
        }


class PreparedVoxels(PreparedData):
    """Voxel shapes (`data.voxels`): `images` holds the grids, uint8 (N, R, R, R); the summary says so."""

    def summary(self) -> dict:
        return {**super().summary(), "kind": "voxels", "channels": 1}


def filter_note(filter_name: str, reduced: np.ndarray | None) -> str:
    """'' unless `nearest` was asked for and some images were reduced, with box in its place."""
    n = int(np.count_nonzero(reduced)) if reduced is not None else 0
    if filter_name != "nearest" or n == 0:
        return ""
    were = "was" if n == 1 else "were"
    return f"filter: nearest for enlarging, box (area) for {_plural(n, 'image')} that {were} reduced"


def background_rgb(colour: str) -> tuple[int, int, int]:
    """A PIL colour name or #rrggbb as an RGB triple, or a ConfigError saying what is accepted."""
    try:
        rgb = ImageColor.getrgb(colour)
    except (ValueError, TypeError, AttributeError):
        raise ConfigError(
            f"unknown --background colour '{colour}': use a name such as white or black, or #rrggbb"
        ) from None
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


# ---------------------------------------------------------------------------------------------------
# Finding files.


@dataclass(frozen=True)
class _Item:
    """One image file to read."""

    display: str  # how reports name it: a path, or "archive.zip:member"
    path: str  # the file on disk (the zip itself for zip members)
    member: str | None  # zip member name; None for a plain file
    parts: tuple[str, ...]  # the fullest path we know, in components: for matching labels-file entries
    rel: tuple[str, ...]  # path under its source's root (root = deepest folder holding all its images)
    in_tree: bool  # from a folder or zip (sub-folder labels apply), not a file named on its own


@dataclass
class _Scan:
    items: list[_Item] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): refused by name, never read
    ignored: list[str] = field(default_factory=list)
    in_datasets: list[tuple[str, int]] = field(default_factory=list)  # (folder, files) left out: ganforge's outputs
    looked_at: int = 0  # files seen, images or not


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _strip_common_dirs(rels: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop the leading folders every path shares, so a wrapper folder is not mistaken for a class."""
    if not rels:
        return rels
    dirs = [r[:-1] for r in rels]
    n = 0
    while all(len(d) > n for d in dirs) and len({d[n] for d in dirs}) == 1:
        n += 1
    return [r[n:] for r in rels]


def _scan_folder(root: Path, scan: _Scan, exclude: set[str]) -> None:
    # os.walk and plain strings: pathlib costs more than decoding a small PNG, per file.
    found: list[tuple[tuple[str, ...], str]] = []
    seen_before = scan.looked_at
    top = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        reldir = os.path.relpath(dirpath, top)
        relparts = () if reldir == "." else tuple(reldir.split(os.sep))
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if full in exclude:
                continue
            if _TEMP.fullmatch(d) or _looks_like_dataset_folder(full):
                # An earlier output (or one being written): its images are copies, so reading them would
                # count every source image twice.
                n = sum(len(files) for _, _, files in os.walk(full))
                scan.looked_at += n
                scan.in_datasets.append((os.path.join(root, *relparts, d), n))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if full in exclude:
                continue
            scan.looked_at += 1
            rel = (*relparts, name)
            if _is_hidden(rel) or not _is_image_name(name):
                scan.ignored.append(shown_path(os.path.join(root, *rel)))
            else:
                found.append((rel, full))
    if scan.looked_at == seen_before:
        raise DataError(f"{root} is an empty folder; put images in it (PNG, JPEG, GIF, WebP, BMP, TIFF)")
    found.sort()
    top_parts = Path(top).parts
    stripped = _strip_common_dirs([rel for rel, _ in found])
    for (rel, full), short in zip(found, stripped):
        shown = shown_path(os.path.join(root, *rel))
        scan.items.append(_Item(shown, full, None, top_parts + rel, short, True))


def _scan_zip(path: Path, scan: _Scan) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip file ({exc}); re-create it or unzip it into a folder") from exc
    if not names:
        raise DataError(f"{path} is an empty zip; put images in it (PNG, JPEG, GIF, WebP, BMP, TIFF)")
    found: list[tuple[tuple[str, ...], str]] = []
    counts = Counter(names)
    for name in dict.fromkeys(names):  # sorted, each name once
        scan.looked_at += counts[name]
        raw = name.replace("\\", "/").split("/")
        parts = tuple(p for p in raw if p not in ("", "."))
        if parts and _is_image_name(parts[-1]) and (raw[0] == "" or ".." in raw or re.match(r"[A-Za-z]:", name)):
            # Members are only read into memory, so such a name can do no harm here; but it is what a
            # path-traversal attack looks like, and such a zip is not a dataset a user meant to share.
            scan.skipped.append((f"{path}:{name}", "unsafe name: an absolute path or '..' in a zip member; not read"))
        elif not parts or _is_hidden(parts) or not _is_image_name(parts[-1]):
            scan.ignored.extend([f"{path}:{name}"] * counts[name])
        else:
            found.append((parts, name))
            for _ in range(counts[name] - 1):  # zip readers (and `unzip`) see only the last of a repeated name
                scan.skipped.append(
                    (f"{path}:{name}", "same name as a later member of the zip; only that one was read")
                )
    found.sort()  # by components, as for folders, so a folder and its zip give the same order
    stripped = _strip_common_dirs([parts for parts, _ in found])
    for (parts, name), rel in zip(found, stripped):
        scan.items.append(_Item(f"{path}:{name}", str(path), name, parts, rel, True))


def _scan_sources(sources: Sequence[str | os.PathLike], exclude: set[str]) -> _Scan:
    if not sources:
        raise DataError("no sources given: name a folder, a zip or image files")
    scan = _Scan()
    for src in sources:
        path = Path(src).expanduser()
        if not path.exists():
            raise DataError(f"no such file or folder: {src}; check the path (give a folder, a zip or image files)")
        if path.is_dir():
            _scan_folder(path, scan, exclude)
        elif path.suffix.lower() == ".zip":
            _scan_zip(path, scan)
        else:
            scan.looked_at += 1
            if _is_image_name(path.name):
                scan.items.append(_Item(str(path), str(path), None, path.absolute().parts, (path.name,), False))
            else:
                scan.ignored.append(str(path))
    return scan


# ---------------------------------------------------------------------------------------------------
# Labels.


def _natural_sorted(names: Iterable[str]) -> list[str]:
    """Sorted names; numerically when all are integers, so that label k means class "k" for 0..K-1."""
    names = set(names)
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def _label_value(value: object, key: str | None, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        keys = [key] if key else list(_LABEL_KEYS)
        for k in keys:
            if k in value:
                return _label_value(value[k], None, where)
        raise DataError(
            f"{where}: entries are objects with keys {', '.join(map(str, value))} and none is "
            f"{' or '.join(keys)}; pass --label-key with the key that holds the label"
        )
    if isinstance(value, (list, tuple)):
        raise DataError(f"{where}: a label must be a name or a number, not a list; give one label per file")
    text = str(value).strip()
    return text or None


def _read_json_labels(path: Path, key: str | None, what: str = "labels") -> list[tuple[str, str | None]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} file {path} is not valid JSON ({exc}); fix it or give a CSV file,label file") from exc
    if isinstance(data, dict) and isinstance(data.get("labels"), list) and len(data) <= 2:
        data = data["labels"]  # a dataset.json-style {"labels": [[file, label], ...]}
    pairs: list[tuple[str, str | None]] = []
    if isinstance(data, dict):
        for f, v in data.items():
            pairs.append((str(f), _label_value(v, key, str(path))))
    elif isinstance(data, list):
        for entry in data:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                pairs.append((str(entry[0]), _label_value(entry[1], key, str(path))))
            elif isinstance(entry, dict) and any(k in entry for k in _FILE_HEADERS):
                fkey = next(k for k in _FILE_HEADERS if k in entry)
                rest = {k: v for k, v in entry.items() if k != fkey}
                pairs.append((str(entry[fkey]), _label_value(rest, key, str(path))))
            else:
                raise DataError(
                    f"{what} file {path}: cannot read entry {json.dumps(entry)[:60]}; "
                    'use {"file": "label", ...} or [["file", "label"], ...]'
                )
    else:
        raise DataError(f'{what} file {path} must hold {{"file": "label", ...}} or [["file", "label"], ...]')
    return pairs


def _read_csv_labels(path: Path, key: str | None, what: str = "labels") -> list[tuple[str, str | None]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} file {path} is not UTF-8 text; save it as a UTF-8 CSV (file,label)") from exc
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    file_col, label_col = 0, 1
    header = [c.strip().lower() for c in rows[0]]
    if header[0] in _FILE_HEADERS or (key and key.lower() in header):
        rows = rows[1:]
        wanted = [key.lower()] if key else list(_LABEL_KEYS)
        cols = [header.index(k) for k in wanted if k in header]
        if cols:
            label_col = cols[0]
        elif key:
            raise DataError(f"{what} file {path} has no column '{key}' (columns: {', '.join(header)}); fix --label-key")
        file_col = next((i for i, h in enumerate(header) if h in _FILE_HEADERS), 0)
    pairs = []
    for row in rows:
        if len(row) <= max(file_col, label_col):
            raise DataError(f"{what} file {path}: row {','.join(row)!r} has no label; each row needs file,label")
        pairs.append((row[file_col].strip(), _label_value(row[label_col], None, str(path))))
    return pairs


def _split_path(text: str) -> tuple[str, ...]:
    # "..", like ".", is dropped: entries are matched by their trailing components anyway.
    return tuple(p for p in text.replace("\\", "/").split("/") if p not in ("", ".", ".."))


class _LabelFile:
    """A labels file, looked up by the trailing components of an image's path (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, key: str | None, what: str = "label") -> None:
        self.path, self.what = Path(path).expanduser(), what
        if not self.path.is_file():
            raise DataError(
                f"{what}s file {path} does not exist; give a CSV (file,{what}) or JSON ({{file: {what}}}) file"
            )
        reader = _read_json_labels if self.path.suffix.lower() == ".json" else _read_csv_labels
        pairs = reader(self.path, key, f"{what}s")
        if not pairs:
            raise DataError(f"{what}s file {path} lists no files; add one line per image: file,{what}")
        self.by_name: dict[str, list[tuple[tuple[str, ...], str | None]]] = {}
        for f, label in pairs:
            parts = _split_path(f)
            if parts:
                self.by_name.setdefault(parts[-1], []).append((parts, label))

    def lookup(self, item: _Item) -> tuple[str | None, str]:
        """(label, "") or (None, reason)."""
        best, best_k = [], 0
        for parts, label in self.by_name.get(item.rel[-1], []):
            k = 0  # trailing components that agree
            while k < len(parts) and k < len(item.parts) and parts[-1 - k] == item.parts[-1 - k]:
                k += 1
            if k == len(parts) or k >= len(item.rel):  # the entry names this file, or a longer path to it
                if k > best_k:
                    best, best_k = [label], k
                elif k == best_k:
                    best.append(label)
        if not best or all(b is None for b in best):
            return None, f"no {self.what} in {self.path.name}"
        if len(set(best)) > 1:
            return None, f"ambiguous {self.what}: {self.path.name} has several entries that match; use paths, not bare names"
        return best[0], ""


# ---------------------------------------------------------------------------------------------------
# Reading one image. Top-level functions of plain data, so that a process pool can run them.


@dataclass(frozen=True)
class _Params:
    resolution: int
    fit: str
    resample: int
    background: tuple[int, int, int]
    channels: int
    half: str | None = None


_SIDE_BY_SIDE = (1.8, 2.2)  # width / height of a side-by-side A|B image (two squares, give or take 10%)


def _flatten(im: Image.Image, p: _Params) -> Image.Image:
    """Any PIL mode -> "RGB" or "L", with transparency composited onto the background at full size."""
    return flatten_alpha(im, p.background, gray=p.channels == 1)


_REDUCED = "reduced with box"  # `_prepare_one`'s note for a kept image that nearest would have reduced


def _resize(
    im: Image.Image, size: tuple[int, int], resample: int, box: tuple[int, int, int, int] | None = None
) -> tuple[Image.Image, bool]:
    """`im` (or its `box`) resized to `size`, and whether nearest was replaced by box for a reduction.

    Nearest picks one source pixel per output pixel: exact when enlarging, but a reduction drops the pixels
    between the picks, breaking 1-pixel outlines into dashes. Box averages the source pixels each output
    pixel covers, so every pixel counts (and an exact 2:1 reduction of 2x2 blocks is still exact); for a
    reduction in one axis and an enlargement in the other, box reduces that axis first, then nearest enlarges.
    """
    if resample != Image.Resampling.NEAREST:
        # reducing_gap: reduce in big integer steps first (fast, same look)
        return im.resize(size, resample, box=box, reducing_gap=3.0), False
    sw, sh = (box[2] - box[0], box[3] - box[1]) if box is not None else im.size
    (w, h) = size
    if w >= sw and h >= sh:
        return im.resize(size, Image.Resampling.NEAREST, box=box), False
    if w <= sw and h <= sh:
        return im.resize(size, Image.Resampling.BOX, box=box), True
    im = im.resize((min(w, sw), min(h, sh)), Image.Resampling.BOX, box=box)
    return im.resize(size, Image.Resampling.NEAREST), True


def _fit(im: Image.Image, p: _Params) -> tuple[Image.Image, bool]:
    """Make `im` a p.resolution square; also whether it was reduced with box in place of nearest (see
    `_resize`). Integer crop/paste offsets keep `nearest` pixel-exact."""
    r, (w, h) = p.resolution, im.size
    if p.fit == "stretch":
        return (im, False) if (w, h) == (r, r) else _resize(im, (r, r), p.resample)
    if p.fit == "crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        box = (left, top, left + s, top + s)
        if s == r:
            return (im if (w, h) == (r, r) else im.crop(box)), False
        return _resize(im, (r, r), p.resample, box=box)
    s = max(w, h)  # pad: scale the long side to r, then centre on a background square
    nw, nh = max(1, round(w * r / s)), max(1, round(h * r / s))
    reduced = False
    if (nw, nh) != (w, h):
        im, reduced = _resize(im, (nw, nh), p.resample)
    if (nw, nh) == (r, r):
        return im, reduced
    fill = p.background if im.mode == "RGB" else ImageColor.getcolor("rgb({},{},{})".format(*p.background), "L")
    canvas = Image.new(im.mode, (r, r), fill)
    canvas.paste(im, ((r - nw) // 2, (r - nh) // 2))
    return canvas, reduced


def load_image(src: str | os.PathLike | bytes) -> Image.Image:
    """One image file or its bytes (an upload), as `prepare` reads it: the first frame, upright, with its
    own mode. Raises DataError naming the reason (corrupt, truncated, over the pixel limit, not a regular
    file, ...) instead of PIL's many exception types; never blocks on a FIFO or decodes a pixel bomb.
    `ganforge.images.open_image` with mode=None."""
    return open_image(src, mode=None)


def flatten_image(im: Image.Image, channels: int = 3, background: str = "white") -> Image.Image:
    """Any PIL mode as "RGB" (channels 3) or "L" (1), as `prepare` converts it: transparency composited onto
    `background`, 16-bit and float images scaled to 8 bits rather than clipped, CMYK and palettes converted."""
    return convert(im, "L" if channels == 1 else "RGB", background_rgb(background))


def _prepare_one(src: str | bytes, p: _Params) -> tuple[np.ndarray | None, str]:
    """(uint8 (H, W, C) image, note) or (None, reason). The note is "" or _REDUCED (box reduced the image
    in place of nearest). Never raises for a bad file: one bad file must not stop a long run, and the reason
    goes to the report."""
    try:
        upright = decode(src, p.resolution)
        if p.half is not None:
            w, h = upright.size
            if not _SIDE_BY_SIDE[0] * h <= w <= _SIDE_BY_SIDE[1] * h:
                return None, f"not side by side: {w}x{h} is not twice as wide as high (A on the left, B on the right)"
            upright = upright.crop((0, 0, w // 2, h) if p.half == "left" else (w - w // 2, 0, w, h))
        out, reduced = _fit(_flatten(upright, p), p)
        if out.mode != ("L" if p.channels == 1 else "RGB"):
            out = out.convert("L" if p.channels == 1 else "RGB")
        arr = np.asarray(out)
    except Exception as exc:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError, ...)
        return None, read_problem(exc)  # an UnusableImage's own reason, or PIL's error worded for the report
    return (arr[:, :, None] if arr.ndim == 2 else arr), _REDUCED if reduced else ""


def _prepare_task(task: tuple[str | bytes, _Params]) -> tuple[np.ndarray | None, str]:
    return _prepare_one(*task)


class _Opener:
    """Reads items, keeping each zip open once for the whole run."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack, self._zips = stack, {}

    def _zip(self, path: str) -> zipfile.ZipFile:
        if path not in self._zips:
            self._zips[path] = self._stack.enter_context(zipfile.ZipFile(path))
        return self._zips[path]

    def source(self, item: _Item) -> str | bytes:
        """What `_prepare_one` reads: a path for plain files, the bytes of a zip member."""
        if item.member is None:
            return item.path
        return read_zip_member(self._zip(item.path), item.member)  # zipfile errors (bad CRC, ...) go to the caller

    def size(self, item: _Item) -> tuple[int, int] | None:
        """Width and height from the header only (cheap), or None when it cannot be read or will be refused
        (over the pixel limit), so that refused files do not choose the resolution."""
        try:
            if item.member is None:
                return header_size(item.path)  # a FIFO is never opened: `_prepare_one` skips it with the reason
            zf = self._zip(item.path)
            if zip_member_problem(zf.getinfo(item.member)):
                return None  # never opened: `source` refuses it with the reason
            with zf.open(item.member) as f, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    size = im.size
        except Exception:
            return None
        return None if too_large(*size) else size


def _read_source(opener: _Opener, item: _Item) -> str | bytes | tuple[None, str]:
    """What to decode, or (None, reason) when a zip member cannot even be extracted."""
    try:
        return opener.source(item)
    except UnsafeZipMember as exc:  # a zip bomb, or a member too large to hold in memory
        return None, f"too large: zip member refused unread: {exc.reason}"
    except RuntimeError as exc:
        if "encrypted" in str(exc) or "password" in str(exc):
            return None, "encrypted: the zip member needs a password; unzip it yourself and give the folder"
        return None, f"corrupt: cannot extract from zip: {exc}"
    except Exception as exc:  # bad CRC, unsupported compression, truncated zip, ...
        return None, f"corrupt: cannot extract from zip: {exc}"


def _auto_resolution(sizes: Iterable[tuple[int, int] | None], fit: str) -> int | None:
    counts = Counter(s for s in sizes if s)
    if not counts:
        return None
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1]))[0]
    side = min(best) if fit == "crop" else max(best)
    return int(min(max(side, MIN_RESOLUTION), MAX_RESOLUTION))


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops cleanly instead of printing a traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds; spawn would re-import torch (via ganforge.data) in each one.
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _read_all(
    items: list[_Item], opener: _Opener, p: _Params, workers: int, progress: bool
) -> Iterator[tuple[np.ndarray | None, str]]:
    """Results in item order, from this process or a pool; a tqdm bar on stderr when `progress`."""
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs and pipes get the summary only)
    bar = tqdm(
        total=len(items),
        desc="reading",
        unit="img",
        file=sys.stderr,
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    try:
        if workers <= 1 or len(items) < 64:
            for item in items:
                src = _read_source(opener, item)
                result = _prepare_one(src, p) if not isinstance(src, tuple) else src
                bar.update(1)  # before the yield: the consumer may not resume us after the last item
                yield result
            return
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_ignore_sigint)
        with pool:
            for start in range(0, len(items), _WINDOW):
                srcs = [_read_source(opener, it) for it in items[start : start + _WINDOW]]
                tasks = [(s, p) for s in srcs if not isinstance(s, tuple)]
                done = iter(pool.map(_prepare_task, tasks, chunksize=max(1, len(tasks) // (4 * workers))))
                for s in srcs:
                    result = s if isinstance(s, tuple) else next(done)
                    bar.update(1)
                    yield result
    finally:
        bar.close()


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _no_images_error(sources: Sequence[str | os.PathLike], scan: _Scan, skipped: list[tuple[str, str]]) -> DataError:
    where = ", ".join(str(s) for s in sources)
    if not scan.items and scan.in_datasets:
        return DataError(
            f"no image files in {where} outside the ganforge datasets inside it ({scan.in_datasets[0][0]}); "
            "point at the folder that holds the original images"
        )
    if not scan.items and not skipped:
        shown = ", ".join(Path(f).name for f in scan.ignored[:3])
        return DataError(
            f"no image files in {where}: looked at {_plural(scan.looked_at, 'file')} ({shown}{', ...' if scan.looked_at > 3 else ''}) "
            f"and none is {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}; point at the folder that holds the images"
        )
    why = Counter(reason.split(":")[0] for _, reason in skipped)
    counts = ", ".join(f"{n} {k}" for k, n in why.most_common())
    first_file, first_reason = skipped[0]
    main_reason = why.most_common(1)[0][0]
    if main_reason.startswith("no label in"):
        fix = "check that the labels file names these files (by path under the source folder, or by file name)"
    elif main_reason.startswith("ambiguous"):
        fix = "name files in the labels file by path, not bare name"
    elif main_reason.startswith("not side by side"):
        fix = (
            "side-by-side paired images hold A on the left and B on the right; or put the two sides in two "
            "sub-folders (A/ and B/) with matching file names"
        )
    else:
        fix = "fix or replace the files"
    return DataError(
        f"no usable image in {where}: looked at {_plural(len(scan.items) + len(scan.skipped), 'image file')} and skipped all ({counts}); "
        f"first: {first_file}: {first_reason}; {fix}"
    )


def prepare(
    sources: Sequence[str | os.PathLike] | str | os.PathLike,
    opts: PrepareOptions,
    *,
    progress: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
) -> PreparedData:
    """Read `sources` (folders, zips, image files) into one uint8 array of same-size square images.

    Bad files are skipped with a reason (see `PreparedData.skipped`); a DataError/ConfigError is raised
    only for problems with the request itself (missing path, nothing readable, invalid options).
    `exclude` names paths inside source folders to leave out (prepare_to passes its own outputs).
    """
    opts.validate()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    label_file = _LabelFile(opts.labels, opts.label_key) if opts.labels is not None else None  # its errors first
    caption_file = _LabelFile(opts.captions, "caption", what="caption") if opts.captions is not None else None
    excluded = {os.path.abspath(os.path.expanduser(e)) for e in exclude}
    scan = _scan_sources(sources, excluded)
    if not scan.items:
        raise _no_images_error(sources, scan, scan.skipped)

    # Labels come first: they are cheap, and images without one are skipped before being decoded.
    skipped: list[tuple[str, str]] = list(scan.skipped)
    todo: list[tuple[_Item, str | None]] = []
    if label_file is not None:
        for item in scan.items:
            label, reason = label_file.lookup(item)
            if label is None:
                skipped.append((item.display, reason))
            else:
                todo.append((item, label))
    else:
        folders = {it.rel[0] for it in scan.items if it.in_tree and len(it.rel) > 1}
        by_folder = opts.folder_labels and len(folders) >= 2
        for item in scan.items:
            if by_folder and not (item.in_tree and len(item.rel) > 1):
                skipped.append(
                    (item.display, "no label: not in a class sub-folder (move it into one, or pass --no-folder-labels)")
                )
            else:
                todo.append((item, item.rel[0] if by_folder else None))
    labelled = opts.labels is not None or any(label is not None for _, label in todo)
    captions_of: dict[int, str] = {}
    if caption_file is not None:  # an image without a usable caption is skipped, with the reason
        kept = []
        for item, label in todo:
            caption, reason = caption_file.lookup(item)
            problem = reason or text_problem(caption, "the caption")
            if problem:
                skipped.append((item.display, problem))
            else:
                captions_of[id(item)] = caption
                kept.append((item, label))
        todo = kept

    with ExitStack() as stack:
        opener = _Opener(stack)
        resolution = opts.resolution
        if resolution is None:
            # Headers only, of at most _SIZE_SAMPLE evenly spaced files: the mode of a sample is the mode.
            step = max(1, len(todo) // _SIZE_SAMPLE)
            sizes = (opener.size(it) for it, _ in todo[::step])
            if opts.half is not None:
                sizes = ((s[0] // 2, s[1]) if s else None for s in sizes)  # one half of an A|B image
            resolution = _auto_resolution(sizes, opts.fit) or 64
        params = _Params(
            resolution, opts.fit, FILTERS[opts.filter], background_rgb(opts.background), opts.channels, opts.half
        )
        workers = opts.workers or (os.cpu_count() or 1)
        images: list[np.ndarray] = []
        files: list[str] = []
        kept_labels: list[str] = []
        kept_captions: list[str] = []
        reduced: list[bool] = []
        duplicates: list[tuple[str, str]] = []
        seen: dict[bytes, str] = {}
        for (item, label), (arr, reason) in zip(
            todo, _read_all([it for it, _ in todo], opener, params, workers, progress)
        ):
            if arr is None:
                skipped.append((item.display, reason))
                continue
            if opts.dedupe:
                digest = hashlib.blake2b(arr.tobytes(), digest_size=16).digest()
                if digest in seen:
                    duplicates.append((item.display, seen[digest]))
                    continue
                seen[digest] = item.display
            images.append(arr)
            files.append(item.display)
            kept_labels.append(label or "")
            kept_captions.append(captions_of.get(id(item), ""))
            reduced.append(reason == _REDUCED)

    if not images:
        raise _no_images_error(sources, scan, skipped)
    class_names: list[str] = []
    labels = None
    if labelled:
        class_names = _natural_sorted(kept_labels)
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.array([index[name] for name in kept_labels], dtype=np.int64)
    return PreparedData(
        images=np.stack(images),  # (N, H, W, C)
        labels=labels,
        class_names=class_names,
        files=files,
        captions=kept_captions if caption_file is not None else None,
        skipped=skipped,
        duplicates=duplicates,
        ignored=scan.ignored,
        in_datasets=scan.in_datasets,
        resolution=resolution,
        filter=opts.filter,
        reduced=np.array(reduced, dtype=bool),
    )


# ---------------------------------------------------------------------------------------------------
# Writing.


def default_report_path(dest: str | os.PathLike) -> Path:
    """`out.zip` -> `out-report.csv`, `out/` -> `out-report.csv`, next to the dataset. A destination named
    only by `.` or `..` is resolved first, so that it has a name."""
    dest = _named(Path(dest))
    stem = dest.stem if dest.suffix.lower() == ".zip" else dest.name
    return dest.with_name(f"{stem}-report.csv")


def _named(dest: Path) -> Path:
    """`dest` itself, or resolved when it ends in `.` or `..` (Path('.').name is empty; Path('a/..').name
    is '..'), so that naming a report or a temporary file next to it works."""
    if dest.name in ("", ".", ".."):
        dest = Path(os.path.realpath(dest))
    return dest


def _destination(dest: str | os.PathLike) -> Path:
    """The destination as given (`~` expanded), resolved when it is `.`, `..` or ends in them; refuses
    the file-system root and the current folder or one of its parents, which a dataset cannot replace."""
    raw = Path(dest).expanduser()
    path = _named(raw)
    if not path.name:
        raise DataError(f"destination {raw} is the root folder; give a new folder name or a .zip, e.g. dataset.zip")
    here = Path.cwd()
    if path.exists() and _same_or_inside(here, path):
        what = "the current folder" if _same_or_inside(path, here) else "a folder that holds the current folder"
        raise DataError(
            f"destination {raw} is {what} ({path}); the dataset replaces its destination, so give a new folder "
            "name or a .zip, e.g. dataset.zip"
        )
    return path


def _same_or_inside(inner: Path, outer: Path) -> bool:
    """True when `inner` is `outer` or lies inside it, after resolving symlinks and `..`. Also compares
    (device, inode) up `inner`'s ancestors, which catches hard links, bind mounts and case-insensitive disks."""
    inner_r, outer_r = Path(os.path.realpath(inner)), Path(os.path.realpath(outer))
    if inner_r == outer_r or inner_r.is_relative_to(outer_r):
        return True
    try:
        target = os.stat(outer_r)
    except OSError:
        return False
    if not target.st_ino:  # file systems without inode numbers: the paths said it all
        return False
    node = inner_r
    while True:
        try:
            st = os.stat(node)
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                return True
        except OSError:
            pass  # a part of dest that does not exist yet
        if node.parent == node:
            return False
        node = node.parent


def _check_overlap(
    sources: Sequence[str | os.PathLike], dest: Path, report: Path | None, labels: str | None, captions: str | None = None
) -> None:
    """Refuse a destination or report that is, holds, or lies inside an input: replacing it would delete
    the images being prepared (and whatever else sits beside them). `report` None: the destination only."""
    inputs = [(Path(src).expanduser(), "source") for src in sources]
    if labels is not None:
        inputs.append((Path(labels).expanduser(), "labels file"))
    if captions is not None:
        inputs.append((Path(captions).expanduser(), "captions file"))
    for path, what in inputs:
        if not path.exists():
            continue  # the scan (or the labels reader) names it
        inside, holds = _same_or_inside(dest, path), _same_or_inside(path, dest)
        if inside or holds:
            relation = "is" if inside and holds else "is inside" if inside else "contains"
            raise DataError(
                f"destination {dest} {relation} the {what} {path}; ganforge will not write over its input: "
                f"choose a destination outside {path}"
            )
        if report is not None and _same_or_inside(report, path) and _same_or_inside(path, report):
            raise DataError(f"report {report} is the {what} {path}; pass --report with another path")
    if report is not None and _same_or_inside(report, dest):
        raise DataError(f"report {report} is inside the destination {dest}; pass --report with a path outside it")


def _checked_destination(sources: Sequence[str | os.PathLike], dest: str | os.PathLike, labels: str | None) -> Path:
    """The destination with a name (see `_destination`), after the check that it is not, nor holds, nor
    lies inside an input (the clearer message when `.` is the folder that holds the sources)."""
    raw = Path(dest).expanduser()
    named = _named(raw)
    if named.name:
        _check_overlap(sources, named, None, labels)
    return _destination(raw)


def _check_dest(dest: Path, overwrite: bool) -> None:
    """Fail before reading thousands of images if the result could not, or must not, be written."""
    if dest.suffix.lower() in IMAGE_EXTENSIONS:
        raise DataError(
            f"destination {dest} looks like an image file; the last argument is where the dataset goes: "
            "give a name ending in .zip or a folder name"
        )
    if dest.exists():
        is_zip = dest.suffix.lower() == ".zip"
        if (is_zip and not dest.is_file()) or (not is_zip and not dest.is_dir()):
            kind = "folder" if dest.is_dir() else "file"
            raise DataError(
                f"{dest} is a {kind}, which --overwrite will not replace; remove it or choose another destination"
            )
        _check_replaceable(dest)  # before suggesting --overwrite: it only replaces what ganforge wrote
        if not overwrite:
            raise DataError(f"{dest} already exists: choose another destination or pass --overwrite")
    ancestor = dest.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise DataError(f"cannot write to {ancestor}: permission denied or not a folder; choose a writable destination")


_REPORT_HEADER = "file,status,reason"


def _check_report(report: Path) -> None:
    """The report replaces only an earlier report (its first line is ganforge's header), never a user's file."""
    if report.is_dir():
        raise DataError(f"report {report} is a folder; pass --report with a file path such as report.csv")
    if report.exists():
        try:
            with open(report, encoding="utf-8", newline="") as f:
                first = f.readline().strip()
        except (OSError, UnicodeDecodeError):
            first = ""
        if first != _REPORT_HEADER:
            raise DataError(
                f"report {report} exists and is not a report ganforge wrote; refusing to replace it; "
                "remove it yourself or pass --report with another path"
            )


def write_report(data: PreparedData | PreparedPairs, path: str | os.PathLike) -> Path:
    """A CSV of every file left out (status: skipped | duplicate | ignored), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # open() honours the umask; mkstemp would not
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(_REPORT_HEADER.split(","))
            w.writerows((file, "skipped", reason) for file, reason in data.skipped)
            w.writerows((file, "duplicate", f"same pixels as {kept}") for file, kept in data.duplicates)
            w.writerows((file, "ignored", "not an image file, or hidden") for file in data.ignored)
            w.writerows(
                (folder, "in-dataset", f"a dataset ganforge wrote ({_plural(n, 'file')}), inside the source; not read")
                for folder, n in data.in_datasets
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def prepare_to(
    sources: Sequence[str | os.PathLike] | str | os.PathLike,
    dest: str | os.PathLike,
    opts: PrepareOptions,
    *,
    overwrite: bool = False,
    report_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> PreparedData:
    """`prepare`, then write a StyleGAN2-ADA archive at `dest` (.zip or folder, atomically) and the
    per-file report (default: `DEST-report.csv` next to it). The destination is checked first, so a
    typo costs no reading time.

    Nothing a user made is ever replaced: a `dest` that is, contains or lies inside a source (or the
    labels file) is refused, after resolving symlinks and `..`; an existing `dest` is replaced only with
    `overwrite` and only when ganforge wrote it (see `archive.write_archive`); an existing report only
    when it is an earlier report. All of this is checked before any image is read."""
    opts.validate()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    dest = _checked_destination(sources, dest, opts.labels)
    report = Path(report_path).expanduser() if report_path is not None else default_report_path(dest)
    _check_overlap(sources, dest, report, opts.labels, opts.captions)
    _check_dest(dest, overwrite)
    _check_report(report)
    from . import voxels

    if voxels.is_voxel_source(sources):  # voxel grids and meshes: 3-D shapes, written as a voxel archive
        got = voxels.read_voxel_sources(sources, resolution=opts.resolution, folder_labels=opts.folder_labels, exclude=[dest, report])
        shapes = PreparedVoxels(
            got.voxels, got.labels, got.class_names, got.files, skipped=got.skipped, ignored=got.ignored,
            resolution=got.resolution,
        )
        return _write_outputs(
            shapes, dest, report,
            lambda: voxels.write_voxel_archive(shapes.images, shapes.labels, shapes.class_names, shapes.files, dest),
        )
    data = prepare(sources, opts, progress=progress, exclude=[dest, report])
    return _write_outputs(
        data,
        dest,
        report,
        lambda: write_archive(
            ArchiveData(data.images, data.labels, data.class_names, captions=data.captions), dest, overwrite=overwrite
        ),
    )


def _write_outputs(data, dest: Path, report: Path, write: Callable[[], object]):  # noqa: ANN001, ANN202
    """Write the archive (`write`) and then the report, each failure one clear error; returns `data`."""
    try:
        write()
    except OSError as exc:
        raise DataError(
            f"cannot write {dest}: {exc.strerror or exc}; choose a writable destination with free space"
        ) from exc
    try:
        data.report = write_report(data, report)
    except OSError as exc:
        raise DataError(
            f"wrote {dest} but cannot write the report {report}: {exc.strerror or exc}; pass --report PATH"
        ) from exc
    data.dest = dest
    return data


# ---------------------------------------------------------------------------------------------------
# Paired and unpaired data: two sides, each through the same pipeline.

TWO_SIDED = ("paired", "unpaired")
_DOMAIN_NAMES = (("trainA", "trainB"), ("A", "B"))  # CycleGAN's and pix2pix's folder names, tried first


@dataclass
class PreparedPairs:
    """Paired or unpaired data from `prepare_two_sided`, with the same account of what was left out."""

    layout: str  # "paired" (a[i] is the source of target b[i]) | "unpaired" (two independent domains)
    a: np.ndarray  # uint8 (N_A, H, W, C): the sources / domain A
    b: np.ndarray  # uint8 (N_B, H, W, C): the targets / domain B (N_B == N_A when paired)
    domains: list[str]  # names of the two sides: the sub-folders' names, or ["A", "B"] for side-by-side images
    files_a: list[str]  # source of each kept image, per side
    files_b: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), both sides
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped, kept)
    ignored: list[str] = field(default_factory=list)
    in_datasets: list[tuple[str, int]] = field(default_factory=list)
    resolution: int = 0
    dest: Path | None = None  # set by prepare_two_sided_to
    report: Path | None = None  # set by prepare_two_sided_to
    filter: str = ""  # the --filter asked for
    reduced: np.ndarray | None = None  # bool: kept images (both sides) reduced with box because the filter was nearest

    @property
    def filter_note(self) -> str:
        """The summary's line on how images were resized, when it differs from the --filter asked for."""
        return filter_note(self.filter, self.reduced)

    def summary(self) -> dict:
        return {
            "layout": self.layout,
            "a": len(self.a),
            "b": len(self.b),
            "domains": list(self.domains),
            "skipped": len(self.skipped),
            "duplicates": len(self.duplicates),
            "ignored": len(self.ignored),
            "in_datasets": sum(n for _, n in self.in_datasets),
            "resolution": self.resolution,
            "channels": int(self.b.shape[3]),
        }


def domain_folders(path: Path, exclude: Iterable[str | os.PathLike] = ()) -> tuple[Path, Path] | None:
    """The two sub-folders of `path` that hold the two sides: trainA/ + trainB/, A/ + B/, or its only two
    sub-folders (sorted; the first is A). Hidden folders and datasets ganforge wrote do not count."""
    excluded = {os.path.abspath(os.path.expanduser(e)) for e in exclude}
    subs = sorted(
        p
        for p in path.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "__"))
        and os.path.abspath(p) not in excluded
        and not _TEMP.fullmatch(p.name)
        and not _looks_like_dataset_folder(p)
    )
    names = {p.name: p for p in subs}
    for a, b in _DOMAIN_NAMES:
        if a in names and b in names:
            return names[a], names[b]
    if len(subs) == 2:
        return subs[0], subs[1]
    return None


def _check_two_sided_options(kind: str, opts: PrepareOptions) -> None:
    if kind not in TWO_SIDED:
        raise ConfigError(f"unknown kind of two-sided data {kind!r}: use paired or unpaired")
    if opts.labels is not None:
        raise ConfigError(
            f"--labels does not apply to --{kind} data (its two sub-folders are the two sides, not classes); drop --labels"
        )
    if opts.captions is not None:
        raise ConfigError(f"--captions does not apply to --{kind} data (image-to-image models read no text); drop it")
    opts.validate()


def _match_key(file: str, root: Path | None) -> str:
    """What pairs files across the sides: the path under its side's folder without the extension
    (a/train/0001.png <-> b/train/0001.jpg), or the whole file for side-by-side images."""
    if root is None:
        return file
    rel = Path(os.path.relpath(file, root))
    return rel.with_suffix("").as_posix()


def _unique(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def prepare_two_sided(
    source: str | os.PathLike,
    kind: str,
    opts: PrepareOptions,
    *,
    progress: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
) -> PreparedPairs:
    """Read a folder of paired ("paired") or unpaired ("unpaired") data; each side goes through `prepare`.

    `source` holds two sub-folders (see `domain_folders`) or, for paired data only, side-by-side A|B images
    (pix2pix's facades, maps, edges2shoes). Paired files are matched by name (`_match_key`); a file
    without a partner is skipped with the reason. Side B is prepared at side A's resolution."""
    _check_two_sided_options(kind, opts)
    sides = _read_sides(_two_sided_folder(source, kind), kind, opts, progress, list(exclude))
    a, b = sides.a, sides.b
    if kind == "unpaired":
        return sides.result("unpaired", a.images, b.images, a.files, b.files, np.concatenate([_reduced(a), _reduced(b)]))
    ia, ib = _pair_by_name(sides)
    src, tgt = a.images[ia], b.images[ib]
    files_a, files_b = [a.files[i] for i in ia], [b.files[j] for j in ib]
    red_a, red_b = _reduced(a)[ia], _reduced(b)[ib]
    if opts.dedupe:  # a pair is a duplicate when both of its sides are
        keep = _distinct_pairs(src, tgt, files_a, sides.duplicates)
        src, tgt = src[keep], tgt[keep]
        files_a, files_b = [files_a[n] for n in keep], [files_b[n] for n in keep]
        red_a, red_b = red_a[keep], red_b[keep]
    return sides.result("paired", src, tgt, files_a, files_b, np.concatenate([red_a, red_b]))


def _two_sided_folder(source: str | os.PathLike, kind: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {source}; check the path")
    if not path.is_dir():
        sbs = ", or a folder of side-by-side A|B images" if kind == "paired" else ""
        raise DataError(
            f"{source} is not a folder: --{kind} data is read from a folder with two sub-folders "
            f"(trainA/ and trainB/, or A/ and B/){sbs}; unzip it first if it is a zip"
        )
    return path


@dataclass
class _Sides:
    """Both sides of two-sided data as `prepare` made them, and what was left out of the folder."""

    a: PreparedData
    b: PreparedData
    domains: list[str]
    roots: tuple[Path | None, Path | None]  # each side's folder (None: halves of side-by-side images)
    where: tuple[str, str]  # how messages name the sides
    skipped: list[tuple[str, str]]
    ignored: list[str]
    in_datasets: list[tuple[str, int]]
    duplicates: list[tuple[str, str]]
    filter: str

    def result(self, kind: str, src: np.ndarray, tgt: np.ndarray, files_a, files_b, reduced: np.ndarray) -> PreparedPairs:
        return PreparedPairs(
            kind, src, tgt, self.domains, files_a, files_b, self.skipped, self.duplicates, self.ignored,
            self.in_datasets, self.a.resolution, filter=self.filter, reduced=reduced,
        )


def _read_sides(path: Path, kind: str, opts: PrepareOptions, progress: bool, exclude: list) -> _Sides:
    """Side A, then side B at A's resolution, through `prepare`; files beside the two sides are reported."""
    side = dataclasses.replace(opts, folder_labels=False, dedupe=opts.dedupe and kind == "unpaired")
    dirs = domain_folders(path, exclude)
    skipped: list[tuple[str, str]] = []
    ignored: list[str] = []
    in_datasets: list[tuple[str, int]] = []
    if dirs is None:
        if kind == "unpaired":
            raise DataError(
                f"{path} needs two sub-folders, one per domain (trainA/ and trainB/, as CycleGAN's datasets have, "
                "or A/ and B/)"
            )
        a = prepare([path], dataclasses.replace(side, half="left"), progress=progress, exclude=exclude)
        b = prepare(
            [path], dataclasses.replace(side, half="right", resolution=a.resolution), progress=progress, exclude=exclude
        )
        domains, roots, where = ["A", "B"], (None, None), ("the left half", "the right half")
    else:
        a_dir, b_dir = dirs
        a = prepare([a_dir], side, progress=progress, exclude=exclude)
        b = prepare([b_dir], dataclasses.replace(side, resolution=a.resolution), progress=progress, exclude=exclude)
        domains, roots, where = [a_dir.name, b_dir.name], (a_dir, b_dir), (f"{a_dir.name}/", f"{b_dir.name}/")
        excluded = {os.path.abspath(os.path.expanduser(e)) for e in exclude}
        for entry in sorted(path.iterdir()):  # what lies beside the two sides is not read: say so
            if entry in dirs or os.path.abspath(entry) in excluded:
                continue
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                ignored.append(str(entry))
            elif entry.is_dir() and (_TEMP.fullmatch(entry.name) or _looks_like_dataset_folder(entry)):
                in_datasets.append((str(entry), sum(len(f) for _, _, f in os.walk(entry))))
            else:
                skipped.append((str(entry), f"not read: {kind} data is read from {where[0]} and {where[1]} only"))
    return _Sides(
        a, b, domains, roots, where,
        skipped + _unique(a.skipped + b.skipped), ignored + _unique(a.ignored + b.ignored),
        in_datasets + _unique(a.in_datasets + b.in_datasets), a.duplicates + b.duplicates, opts.filter,
    )


def _pair_by_name(sides: _Sides) -> tuple[list[int], list[int]]:
    """Indices (into A's files, into B's) of the pairs matched by name, in A's order; every file left without
    a partner goes to `sides.skipped` with the reason."""
    a, b, roots, where, skipped = sides.a, sides.b, sides.roots, sides.where, sides.skipped
    keys_b: dict[str, int] = {}
    for j, f in enumerate(b.files):
        k = _match_key(f, roots[1])
        if k in keys_b:
            skipped.append(
                (f, f"same name as {b.files[keys_b[k]]}: paired files are matched by name without the extension")
            )
        else:
            keys_b[k] = j
    lost = {
        side: {_match_key(f, root) for f, _ in res.skipped}
        for side, res, root in (("a", a, roots[0]), ("b", b, roots[1]))
    }
    ia, ib, matched, seen_a = [], [], set(), set()
    for i, f in enumerate(a.files):
        k = _match_key(f, roots[0])
        if k in seen_a:
            skipped.append((f, "same name as another file: paired files are matched by name without the extension"))
        elif k in keys_b:
            ia.append(i)
            ib.append(keys_b[k])
            matched.add(k)
        elif k in lost["b"]:
            skipped.append((f, f"its partner in {where[1]} was skipped"))
        else:
            skipped.append((f, f"no partner in {where[1]}"))
        seen_a.add(k)
    for k, j in keys_b.items():
        if k not in matched and k not in seen_a:
            why = f"its partner in {where[0]} was skipped" if k in lost["a"] else f"no partner in {where[0]}"
            skipped.append((b.files[j], why))
    if not ia:
        raise DataError(
            f"no file in {where[0]} has a partner of the same name in {where[1]}; paired data is matched by "
            "file name (A/0001.png <-> B/0001.png)"
        )
    return ia, ib


def _distinct_pairs(src: np.ndarray, tgt: np.ndarray, files_a: list[str], duplicates: list[tuple[str, str]]) -> list[int]:
    """The pairs to keep under --dedupe (the first of identical pairs); the others go to `duplicates`."""
    keep, seen = [], {}
    for n in range(len(src)):
        digest = hashlib.blake2b(src[n].tobytes() + tgt[n].tobytes(), digest_size=16).digest()
        if digest in seen:
            duplicates.append((files_a[n], files_a[seen[digest]]))
        else:
            seen[digest] = n
            keep.append(n)
    return keep


def _reduced(data: PreparedData) -> np.ndarray:
    return data.reduced if data.reduced is not None else np.zeros(len(data.files), dtype=bool)


def prepare_two_sided_to(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    kind: str,
    opts: PrepareOptions,
    *,
    overwrite: bool = False,
    report_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> PreparedPairs:
    """`prepare_two_sided`, then write a paired or unpaired archive (see `archive.py`) and the report, with
    every check of `prepare_to` made before any image is read."""
    _check_two_sided_options(kind, opts)
    dest = _checked_destination([source], dest, None)
    report = Path(report_path).expanduser() if report_path is not None else default_report_path(dest)
    _check_overlap([source], dest, report, None)
    _check_dest(dest, overwrite)
    _check_report(report)
    data = prepare_two_sided(source, kind, opts, progress=progress, exclude=[dest, report])
    write = write_paired_archive if kind == "paired" else write_unpaired_archive
    return _write_outputs(
        data, dest, report, lambda: write(data.a, data.b, dest, domains=data.domains, overwrite=overwrite)
    )
