"""The Hugging Face Hub: `ganforge push RUN OWNER/NAME` and `ganforge.load("hf:OWNER/NAME")`.

A pushed repository holds exactly the exported folder (`share.folder`), so what is downloaded is a run
folder that loads like any other; `hf:OWNER/NAME@REVISION` pins a branch, tag or commit. Downloads go to
huggingface_hub's own cache (`HF_HOME` / `HF_HUB_CACHE`), so a second load is offline, and
`HF_HUB_OFFLINE=1` uses only that cache. The download side lives in `ganforge.locate`, below `sample/`
(which resolves `hf:` runs without importing `share/`); it is re-exported here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import GanforgeError, require
from ..locate import FILES, PREFIX, check_repo_id, download, is_hub_ref, parse_ref

__all__ = ["FILES", "PREFIX", "check_repo_id", "download", "is_hub_ref", "parse_ref", "push"]


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
