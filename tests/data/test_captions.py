"""Captions for text-to-image models: the built-in emoji carry their Unicode CLDR names, `prepare --captions`
reads a file,caption CSV (images without a usable caption are skipped with the reason), dataset.json keeps them,
and `datasets export` writes them back as captions.csv."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data import load_dataset
from ganforge.data.archive import read_archive
from ganforge.data.prepare import PrepareOptions, prepare
from ganforge.errors import DataError


def test_emoji_captions_are_their_unicode_names():
    ds = load_dataset("emoji")
    caps = ds.captions
    assert len(caps) == len(ds) == 3786
    assert len(set(caps)) == len(caps)  # every emoji has its own name (skin tones included)
    meta = json.loads((__import__("importlib.resources").resources.files("ganforge.builtin") / "emoji.json").read_text())
    by_file = dict(zip(meta["files"], caps))
    # Reference names: Unicode CLDR short names of these code points.
    assert by_file["2764-fe0f.png"] == "red heart"
    assert by_file["1f602.png"] == "face with tears of joy"
    assert by_file["1f1ef-1f1f5.png"] == "flag Japan"
    assert by_file["1f44b-1f3fd.png"] == "waving hand medium skin tone"
    assert ds.spec().captions[:1] == caps[:1]


def _folder(tmp_path, n=6):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(src / f"{i}.png")
    return src


def test_prepare_reads_captions_and_skips_images_without_one(tmp_path):
    src = _folder(tmp_path)
    cap = tmp_path / "captions.csv"
    with open(cap, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        w.writerows([("0.png", "a black square"), ("1.png", "dark, grey square"), ("2.png", " "), ("3.png", "x" * 200),
                     ("4.png", "flag: Japan 🇯🇵")])
    data = prepare([src], PrepareOptions(resolution=8, captions=str(cap)))
    assert data.captions == ["a black square", "dark, grey square", "flag: Japan 🇯🇵"]
    reasons = dict(data.skipped)
    assert reasons[str(src / "5.png")] == "no caption in captions.csv"
    assert "at most 128" in reasons[str(src / "3.png")]
    assert str(src / "2.png") in reasons  # an empty caption is no caption

    r = CliRunner().invoke(main, ["prepare", str(src), str(tmp_path / "out.zip"), "--captions", str(cap), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "captioned" in r.output
    assert read_archive(tmp_path / "out.zip").captions == data.captions


def test_a_missing_captions_file_is_one_line(tmp_path):
    src = _folder(tmp_path, 2)
    with pytest.raises(DataError, match="captions file .*nope.csv does not exist"):
        prepare([src], PrepareOptions(resolution=8, captions=str(tmp_path / "nope.csv")))


def test_export_writes_captions_that_prepare_reads_back(tmp_path):
    r = CliRunner().invoke(main, ["datasets", "export", "emoji", str(tmp_path / "tw")])
    assert r.exit_code == 0, r.output
    assert "captions:" in r.output
    rows = list(csv.DictReader(open(tmp_path / "tw" / "captions.csv", encoding="utf-8")))
    assert len(rows) == 3786 and rows[0]["file"].startswith("images/")
    ours = {row["file"]: row["caption"] for row in rows}
    assert ours["images/2764-fe0f.png"] == "red heart"
