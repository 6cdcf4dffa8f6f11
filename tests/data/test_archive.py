"""Writing prepared datasets: zip and folder archives, the StyleGAN2-ADA reading convention, atomic writes,
refusal to overwrite, and the per-file report."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganforge
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
    prepare_to([pets], dest, opts())
    monkeypatch.setattr("ganforge.data.prepare._prepare_one", lambda *a: pytest.fail("read images"))
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        prepare_to([pets], dest, opts())
    monkeypatch.undo()
    prepare_to([pets], dest, opts(resolution=4), overwrite=True)
    assert read_archive(dest).images.shape == (5, 4, 4, 3)

    folder = tmp_path / "out"
    prepare_to([pets], folder, opts())
    prepare_to([pets], folder, opts(resolution=4), overwrite=True)
    assert read_archive(folder).images.shape[1] == 4
    (tmp_path / "weird.zip").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        prepare_to([pets], tmp_path / "weird.zip", opts(), overwrite=True)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: equal before and after means nothing was touched."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "dest_of, relation",
    [
        (lambda t, pets: pets, "is the source"),
        (lambda t, pets: t, "contains the source"),
        (lambda t, pets: pets / "cats", "is inside the source"),
        (lambda t, pets: pets / "new" / "out.zip", "is inside the source"),
        (lambda t, pets: pets / "cats" / ".." / ".." / "pets", "is the source"),
        (lambda t, pets: t / "link", "is the source"),  # a symlink to the source
        (lambda t, pets: t / "link" / "dogs", "is inside the source"),
    ],
)
def test_a_destination_overlapping_a_source_is_refused_before_anything_is_read(
    tmp_path, tmp_path_factory, pets, monkeypatch, dest_of, relation
):
    """The reliability issue: `prepare SRC SRC --overwrite` (or a parent) deleted the source images and exited 0."""
    (tmp_path / "link").symlink_to(pets)
    (tmp_path / "unrelated.txt").write_text("mine")
    (pets / "notes.txt").write_text("mine too")
    before, before_all = tree(pets), tree(tmp_path)
    monkeypatch.setattr("ganforge.data.prepare._prepare_one", lambda *a: pytest.fail("read images"))
    dest = dest_of(tmp_path, pets)
    other = tmp_path_factory.mktemp("other")
    Image.new("RGB", (8, 8)).save(other / "x.png")
    for sources in ([pets], [other, pets]):  # any of several sources counts
        with pytest.raises(DataError, match=f"{relation} .*pets.*choose a destination outside") as err:
            prepare_to(sources, dest, opts(), overwrite=True)
        assert str(dest) in str(err.value) and "\n" not in str(err.value)
    assert tree(pets) == before and tree(tmp_path) == before_all


def test_a_zip_destination_that_is_the_zip_source_is_refused(tmp_path, pets):
    dest = tmp_path / "pets.zip"
    prepare_to([pets], dest, opts())
    before = dest.read_bytes()
    with pytest.raises(DataError, match="is the source"):
        prepare_to([dest], dest, opts(), overwrite=True)
    with pytest.raises(DataError, match="is the source"):
        prepare_to([dest], tmp_path / "." / "pets.zip", opts(), overwrite=True)
    assert dest.read_bytes() == before


def test_the_labels_file_and_report_are_inputs_too(tmp_path, pets):
    dest = tmp_path / "out"
    prepare_to([pets], dest, opts())
    labels = dest / "labels.csv"  # a user file put inside an earlier dataset, then used for the next one
    labels.write_text("file,label\n")
    with pytest.raises(DataError, match="contains the labels file"):
        prepare_to([pets], dest, opts(labels=str(labels)), overwrite=True)
    assert labels.exists()
    with pytest.raises(DataError, match="report .*is the source"):
        prepare_to([pets / "cats" / "0.png"], tmp_path / "x.zip", opts(), report_path=pets / "cats" / "0.png")
    (tmp_path / "mine.csv").write_text("precious,data\n")
    with pytest.raises(DataError, match="not a report ganforge wrote"):
        prepare_to([pets], tmp_path / "y.zip", opts(), report_path=tmp_path / "mine.csv")
    assert (tmp_path / "mine.csv").read_text() == "precious,data\n" and not (tmp_path / "y.zip").exists()


def test_overwrite_replaces_only_what_ganforge_wrote(tmp_path, pets, monkeypatch):
    monkeypatch.setattr("ganforge.data.prepare._prepare_one", lambda *a: pytest.fail("read images"))
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    backup = tmp_path / "backup.zip"
    with zipfile.ZipFile(backup, "w") as zf:
        zf.writestr("docs/thesis.tex", "x")
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as zf:  # images and a dataset.json, but not ganforge's layout
        zf.writestr("dataset.json", "{}")
        zf.writestr("holiday/beach.png", b"png")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"precious")
    for dest in (mine, backup, photos, junk):
        before = dest.read_bytes() if dest.is_file() else tree(dest)
        for overwrite in (False, True):
            with pytest.raises(DataError, match="not a dataset ganforge wrote.*remove it yourself or choose"):
                prepare_to([pets], dest, opts(), overwrite=overwrite)
        assert (dest.read_bytes() if dest.is_file() else tree(dest)) == before
    monkeypatch.undo()

    # A dataset folder ganforge wrote carries the marker; a user's file put in it makes it the user's again.
    out = tmp_path / "out"
    prepare_to([pets], out, opts())
    marker = json.loads((out / ".ganforge-dataset").read_text())
    assert marker["ganforge"] == ganforge.__version__ and "format" in marker
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a dataset ganforge wrote \\(it holds notes.txt\\)"):
        prepare_to([pets], out, opts(), overwrite=True)
    (out / "notes.txt").unlink()
    (out / ".ganforge-dataset").unlink()  # as older versions wrote it: refused, it cannot be told from a user's
    with pytest.raises(DataError, match="no .ganforge-dataset marker"):
        prepare_to([pets], out, opts(), overwrite=True)
    # The library guards itself, not only the CLI's checks.
    with pytest.raises(DataError, match="not a dataset ganforge wrote"):
        archive.write_archive(archive.ArchiveData(np.zeros((1, 4, 4, 3), np.uint8)), mine, overwrite=True)
    assert tree(mine) == {"thesis.tex": b"x"}


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_ctrl_c_while_overwriting_keeps_the_old_dataset(tmp_path, pets, monkeypatch, dest_name):
    dest = tmp_path / dest_name
    prepare_to([pets], dest, opts(resolution=4))
    old = dest.read_bytes() if dest.is_file() else tree(dest)
    source = tree(pets)
    real, calls = archive._png_bytes, []

    def flaky(img):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(img)

    monkeypatch.setattr(archive, "_png_bytes", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare_to([pets], dest, opts(), overwrite=True)
    assert (dest.read_bytes() if dest.is_file() else tree(dest)) == old
    assert tree(pets) == source and leftovers(tmp_path) == []


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, pets, monkeypatch):
    dest = tmp_path / "out"
    prepare_to([pets], dest, opts(resolution=4))
    old = tree(dest)
    real = os.replace

    def failing(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(DataError, match="cannot write .*No space left"):
        prepare_to([pets], dest, opts(), overwrite=True)
    assert tree(dest) == old and leftovers(tmp_path) == []


def test_destination_in_folders_that_do_not_exist_yet(tmp_path, pets, monkeypatch):
    dest = tmp_path / "a" / "b" / "out"
    prepare_to([pets], dest, opts())
    assert len(read_archive(dest).images) == 5 and (tmp_path / "a" / "b" / "out-report.csv").exists()
    monkeypatch.setattr(archive, "_png_bytes", lambda img: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        prepare_to([pets], tmp_path / "c" / "d" / "out.zip", opts())
    assert not (tmp_path / "c").exists()  # the folders made for it go too


def test_an_existing_file_where_a_folder_is_asked_for_is_kept(tmp_path, pets):
    (tmp_path / "afile").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="afile is a file, which --overwrite will not replace"):
            prepare_to([pets], tmp_path / "afile", opts(), overwrite=overwrite)
    assert (tmp_path / "afile").read_text() == "keep"


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
        "kept": 5, "skipped": 1, "duplicates": 1, "ignored": 1, "in_datasets": 0, "classes": 2, "captioned": False, "resolution": 8,
        "channels": 3,
    }  # fmt: skip
    custom = tmp_path / "reports" / "r.csv"
    prepare_to([pets], tmp_path / "again", opts(), report_path=custom)
    assert custom.exists() and default_report_path(tmp_path / "again") == tmp_path / "again-report.csv"


def test_an_earlier_dataset_inside_the_source_is_not_read_back(tmp_path, pets):
    """An output left inside the source (by an older version, or copied there) is skipped, and reported."""
    prepare_to([pets], tmp_path / "first", opts())
    shutil.copytree(tmp_path / "first", pets / "prepared")
    data = prepare_to([pets], tmp_path / "again", opts())
    assert len(data.files) == 5 and not any("prepared" in f for f in data.files + data.ignored)
    assert data.in_datasets == [(str(pets / "prepared"), 7)] and data.summary()["in_datasets"] == 7
    rows = [r for r in csv.DictReader(data.report.open()) if r["status"] == "in-dataset"]
    assert rows == [{"file": str(pets / "prepared"), "status": "in-dataset", "reason": rows[0]["reason"]}]
    assert "7 files" in rows[0]["reason"]


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
