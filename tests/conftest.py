"""Shared fixtures: tiny data so that family and loop tests run in seconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from helpers import make_archive


@pytest.fixture(autouse=True)
def _small_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_data(tmp_path):
    return str(make_archive(tmp_path / "tiny.zip"))


@pytest.fixture
def tiny_labelled_data(tmp_path):
    return str(make_archive(tmp_path / "tiny-labelled.zip", classes=3))
