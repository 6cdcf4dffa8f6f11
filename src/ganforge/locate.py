"""Where a run lives: a run folder given as a path, as a name under the runs folder, or as a model on the
Hugging Face Hub (`hf:OWNER/NAME[@REVISION]`, downloaded into huggingface_hub's cache).

Inference (`sample.Model.load`), training (`--resume-from`), interop and sharing all resolve runs here, below
all of them, so that `sample/` needs nothing from `share/` (which exports and pushes what `sample/` loads).
A pushed repository holds exactly an exported folder (`share.folder`), so what is downloaded is a run folder
that loads like any other. Downloads go to huggingface_hub's own cache (`HF_HOME` / `HF_HUB_CACHE`), so a
second load is offline, and `HF_HUB_OFFLINE=1` uses only that cache. huggingface_hub (the `hub` extra) is
imported only when an `hf:` reference is resolved.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError, require

PREFIX = "hf:"
# Hub repository ids: OWNER/NAME, letters, digits, '-', '_', '.', at most 96 characters each side.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# Files a model repository may hold that ganforge reads (a repo can carry other files; they stay on the Hub).
FILES = ["README.md", "config.json", "ganforge-export.json", "metrics.jsonl", "checkpoints/*", "samples/*"]


def is_hub_ref(text: str | os.PathLike) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'hf:OWNER/NAME[@REVISION]' -> (repo_id, revision)."""
    body = ref[len(PREFIX) :] if ref.startswith(PREFIX) else ref
    repo_id, _, revision = body.partition("@")
    check_repo_id(repo_id)
    return repo_id, revision or None


def check_repo_id(repo_id: str) -> None:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise ConfigError(
            f"'{repo_id}' is not a Hugging Face repository id; write it OWNER/NAME, e.g. alice/emoji-dcgan"
        )


def download(ref: str, *, cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> Path:
    """The local folder of a Hub model `hf:OWNER/NAME[@REVISION]`, downloaded (or taken from the cache)."""
    hf = require("huggingface_hub", "hub")
    from huggingface_hub import errors

    repo_id, revision = parse_ref(ref)
    try:
        path = hf.snapshot_download(
            repo_id, repo_type="model", revision=revision, cache_dir=cache_dir, allow_patterns=FILES,
            local_files_only=local_files_only, library_name="ganforge",
        )  # fmt: skip
    except errors.RepositoryNotFoundError:
        raise ConfigError(
            f"no model repository {repo_id} on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from None
    except errors.RevisionNotFoundError:
        raise ConfigError(f"{repo_id} has no revision '{revision}'; drop @{revision} for the main branch") from None
    except errors.GatedRepoError:
        raise ConfigError(
            f"{repo_id} is gated: accept its terms on its Hub page, then log in (`hf auth login`)"
        ) from None
    except errors.LocalEntryNotFoundError:
        raise ConfigError(
            f"{ref} is not in the local Hugging Face cache and the Hub cannot be reached (offline, or HF_HUB_OFFLINE=1). "
            f"Connect once to download it, or download the folder elsewhere (`hf download {repo_id} --local-dir DIR`), "
            "copy it here and load DIR"
        ) from None
    except (errors.HfHubHTTPError, OSError) as exc:
        raise ConfigError(
            f"cannot download {repo_id} from the Hugging Face Hub ({str(exc).splitlines()[0][:200]})"
        ) from None
    folder = Path(str(path))
    if not (folder / "config.json").exists() or not (folder / "checkpoints").is_dir():
        raise ConfigError(
            f"{repo_id} is not a ganforge model (no config.json and checkpoints/); push one with `ganforge push RUN {repo_id}`"
        )
    return folder


def find_run(run: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> Path:
    """A run folder given as a path, or as a name under `runs_dir` (default: $GANFORGE_RUNS_DIR, else
    ./runs, where `ganforge train` puts runs), or a model on the Hugging Face Hub, `hf:OWNER/NAME[@REV]`
    (downloaded into huggingface_hub's cache: an exported folder, see `ganforge.share`)."""
    if is_hub_ref(run):
        return download(str(run))
    p = Path(run).expanduser()
    base = Path(runs_dir or os.environ.get("GANFORGE_RUNS_DIR") or "runs").expanduser()
    cands = [p] if p.is_absolute() or len(p.parts) > 1 else [p, base / p]
    for cand in cands:
        if (cand / "config.json").exists() or (cand / "checkpoints").is_dir():
            return cand
    tried = " nor ".join(str(c) for c in cands)
    raise ConfigError(f"no run at {tried}; give a run folder made by `ganforge train`")
