"""Paired and unpaired archives (dataset.json `layout`), preparing two-sided folders, loading them as the
kind a family asks for, and reading zips safely (zip bombs, `../` member names)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge.data.archive as archive
from ganforge.data.archive import (
    read_archive,
    read_dataset_json,
    read_layout,
    read_paired_archive,
    read_unpaired_archive,
    write_archive,
    write_paired_archive,
    write_unpaired_archive,
)
from ganforge.data.dataset import ImageDataset, PairedDataset, UnpairedDataset, load_dataset
from ganforge.data.prepare import PrepareOptions, prepare, prepare_to, prepare_two_sided, prepare_two_sided_to
from ganforge.errors import ConfigError, DataError


def _rng_images(n: int, side: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, channels), dtype=np.uint8)  # (N, H, W, C)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Archives: writing and reading the layouts.


@pytest.mark.parametrize("dest_name", ["pairs.zip", "pairs"])
def test_paired_archive_round_trip(tmp_path, dest_name):
    src, tgt = _rng_images(5, channels=1, seed=1), _rng_images(5, seed=2)
    dest = write_paired_archive(src, tgt, tmp_path / dest_name, domains=["edges", "photos"])
    meta = read_dataset_json(dest)
    assert meta["layout"] == "paired" and meta["domains"] == ["edges", "photos"] and meta["labels"] is None
    assert meta["pairs"][0] == ["00000/img00000000.png", "00000/img00000001.png"]
    assert read_layout(dest) == "paired"
    sides = read_paired_archive(dest)
    assert (sides.a == src).all() and (sides.b == tgt).all() and sides.domains == ["edges", "photos"]
    # stylegan2-ada-pytorch's reading convention still works: every image, no labels.
    arc = read_archive(dest)
    assert len(arc.names) == 10 and arc.labels is None
    with pytest.raises(DataError, match="not a unpaired dataset"):
        read_unpaired_archive(dest)


@pytest.mark.parametrize("dest_name", ["domains.zip", "domains"])
def test_unpaired_archive_round_trip(tmp_path, dest_name):
    a, b = _rng_images(4, seed=3), _rng_images(7, seed=4)
    dest = write_unpaired_archive(a, b, tmp_path / dest_name, domains=["horses", "zebras"])
    meta = read_dataset_json(dest)
    assert meta["layout"] == "unpaired" and list(meta["domains"]) == ["horses", "zebras"]
    assert len(meta["domains"]["horses"]) == 4 and meta["domains"]["zebras"][0] == "00000/img00000004.png"
    sides = read_unpaired_archive(dest)
    assert (sides.a == a).all() and (sides.b == b).all() and sides.domains == ["horses", "zebras"]
    ds = load_dataset(dest, kinds=("unpaired",))
    assert isinstance(ds, UnpairedDataset) and ds.domains == ["horses", "zebras"]
    assert ds.a.shape == (4, 3, 8, 8) and ds.b.shape == (7, 3, 8, 8)


def test_plain_archives_have_the_images_layout(tmp_path):
    dest = write_archive(archive.ArchiveData(_rng_images(2)), tmp_path / "plain.zip")
    assert read_layout(dest) == "images" and "layout" not in read_dataset_json(dest)
    folder = tmp_path / "raw"
    folder.mkdir()
    assert read_layout(folder) == "images"  # no dataset.json at all


def test_two_sided_archives_are_replaced_only_with_overwrite(tmp_path):
    a, b = _rng_images(2), _rng_images(2, seed=1)
    dest = write_paired_archive(a, b, tmp_path / "p")
    with pytest.raises(DataError, match="--overwrite"):
        write_paired_archive(a, b, dest)
    write_unpaired_archive(a, b[:1], dest, overwrite=True)  # ganforge wrote it: replaceable
    assert read_layout(dest) == "unpaired"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temporary leftovers


@pytest.mark.parametrize(
    "meta, needle",
    [
        ({"layout": "sideways"}, "layout 'sideways'"),
        ({"layout": "paired"}, '"pairs"'),
        ({"layout": "paired", "pairs": [["00000/img00000000.png", "missing.png"]]}, "missing.png, which is not in"),
        ({"layout": "paired", "pairs": [["../outside.png", "00000/img00000000.png"]]}, "outside the dataset"),
        ({"layout": "unpaired", "domains": ["a", "b"]}, '"domains": {'),
    ],
)
def test_bad_layouts_are_one_clear_error(tmp_path, meta, needle):
    dest = write_archive(archive.ArchiveData(_rng_images(2)), tmp_path / "d")
    (tmp_path / "outside.png").write_bytes(_png(_rng_images(1)[0]))
    (dest / "dataset.json").write_text(json.dumps({"labels": None, **meta}))
    with pytest.raises(DataError) as info:
        load_dataset(dest, kinds=("paired", "unpaired"))
    assert needle in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# load_dataset: the kind the family asks for, or an error naming the model that fits.


def test_load_dataset_gives_aligned_pairs_from_a_paired_archive(tmp_path):
    src = _rng_images(6, side=16, seed=5)
    tgt = 255 - src  # the target is a pixelwise function of the source: alignment is checkable anywhere
    dest = write_paired_archive(src, tgt, tmp_path / "inv.zip", domains=["x", "inverted"])
    ds = load_dataset(dest, kinds=("paired",), options={"crop": 12})
    assert isinstance(ds, PairedDataset) and ds.crop == 12 and ds.spec().domains == ["x", "inverted"]
    torch.manual_seed(0)
    b = ds.stream(6, 0, xflip=True).next()
    assert b["source"].shape == (6, 3, 12, 12)
    assert torch.allclose(b["source"], -b["target"], atol=1e-5)  # cropped and flipped together
    small = load_dataset(dest, kinds=("paired",), resolution=8, channels=1)
    assert small.source.shape == (6, 1, 8, 8) and small.target.shape == (6, 1, 8, 8)


def test_an_image_family_given_a_paired_archive_is_told_what_to_do(tmp_path):
    dest = write_paired_archive(
        _rng_images(2), _rng_images(2, seed=1), tmp_path / "e2p.zip", domains=["edges", "photos"]
    )
    with pytest.raises(DataError) as info:
        load_dataset(dest)  # an image family's kinds
    msg = str(info.value)
    assert "paired dataset (edges -> photos)" in msg and "--model pix2pix" in msg and "without --paired" in msg


def test_unpaired_data_is_refused_by_a_paired_family_and_paired_data_serves_an_unpaired_one(tmp_path):
    a, b = _rng_images(3), _rng_images(3, seed=1)
    unpaired = write_unpaired_archive(a, b, tmp_path / "u.zip", domains=["day", "night"])
    with pytest.raises(DataError, match=r"unpaired dataset \(day, night\).*--model cyclegan"):
        load_dataset(unpaired, kinds=("paired",))
    paired = write_paired_archive(a, b, tmp_path / "p.zip")
    ds = load_dataset(paired, kinds=("unpaired",))
    assert isinstance(ds, UnpairedDataset) and (ds.a.permute(0, 2, 3, 1).numpy() == a).all()


def test_plain_images_given_to_a_paired_family_is_one_clear_error(tmp_path):
    dest = write_archive(archive.ArchiveData(_rng_images(3)), tmp_path / "plain.zip")
    with pytest.raises(DataError, match=r"plain images.*ganforge prepare --paired"):
        load_dataset(dest, kinds=("paired",))
    assert isinstance(load_dataset(dest), ImageDataset)


# ---------------------------------------------------------------------------------------------------
# Preparing two-sided folders (the library side of `ganforge prepare --paired/--unpaired`).


def _pair(rng, side: int = 12) -> tuple[np.ndarray, np.ndarray]:
    fill = np.full((side, side, 3), 255, np.uint8)
    y, x = rng.integers(0, side // 2, 2)
    fill[y : y + side // 2, x : x + side // 2] = rng.integers(0, 200, 3)
    edge = np.where((fill == 255).all(-1, keepdims=True), 255, 0).astype(np.uint8).repeat(3, -1)
    return edge, fill


@pytest.fixture
def ab_folder(tmp_path) -> Path:
    """pairs/A/*.png + pairs/B/*.png matched by name, one B file without a partner, a corrupt A file
    (whose partner in B is then left out) and a stray note beside the two sides."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pairs"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(5):
        edge, fill = _pair(rng)
        Image.fromarray(edge).save(root / "A" / f"{i}.png")
        Image.fromarray(fill).save(root / "B" / f"{i}.jpg", quality=98)  # another extension: matched by name
    (root / "A" / "3.png").write_bytes(b"not a png")
    Image.fromarray(fill).save(root / "B" / "lonely.png")
    (root / "notes.txt").write_text("hi")
    return root


def test_prepare_two_sided_matches_by_name_and_reports_what_it_left_out(ab_folder):
    data = prepare_two_sided(ab_folder, "paired", PrepareOptions(resolution=8))
    assert data.layout == "paired" and data.domains == ["A", "B"] and data.a.shape == data.b.shape == (4, 8, 8, 3)
    assert [Path(f).stem for f in data.files_a] == [Path(f).stem for f in data.files_b] == ["0", "1", "2", "4"]
    reasons = {Path(f).name: r for f, r in data.skipped}
    assert reasons["lonely.png"] == "no partner in A/"
    assert reasons["3.jpg"] == "its partner in A/ was skipped" and reasons["3.png"].startswith("not a readable image")
    assert reasons["notes.txt"].startswith("not read: paired data is read from A/ and B/ only")
    with pytest.raises(ConfigError, match="--labels does not apply"):
        prepare_two_sided(ab_folder, "paired", PrepareOptions(labels="x.csv"))


def test_prepare_two_sided_side_by_side_images(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "facades"
    root.mkdir()
    pairs = [_pair(rng, 16) for _ in range(4)]
    for i, (edge, fill) in enumerate(pairs):
        Image.fromarray(np.concatenate([edge, fill], axis=1)).save(root / f"{i}.png")
    Image.fromarray(pairs[0][0]).save(root / "square.png")  # not A|B: skipped, with the reason
    data = prepare_two_sided(root, "paired", PrepareOptions())  # automatic resolution: one half's size
    assert data.resolution == 16 and data.a.shape == (4, 16, 16, 3)
    assert (data.a == np.stack([p[0] for p in pairs])).all() and (data.b == np.stack([p[1] for p in pairs])).all()
    assert [(Path(f).name, r.split(":")[0]) for f, r in data.skipped] == [("square.png", "not side by side")]
    assert len(prepare([root], PrepareOptions(half="right", resolution=8)).images) == 4  # the pipeline's own option


def test_prepare_two_sided_unpaired_and_to_an_archive(tmp_path, ab_folder):
    (ab_folder / "A").rename(ab_folder / "trainA")
    (ab_folder / "B").rename(ab_folder / "trainB")
    (ab_folder / "testA").mkdir()  # CycleGAN's layout: the train folders are the sides
    data = prepare_two_sided_to(ab_folder, tmp_path / "h2z.zip", "unpaired", PrepareOptions(resolution=8))
    assert data.domains == ["trainA", "trainB"] and len(data.a) == 4 and len(data.b) == 6
    assert read_layout(data.dest) == "unpaired"
    report = data.report.read_text()
    assert "3.png" in report and "testA" in report and "notes.txt" in report
    with pytest.raises(DataError, match="needs two sub-folders"):
        prepare_two_sided(ab_folder / "trainA", "unpaired", PrepareOptions(resolution=8))


def test_a_raw_paired_folder_and_its_archive_load_the_same(tmp_path, ab_folder):
    raw = load_dataset(ab_folder, kinds=("paired",), resolution=8)
    dest = prepare_two_sided_to(ab_folder, tmp_path / "p", "paired", PrepareOptions(resolution=8)).dest
    prepared = load_dataset(dest, kinds=("paired",))
    assert torch.equal(raw.source, prepared.source) and torch.equal(raw.target, prepared.target)


# ---------------------------------------------------------------------------------------------------
# Zip safety.


def _zip_with_bomb(path: Path, size: int, compression: int = zipfile.ZIP_DEFLATED) -> None:
    """A good PNG and `size` bytes of zeros named like an image, written in chunks (never whole in memory)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.png", _png(_rng_images(1)[0]))
        info = zipfile.ZipInfo("bomb.png")
        info.compress_type = compression
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = bytes(2**20)
            for _ in range(size // len(chunk)):
                f.write(chunk)


@pytest.fixture
def opened(monkeypatch):
    """The zip members opened for reading, in order."""
    names: list[str] = []
    real = zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            names.append(name if isinstance(name, str) else name.filename)
        return real(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def test_a_zip_bomb_is_refused_unread(tmp_path, opened):
    bomb = tmp_path / "bomb.zip"
    _zip_with_bomb(bomb, 4 * 2**20)  # 4 MiB of zeros deflate about 1,000:1
    info = zipfile.ZipFile(bomb).getinfo("bomb.png")
    assert info.file_size / info.compress_size > archive.MAX_COMPRESSION_RATIO
    opened.clear()
    with pytest.raises(DataError, match=r"refusing to read member bomb\.png: it would expand .*zip bombs"):
        read_archive(bomb)
    assert "bomb.png" not in opened
    data = prepare([bomb], PrepareOptions(resolution=8))  # prepare: skipped with the reason, the rest kept
    assert len(data.images) == 1
    assert data.skipped == [(f"{bomb}:bomb.png", data.skipped[0][1])]
    assert data.skipped[0][1].startswith("too large: zip member refused unread: it would expand")
    assert "bomb.png" not in opened


def test_a_member_over_the_size_cap_is_refused_unread(tmp_path, monkeypatch, opened):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 2**20)
    big = tmp_path / "big.zip"
    _zip_with_bomb(big, 2 * 2**20, zipfile.ZIP_STORED)  # stored: an honest 1:1 ratio, but over the cap
    opened.clear()
    data = prepare([big], PrepareOptions())  # automatic resolution reads headers: not the refused one's
    assert "bomb.png" not in opened
    assert "declares 2 MiB uncompressed, over the 1 MiB limit" in data.skipped[0][1]
    # Decompression stops at the cap even when the declared size is not checked first.
    monkeypatch.setattr(archive, "zip_member_problem", lambda info: None)
    read_sizes: list[int] = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, n=-1: read_sizes.append(n) or real_read(self, n))
    with zipfile.ZipFile(big) as zf, pytest.raises(DataError, match="expands beyond 1 MiB"):
        archive.read_zip_member(zf, "bomb.png")
    assert all(0 < n <= archive._CHUNK for n in read_sizes) and len(read_sizes) <= 2


def test_member_names_are_never_paths(tmp_path):
    """`../` and absolute member names are only read into memory; nothing is ever extracted."""
    evil = tmp_path / "work" / "evil.zip"
    evil.parent.mkdir()
    img = _png(_rng_images(1)[0])
    with zipfile.ZipFile(evil, "w") as zf:
        for name in ("../escape.png", "/abs/rooted.png", "ok/../../climb.png", "fine.png"):
            zf.writestr(zipfile.ZipInfo(name), img)
    assert [i.filename for i in zipfile.ZipFile(evil).infolist()][0] == "../escape.png"  # kept as written
    before = sorted(p for p in tmp_path.rglob("*"))
    arc = read_archive(evil)
    assert len(arc.images) == 4 and "../escape.png" in arc.names
    out = tmp_path / "work" / "out"
    prepared = prepare_to([evil], out, PrepareOptions(resolution=8))
    assert len(prepared.images) == 1  # `..` and absolute names are skipped, with the reason, the others read
    assert sorted(f.split(":", 1)[1] for f, why in prepared.skipped if "unsafe" in why) == sorted(
        ["../escape.png", "/abs/rooted.png", "ok/../../climb.png"]
    )
    assert load_dataset(evil).images.shape[0] == len(prepared.images)
    after = sorted(p for p in tmp_path.rglob("*"))
    new = {p.relative_to(tmp_path).as_posix() for p in after} - {p.relative_to(tmp_path).as_posix() for p in before}
    assert all(n.startswith(("work/out", "work/out-report.csv")) for n in new), new
    assert not any(p.name in ("escape.png", "rooted.png", "climb.png") for p in after)
    members = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert all(m in ("dataset.json", ".ganforge-dataset") or archive._MEMBER.fullmatch(m) for m in members)


def test_dedupe_drops_a_pair_only_when_both_sides_repeat(tmp_path, ab_folder):
    import shutil

    shutil.copy(ab_folder / "A" / "0.png", ab_folder / "A" / "copy.png")
    shutil.copy(ab_folder / "B" / "0.jpg", ab_folder / "B" / "copy.jpg")  # the same pair again
    shutil.copy(ab_folder / "A" / "1.png", ab_folder / "A" / "half.png")
    shutil.copy(ab_folder / "B" / "2.jpg", ab_folder / "B" / "half.jpg")  # one side repeats: a new pair
    data = prepare_two_sided(ab_folder, "paired", PrepareOptions(resolution=8, dedupe=True))
    assert len(data.a) == 5 and [Path(d).name for d, _ in data.duplicates] == ["copy.png"]
