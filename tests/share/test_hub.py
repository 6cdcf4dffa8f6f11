"""push / load("hf:...") against a fake Hub in a local folder (no network), and the offline message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.share import hub

hf = pytest.importorskip("huggingface_hub", reason="pip install 'ganforge[hub]'")


class FakeHub:
    """HfApi and snapshot_download backed by a folder: repos/<owner>/<name>/."""

    def __init__(self, root: Path) -> None:
        self.root, self.created = root, []

    def api(self, token=None):
        hub_ = self

        class Api:
            def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False):
                hub_.created.append((repo_id, private))
                (hub_.root / repo_id).mkdir(parents=True, exist_ok=True)
                return f"https://hub.invalid/{repo_id}"

            def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None):
                shutil.copytree(folder_path, hub_.root / repo_id, dirs_exist_ok=True)

        return Api()

    def snapshot_download(self, repo_id, revision=None, **kw):
        path = self.root / repo_id
        if not path.exists():
            raise hf.errors.LocalEntryNotFoundError(f"{repo_id} is not cached")
        return str(path)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(hf, "HfApi", fake.api)
    monkeypatch.setattr(hf, "snapshot_download", fake.snapshot_download)
    return fake


def test_push_then_load(runs, fake_hub):
    url = hub.push(runs["dcgan"], "alice/tiny-dcgan", private=True)
    assert url.endswith("alice/tiny-dcgan") and fake_hub.created == [("alice/tiny-dcgan", True)]
    uploaded = fake_hub.root / "alice/tiny-dcgan"
    assert (uploaded / "README.md").exists() and (uploaded / "config.json").exists()
    assert 'ganforge.load("hf:alice/tiny-dcgan")' in (uploaded / "README.md").read_text()
    a = ganforge.load(str(runs["dcgan"])).generate([0, 1], output="tensor")
    b = ganforge.load("hf:alice/tiny-dcgan").generate([0, 1], output="tensor")
    assert torch.equal(a, b)


def test_cli_push_and_generate_hf(runs, fake_hub, tmp_path):
    r = CliRunner().invoke(main, ["push", str(runs["dcgan"]), "bob/sprites"])
    assert r.exit_code == 0, r.output
    assert 'ganforge.load("hf:bob/sprites")' in r.output
    r = CliRunner().invoke(main, ["generate", "hf:bob/sprites", "--seeds", "0-1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "o").glob("*.png"))) == 2


def test_refs_and_bad_ids():
    assert hub.parse_ref("hf:alice/tiny@v1") == ("alice/tiny", "v1")
    assert hub.parse_ref("hf:alice/tiny") == ("alice/tiny", None)
    for bad in ("hf:alice", "hf:alice/", "hf:a/b/c", "hf:../x"):
        with pytest.raises(ConfigError, match="OWNER/NAME"):
            hub.parse_ref(bad)
    r = CliRunner().invoke(main, ["push", "somewhere", "not-a-repo-id"])
    assert r.exit_code == 2 and "OWNER/NAME" in r.output


def test_offline_miss_says_what_to_do(tmp_path):
    # The real huggingface_hub, cache only: nothing is fetched, and the message says how to get the files.
    with pytest.raises(ConfigError, match=r"not in the local Hugging Face cache.*hf download alice/none"):
        hub.download("hf:alice/none", cache_dir=tmp_path / "cache", local_files_only=True)


def test_not_a_ganforge_repo(fake_hub):
    (fake_hub.root / "carol/text-model").mkdir(parents=True)
    (fake_hub.root / "carol/text-model" / "README.md").write_text("hi")
    with pytest.raises(ConfigError, match="not a ganforge model"):
        ganforge.load("hf:carol/text-model")
