"""Weights handling: verified atomic download (on a local file:// URL), offline use, and errors that say
exactly where to put the file. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from ganforge.errors import DataError
from ganforge.metrics import weights as W


def _payload(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"not really inception weights" * 1000)
    return src, hashlib.sha256(src.read_bytes()).hexdigest()


def test_download_verifies_checksum_and_writes_atomically(tmp_path):
    src, sha = _payload(tmp_path)
    dest = tmp_path / "cache" / "weights" / "w.pth"
    assert W.download(src.as_uri(), dest, sha[:8]) == dest
    assert dest.read_bytes() == src.read_bytes()
    bad = tmp_path / "cache" / "weights" / "bad.pth"
    with pytest.raises(DataError, match="does not start with 00000000"):
        W.download(src.as_uri(), bad, "00000000")
    assert not bad.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]  # no partial files left


def test_inception_weights_downloads_into_cache(tmp_path, monkeypatch):
    src, sha = _payload(tmp_path)
    monkeypatch.delenv("GANFORGE_OFFLINE")
    monkeypatch.setattr(W, "INCEPTION_URL", src.as_uri())
    monkeypatch.setattr(W, "INCEPTION_SHA256_PREFIX", sha[:8])
    monkeypatch.setattr(W, "_torch_hub_checkpoints", lambda: tmp_path / "no-hub")
    path = W.inception_weights(cache=tmp_path / "c")
    assert path == tmp_path / "c" / "weights" / W.INCEPTION_FILE and path.is_file()
    # Second call: found in the cache, no download (an opener that fails proves it).
    assert W.inception_weights(cache=tmp_path / "c", opener=_no_network) == path


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def test_missing_weights_error_names_path_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "_torch_hub_checkpoints", lambda: tmp_path / "no-hub")
    target = tmp_path / "c" / "weights" / W.INCEPTION_FILE
    with pytest.raises(DataError) as exc:  # offline (set by the fixture)
        W.inception_weights(cache=tmp_path / "c")
    msg = str(exc.value)
    assert str(target) in msg and W.INCEPTION_URL in msg and "--inception-weights" in msg
    monkeypatch.delenv("GANFORGE_OFFLINE")
    with pytest.raises(DataError, match="download failed") as exc:  # network attempted, fails
        W.inception_weights(cache=tmp_path / "c", opener=_no_network)
    assert str(target) in str(exc.value)
    assert not target.exists()


def test_explicit_path_and_environment_variable(tmp_path, monkeypatch):
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    assert W.inception_weights(f) == f
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(f))
    assert W.inception_weights() == f
    with pytest.raises(DataError, match="not found"):
        W.inception_weights(tmp_path / "nope.pth")


def test_corrupt_cached_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "_torch_hub_checkpoints", lambda: tmp_path / "no-hub")
    target = tmp_path / "c" / "weights" / W.INCEPTION_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    with pytest.raises(DataError, match="corrupt"):
        W.inception_weights(cache=tmp_path / "c")
