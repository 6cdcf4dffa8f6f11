"""Where evaluation weights live, how they are fetched once, and how they are verified.

A metric is only comparable with a paper's table when it is computed with the very same network
weights, so every weights file is identified by its sha256 and that identity travels with every
number. Files are fetched at most once into the cache directory (`$GANFORGE_CACHE`, default
`~/.cache/ganforge`), written atomically and checked before use; with no network, an explicit
path (`--inception-weights`, `$GANFORGE_INCEPTION_WEIGHTS`) works fully offline.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataError

# The FID network: TF Inception-v3 2015-12-05, converted by pytorch-fid / torch-fidelity (same tensors).
# The file name carries the first 8 hex digits of the file's sha256 (the torch.hub convention).
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
# Names the same tensors go by in other tools' caches (torch-fidelity, pytorch-fid): reused when present.
_INCEPTION_ALIASES = (INCEPTION_FILE, "pt_inception-2015-12-05-6726825d.pth")

ENV_CACHE = "GANFORGE_CACHE"
ENV_INCEPTION = "GANFORGE_INCEPTION_WEIGHTS"
ENV_OFFLINE = "GANFORGE_OFFLINE"  # "1": never try the network

Opener = Callable[..., Any]


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache root: `override`, else `$GANFORGE_CACHE`, else `~/.cache/ganforge` (not created here)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge"


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes")


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime) so that a 95 MB file is hashed once per process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def download(url: str, dest: str | os.PathLike, sha256_prefix: str, *, opener: Opener | None = None) -> Path:
    """Fetch `url` to `dest` atomically (temp file in the same folder, then rename) after checking that the
    content's sha256 starts with `sha256_prefix`; a failed or corrupt download leaves nothing behind."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_url = opener or urllib.request.urlopen
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open_url(url, timeout=60) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if not digest.startswith(sha256_prefix):
            raise DataError(
                f"downloaded {url} but its sha256 {digest[:16]}... does not start with {sha256_prefix}; "
                "the file is corrupt or was replaced: try again, or download it by hand and check it"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _torch_hub_checkpoints() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def inception_weights(
    path: str | os.PathLike | None = None,
    *,
    cache: str | os.PathLike | None = None,
    allow_download: bool = True,
    opener: Opener | None = None,
) -> Path:
    """The FID Inception weights file: an explicit `path`, else `$GANFORGE_INCEPTION_WEIGHTS`, else the cached
    copy (ganforge's cache, then torch-fidelity's / pytorch-fid's in torch.hub), else a verified download into
    the cache. Without network and without a file, the error names the exact path to put the file at."""
    explicit = path if path is not None else os.environ.get(ENV_INCEPTION) or None
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise DataError(
                f"Inception weights file not found: {p}; give the path of {INCEPTION_FILE} ({INCEPTION_URL})"
            )
        return p
    target = cache_dir(cache) / "weights" / INCEPTION_FILE
    for cand in [target] + [_torch_hub_checkpoints() / name for name in _INCEPTION_ALIASES]:
        if cand.is_file():
            if not sha256_file(cand).startswith(INCEPTION_SHA256_PREFIX):
                raise DataError(
                    f"{cand} is corrupt (its sha256 does not start with {INCEPTION_SHA256_PREFIX}); delete it"
                )
            return cand
    reason = f"offline (${ENV_OFFLINE} is set)"
    if allow_download and not offline():
        try:
            return download(INCEPTION_URL, target, INCEPTION_SHA256_PREFIX, opener=opener)
        except OSError as exc:  # URLError, timeouts, no route: all OSError
            reason = f"download failed: {exc}"
    raise DataError(
        f"the FID Inception weights are missing ({reason}): download {INCEPTION_URL} and save it as {target}, "
        f"or set ${ENV_INCEPTION} to the file (`ganforge eval --inception-weights PATH` also takes it)"
    )
