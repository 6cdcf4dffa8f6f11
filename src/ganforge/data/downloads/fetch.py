"""Fetching one file into the data directory: cached, checksummed, atomic, with progress.

A file is downloaded to a temporary sibling (`.NAME.part-XXXX`), hashed while it streams, checked, and only
then renamed into place, so the cache never holds a half-written or wrong file under its real name: an
interrupted or corrupted download is simply tried again next time. A file already in place is checked
once, then a `NAME.verified` stamp (its size and modification time) saves re-hashing a 1.4 GB zip on
every load.

Where no official checksum is published (the pix2pix tarballs), the SHA-256 of the first download is
recorded in `NAME.sha256` and later copies must match it ("trust on first use"); the message says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError

_CHUNK = 1 << 20  # bytes read and hashed at a time
TIMEOUT_S = 30.0  # per network operation (connect, each read), not for the whole file
USER_AGENT = "ganforge (dataset download)"


@dataclass(frozen=True)
class Remote:
    """One file of a named dataset: where it comes from and what it must hash to."""

    filename: str  # its name in the dataset's cache folder
    urls: tuple[str, ...]  # mirrors, tried in order
    md5: str | None = None  # the published checksum (torchvision's, for MNIST / CIFAR-10 / CelebA)
    sha256: str | None = None  # the published SHA-256 (TensorFlow Datasets' url_checksums)
    size: int | None = None  # bytes, when published: shown in messages, checked before hashing
    manual: str = ""  # a note when scripted downloads are refused (Google Drive): the file is fetched by hand


def data_dir() -> Path:
    """Where named datasets are cached: `$GANFORGE_DATA`, else ~/.cache/ganforge/data. Read at call time, so
    a test (or a user) can point it elsewhere."""
    env = os.environ.get("GANFORGE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge" / "data"


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _expected(remote: Remote, path: Path) -> tuple[str, str] | None:
    """(algorithm, hex digest) the file must have: the published one, else the one recorded on first use."""
    if remote.sha256:
        return "sha256", remote.sha256.lower()
    if remote.md5:
        return "md5", remote.md5.lower()
    pinned = path.with_name(path.name + ".sha256")
    if pinned.exists():
        return "sha256", pinned.read_text().split()[0].lower()
    return None


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _checked_before(path: Path) -> bool:
    stamp = path.with_name(path.name + ".verified")
    try:
        return json.loads(stamp.read_text()) == _stamp(path)
    except (OSError, ValueError):
        return False


def _mark_checked(path: Path) -> None:
    try:
        path.with_name(path.name + ".verified").write_text(json.dumps(_stamp(path)))
    except OSError:
        pass  # a read-only cache: we will hash again next time, nothing worse


def verify(remote: Remote, path: Path, *, shown: str = "") -> None:
    """Raise a DataError naming the file (`shown`, default its path), both checksums and the fix when `path`
    is not the right file."""
    shown = shown or str(path)
    if _checked_before(path):
        return
    want = _expected(remote, path)
    if remote.size is not None and path.stat().st_size != remote.size:
        raise DataError(
            f"{shown} has {path.stat().st_size:,} bytes, but {remote.filename} has {remote.size:,}: it is incomplete "
            f"or a different file; delete it and load again (or download it from {remote.urls[0]})"
        )
    if want is None:  # no published checksum: pin this copy
        path.with_name(path.name + ".sha256").write_text(f"{_digest(path, 'sha256')}  {remote.filename}\n")
    else:
        algo, expected = want
        got = _digest(path, algo)
        if got != expected:
            raise DataError(
                f"checksum mismatch for {shown}: {algo} {got}, expected {expected}; the file is corrupt or not "
                f"{remote.filename}: delete it and load again (or download it from {remote.urls[0]})"
            )
    _mark_checked(path)


def _progress_bar(total: int | None, name: str, enabled: bool):  # noqa: ANN202
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def download(url: str, dest: Path, *, progress: bool = False) -> None:
    """Stream `url` to `dest` (which must not be the final name: `ensure` renames after checking). Module level,
    so tests can replace it; file:// URLs work too (urllib), which is how a local mirror is used."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        bar = _progress_bar(int(length) if length and length.isdigit() else None, dest.name.split(".part")[0], progress)
        try:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def _offline_error(dataset: str, remote: Remote, path: Path, errors: Sequence[str]) -> DataError:
    size = f" ({remote.size / 2**20:,.0f} MiB)" if remote.size else ""
    head = (
        f"cannot download {remote.filename}{size} for '{dataset}' ({'; '.join(errors)})"
        if errors
        else (f"'{dataset}' needs {remote.filename}{size}, which is not in the data folder")
    )
    how = remote.manual or f"download {remote.urls[0]}"
    return DataError(
        f"{head}; {how} and put it at {path} "
        f"(it is checked before use), or set GANFORGE_DATA to a folder that has {path.parent.name}/{remote.filename}"
    )


def ensure(dataset: str, remote: Remote, *, progress: bool = False) -> Path:
    """The checked local copy of `remote`, under data_dir()/dataset/, downloaded first if missing.

    A file put there by hand (offline machines, Google Drive) is used as is once its checksum matches."""
    folder = data_dir() / dataset
    path = folder / remote.filename
    if path.exists():
        verify(remote, path)
        return path
    if not remote.urls or remote.manual:
        raise _offline_error(dataset, remote, path, [])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data folder {folder} ({exc.strerror or exc}); set GANFORGE_DATA to a writable folder"
        ) from None
    errors: list[str] = []
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.part-", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            download(url, tmp, progress=progress)
            try:
                verify(remote, tmp, shown=f"the download from {url}")
            except DataError as exc:
                errors.append(f"{url}: {exc}")
                continue
            os.replace(tmp, path)  # atomic on one file system: the real name only ever holds a checked file
            for suffix in (".sha256", ".verified"):
                side = tmp.with_name(tmp.name + suffix)
                if side.exists():
                    os.replace(side, path.with_name(path.name + suffix))
            _mark_checked(path)
            return path
        except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a malformed URL
            reason = getattr(exc, "reason", None) or exc
            errors.append(f"{url}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
            for suffix in (".sha256", ".verified"):
                tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    if any("checksum mismatch" in e for e in errors):
        raise DataError(f"every download of {remote.filename} for '{dataset}' failed its check: " + "; ".join(errors))
    raise _offline_error(dataset, remote, path, errors)
