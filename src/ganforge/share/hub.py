"""The Hugging Face Hub: `ganforge push RUN OWNER/NAME` and `ganforge.load("hf:OWNER/NAME")`.

A pushed repository holds exactly the exported folder (`share.folder`), so what is downloaded is a run
folder that loads like any other; `hf:OWNER/NAME@REVISION` pins a branch, tag or commit. Downloads go to
huggingface_hub's own cache (`HF_HOME` / `HF_HUB_CACHE`), so a second load is offline, and
`HF_HUB_OFFLINE=1` uses only that cache.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import ConfigError, GanforgeError, require

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


def push(
    run: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    checkpoint: str | int = "latest",
    license: str | None = None,
    token: str | None = None,
    message: str | None = None,
) -> str:
    """Export `run` (see `share.folder.export_folder`) and upload it to the model repository `repo_id`
    (created when missing; `private` applies only then). Returns the repository's URL."""
    hf = require("huggingface_hub", "hub")
    from huggingface_hub import errors

    from .folder import export_folder

    check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="ganforge-push-") as tmp:
        folder = export_folder(
            run, Path(tmp) / repo_id.split("/")[1], checkpoint=checkpoint, license=license, repo_id=repo_id
        )
        api = hf.HfApi(token=token)
        try:
            url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id, repo_type="model", folder_path=str(folder),
                commit_message=message or f"ganforge push: {Path(str(run)).name}",
            )  # fmt: skip
        except errors.LocalTokenNotFoundError:
            raise GanforgeError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN") from None
        except errors.HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise GanforgeError(
                    f"the Hub refused the upload to {repo_id} (HTTP {status}): log in with a token that can write "
                    "there (`hf auth login`, or HF_TOKEN)"
                ) from None
            raise GanforgeError(f"upload to {repo_id} failed ({str(exc).splitlines()[0][:200]})") from None
        except Exception as exc:  # noqa: BLE001 - no network, DNS, TLS: the HTTP client's own error types
            raise GanforgeError(
                f"cannot reach the Hugging Face Hub ({type(exc).__name__}: {str(exc)[:200]}); check the connection and push again"
            ) from None
    return str(url)
