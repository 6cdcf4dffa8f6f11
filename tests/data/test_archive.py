"""Writing prepared datasets: zip and folder archives, the StyleGAN2-ADA reading convention, atomic writes,
refusal to overwrite, and the per-file report."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganforge.data.archive as archive
from ganforge.data.archive import read_archive, read_dataset_json
from ganforge.data.prepare import PrepareOptions, default_report_path, prepare_to
from ganforge.errors import DataError

COLOURS = {"cats": [(255, 0, 0), (250, 10, 10), (240, 0, 20)], "dogs": [(0, 0, 255), (10, 10, 250)]}


@pytest.fixture
def pets(tmp_path) -> Path:
    """pets/cats/0..2.png, pets/dogs/0..1.png (each a different solid colour) and one corrupt file."""
    root = tmp_path / "pets"
    for cls, colours in COLOURS.items():
        (root / cls).mkdir(parents=True)
        for i, c in enumerate(colours):
            Image.new("RGB", (12, 10), c).save(root / cls / f"{i}.png")
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def opts(**kw) -> PrepareOptions:
    kw.setdefault("resolution", 8)
    return PrepareOptions(**kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_round_trip_through_read_archive(tmp_path, pets, dest_name):
    dest = tmp_path / dest_name
    data = prepare_to([pets], dest, opts())
    assert data.dest == dest and dest.exists()
    arc = read_archive(dest)
    assert (arc.images == data.images).all() and arc.images.shape == (5, 8, 8, 3)
    assert arc.labels.tolist() == data.labels.tolist() == [0, 0, 0, 1, 1]
    assert arc.class_names == data.class_names == ["cats", "dogs"]
    assert read_dataset_json(dest)["class_names"] == ["cats", "dogs"]
    assert leftovers(tmp_path) == []


def test_stylegan2_ada_reading_convention(tmp_path, pets):
    """What stylegan2-ada-pytorch's ImageFolderDataset does with a zip: every member with an image extension,
    sorted, and labels looked up by member name in dataset.json's [[name, int], ...] list."""
    dest = tmp_path / "pets.zip"
    prepare_to([pets], dest, opts())
    with zipfile.ZipFile(dest) as zf:
        names = zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        images = sorted(n for n in names if os.path.splitext(n)[1].lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        assert images == [f"00000/img{i:08d}.png" for i in range(5)]
        meta = json.loads(zf.read("dataset.json"))
        labels = dict(meta["labels"])
        per_image = [labels[n.replace("\\", "/")] for n in images]
        assert all(isinstance(v, int) for v in per_image) and per_image == [0, 0, 0, 1, 1]
        arr = np.array(Image.open(io.BytesIO(zf.read(images[3]))))
        assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8
        assert tuple(arr[4, 4]) == COLOURS["dogs"][0]


def test_unlabelled_dataset_json_has_null_labels(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    Image.new("L", (8, 8), 9).save(src / "g.png")
    dest = tmp_path / "g.zip"
    prepare_to([src], dest, opts(channels=1))
    assert read_dataset_json(dest) == {"labels": None}
    arc = read_archive(dest)
    assert arc.images.shape == (1, 8, 8, 1) and arc.labels is None


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_a_failure_mid_write_leaves_nothing_behind(tmp_path, pets, monkeypatch, dest_name):
    real = archive._png_bytes
    calls = []

    def flaky(img):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt  # Ctrl-C after a few images
        return real(img)

    monkeypatch.setattr(archive, "_png_bytes", flaky)
    dest = tmp_path / dest_name
    with pytest.raises(KeyboardInterrupt):
        prepare_to([pets], dest, opts())
    assert len(calls) == 3
    assert not dest.exists() and not default_report_path(dest).exists()
    assert leftovers(tmp_path) == []


def test_refuses_to_overwrite_before_reading_anything(tmp_path, pets, monkeypatch):
    dest = tmp_path / "out.zip"
    dest.write_bytes(b"precious")
    monkeypatch.setattr("ganforge.data.prepare._prepare_one", lambda *a: pytest.fail("read images"))
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        prepare_to([pets], dest, opts())
    assert dest.read_bytes() == b"precious"
    monkeypatch.undo()
    prepare_to([pets], dest, opts(), overwrite=True)
    assert len(read_archive(dest).images) == 5

    folder = tmp_path / "out"
    prepare_to([pets], folder, opts())
    prepare_to([pets], folder, opts(resolution=4), overwrite=True)
    assert read_archive(folder).images.shape[1] == 4
    (tmp_path / "weird.zip").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        prepare_to([pets], tmp_path / "weird.zip", opts(), overwrite=True)


def test_bad_destinations(tmp_path, pets):
    with pytest.raises(DataError, match="looks like an image file"):
        prepare_to([pets], tmp_path / "forgot-dest.png", opts())
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DataError, match="cannot write to .*a-file"):
        prepare_to([pets], tmp_path / "a-file" / "out.zip", opts())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: nothing to test
            pytest.skip("running as root")
        with pytest.raises(DataError, match="cannot write to"):
            prepare_to([pets], locked / "sub" / "out.zip", opts())
    finally:
        locked.chmod(0o700)


def test_report_lists_every_file_left_out(tmp_path, pets):
    (pets / "notes.txt").write_text("x")
    Image.new("RGB", (12, 10), COLOURS["cats"][0]).save(pets / "cats" / "copy.png")
    dest = tmp_path / "pets.zip"
    data = prepare_to([pets], dest, opts(dedupe=True))
    assert data.report == tmp_path / "pets-report.csv"
    rows = list(csv.DictReader(data.report.open()))
    by_status = {r["status"]: r for r in rows}
    assert [r["status"] for r in rows] == ["skipped", "duplicate", "ignored"]
    assert by_status["skipped"]["file"].endswith("broken.png") and by_status["skipped"]["reason"]
    assert by_status["duplicate"]["file"].endswith("copy.png")
    assert by_status["duplicate"]["reason"].endswith(str(pets / "cats" / "0.png"))
    assert by_status["ignored"]["file"].endswith("notes.txt")
    assert data.summary() == {
        "kept": 5, "skipped": 1, "duplicates": 1, "ignored": 1, "classes": 2, "resolution": 8, "channels": 3,
    }  # fmt: skip
    custom = tmp_path / "reports" / "r.csv"
    prepare_to([pets], tmp_path / "again", opts(), report_path=custom)
    assert custom.exists() and default_report_path(tmp_path / "again") == tmp_path / "again-report.csv"


def test_output_inside_the_source_folder_is_not_read_back(tmp_path, pets):
    dest = pets / "prepared"
    prepare_to([pets], dest, opts())
    again = prepare_to([pets], dest, opts(), overwrite=True)
    assert len(again.files) == 5 and not any("prepared" in f for f in again.files + again.ignored)


def test_written_files_follow_the_umask(tmp_path, pets):
    old = os.umask(0o022)
    try:
        prepare_to([pets], tmp_path / "z.zip", opts())
        prepare_to([pets], tmp_path / "d", opts())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "z.zip").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "z-report.csv").stat().st_mode) == 0o644
