"""Data from outside: named downloads of the classic sets (`data/downloads/`) and `hf:` datasets.

Everything runs offline on small files generated here in the real formats: gzipped IDX (MNIST), CIFAR-10
python batches pickled with protocol 2, a CycleGAN-layout zip, a pix2pix-layout tar.gz, an
img_align_celeba-style zip, and `datasets` folders (save_to_disk, imagefolder). Downloads go through the
real code with file:// URLs (urllib reads them), so caching, checksums and atomic renames are exercised."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import sys
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.data import downloads
from ganforge.data.dataset import ImageDataset, PairedDataset, UnpairedDataset, load_dataset
from ganforge.data.downloads import catalog, fetch
from ganforge.data.downloads.fetch import Remote
from ganforge.data.downloads.formats import UnsafePickle, parse_idx, read_pickled_batch
from ganforge.errors import DataError, MissingDependencyError


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Every test gets its own empty data directory, and no test may reach the network."""
    home = tmp_path / "data"
    monkeypatch.setenv("GANFORGE_DATA", str(home))
    real = fetch.download

    def local_only(url, dest, *, progress=False):
        if not url.startswith("file:"):
            raise urllib.error.URLError(f"no network in tests ({url})")
        return real(url, dest, progress=progress)

    monkeypatch.setattr(fetch, "download", local_only)
    return home


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serve(folder: Path, name: str, data: bytes) -> str:
    """Put `data` in a local 'mirror' folder; its file:// URL."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return (folder / name).as_uri()


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# IDX / MNIST.


def _idx(arr: np.ndarray) -> bytes:
    """IDX as on LeCun's page: 0, 0, type 0x08 (uint8), ndim; big-endian uint32 dims; the bytes."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(head + arr.astype(np.uint8).tobytes())


def _fake_mnist(tmp_path: Path, monkeypatch, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    mirror = tmp_path / "mirror"
    for stem, imgs, labs in (("train", x, y), ("t10k", x[:2], y[:2])):
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", labs)):
            name = f"{stem}-{kind}-ubyte.gz"
            data = _idx(arr)
            url = _serve(mirror, name, data)
            monkeypatch.setitem(
                catalog.MNIST_FILES, name, Remote(name, ("file:///nonexistent/" + name, url), md5=_md5(data))
            )
    return x, y


def test_idx_parser_reads_shape_and_values_and_rejects_damage():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = parse_idx(gzip.decompress(_idx(arr)))
    assert out.shape == (2, 3, 4) and (out == arr).all()
    i32 = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + np.array([1, -2, 70000], ">i4").tobytes()
    assert parse_idx(i32).tolist() == [1, -2, 70000]  # big-endian ints come out as numbers, not byte-swapped
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(gzip.decompress(_idx(arr))[:-1])
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\x89PNG....")


def test_mnist_downloads_once_checks_and_caches(tmp_path, monkeypatch, data_home):
    x, y = _fake_mnist(tmp_path, monkeypatch)
    calls = []
    inner = fetch.download
    monkeypatch.setattr(
        fetch, "download", lambda url, dest, progress=False: (calls.append(url), inner(url, dest, progress=progress))
    )

    ds = load_dataset("mnist")
    assert isinstance(ds, ImageDataset)
    assert ds.images.shape == (6, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x))
    assert ds.labels.tolist() == y.tolist() and ds.class_names == [str(i) for i in range(10)]
    # The first mirror is unreachable: the second one served each of the two train files.
    assert len(calls) == 4 and sum(c.startswith("file:///nonexistent") for c in calls) == 2
    assert (data_home / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (data_home / "mnist").iterdir() if ".part" in p.name]  # no temporary leftovers

    calls.clear()
    again = load_dataset("mnist", resolution=32, channels=3)  # from the cache: no download
    assert calls == [] and again.images.shape == (6, 3, 32, 32)
    test = load_dataset("mnist:test")
    assert len(test) == 2 and len(calls) == 4  # the test split's own two files, fetched once
    assert len(load_dataset("mnist[2:5]")) == 3


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, monkeypatch, data_home):
    url = _serve(tmp_path / "mirror", "f.bin", b"tampered")
    remote = Remote("f.bin", (url,), md5=_md5(b"the real file"))
    with pytest.raises(DataError, match=r"checksum mismatch for the download from file:.*md5"):
        fetch.ensure("someset", remote)
    assert list((data_home / "someset").iterdir()) == []  # neither the file nor a temporary

    # A file put in place by hand is checked too, and the message says where it is and what to do.
    (data_home / "someset" / "f.bin").write_bytes(b"also wrong")
    with pytest.raises(DataError, match=r"checksum mismatch for .*someset/f\.bin.*delete it"):
        fetch.ensure("someset", remote)
    (data_home / "someset" / "f.bin").write_bytes(b"the real file")
    assert fetch.ensure("someset", remote).read_bytes() == b"the real file"


def test_sha256_and_size_are_checked(tmp_path, data_home):
    data = b"x" * 100
    url = _serve(tmp_path / "mirror", "g.bin", data)
    with pytest.raises(DataError, match="has 100 bytes, but g.bin has 99"):
        fetch.ensure("s", Remote("g.bin", (url,), sha256=_sha256(data), size=99))
    assert fetch.ensure("s", Remote("g.bin", (url,), sha256=_sha256(data), size=100)).exists()


def test_unpublished_checksum_is_pinned_on_first_use(tmp_path, data_home):
    url = _serve(tmp_path / "mirror", "p.tar.gz", b"first copy")
    remote = Remote("p.tar.gz", (url,))
    path = fetch.ensure("p", remote)
    pin = path.with_name("p.tar.gz.sha256")
    assert pin.read_text().split()[0] == _sha256(b"first copy")
    path.write_bytes(b"a different copy")  # changed later (size and mtime change: re-checked)
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch.ensure("p", remote)


def test_offline_error_names_the_url_and_the_exact_path(data_home):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist")
    msg = str(err.value)
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz" in msg
    assert str(data_home / "fashion-mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "\n" not in msg


def test_celeba_is_manual_and_says_where_to_put_it(monkeypatch, data_home):
    monkeypatch.setattr(fetch, "download", lambda *a, **k: pytest.fail("Google Drive must not be scripted"))
    with pytest.raises(DataError) as err:
        load_dataset("celeba64")
    msg = str(err.value)
    assert catalog.CELEBA_PAGE in msg and str(data_home / "celeba" / "img_align_celeba.zip") in msg


def test_celeba_centre_crops_and_caches_the_result(tmp_path, monkeypatch, data_home):
    # 178x218 like img_align_celeba: red inside the centred 108 px square, blue outside it.
    img = np.zeros((218, 178, 3), np.uint8)
    img[..., 2] = 255
    top, left = (218 - 108) // 2, (178 - 108) // 2
    img[top : top + 108, left : left + 108] = (255, 0, 0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"img_align_celeba/{i + 1:06d}.jpg", _jpeg(img))
    data = buf.getvalue()
    (data_home / "celeba").mkdir(parents=True)
    (data_home / "celeba" / "img_align_celeba.zip").write_bytes(data)  # the manual download
    monkeypatch.setattr(catalog, "CELEBA", dataclasses.replace(catalog.CELEBA, md5=_md5(data), sha256=None, size=None))

    ds = load_dataset("celeba64")
    assert ds.images.shape == (3, 3, 64, 64)
    px = ds.images.float().mean((0, 2, 3))
    assert px[0] > 240 and px[2] < 15  # only the centre square: all red
    wide = load_dataset("celeba128")
    assert wide.images.shape == (3, 3, 128, 128)
    assert wide.images[0, 2, 64, 2] > 200  # the 178 px square reaches the blue sides

    (data_home / "celeba" / "img_align_celeba.zip").unlink()  # the cached archive is enough now
    assert torch.equal(load_dataset("celeba64").images, ds.images)
    assert len(load_dataset("celeba64[:2]")) == 2


# ---------------------------------------------------------------------------------------------------
# CIFAR-10: pickled batches, read without unpickling code.


def _cifar_batch(images: np.ndarray, labels: list[int]) -> bytes:
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # (N, 32, 32, 3) -> R plane, G plane, B plane
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": labels,
        b"data": rows,
        b"filenames": [b"a.png"] * len(labels),
    }
    return pickle.dumps(batch, protocol=2)


def _cifar_tarball(path: Path, members: dict[str, bytes]) -> bytes:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def _install_cifar(tmp_path, monkeypatch, members) -> None:
    data = _cifar_tarball(tmp_path / "cifar-10-python.tar.gz", members)
    url = (tmp_path / "cifar-10-python.tar.gz").as_uri()
    monkeypatch.setattr(catalog, "CIFAR10", Remote("cifar-10-python.tar.gz", (url,), md5=_md5(data)))


def test_cifar10_batches_load_with_labels_and_pixel_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    train = [rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for _ in range(5)]
    test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    members = {f"data_batch_{i + 1}": _cifar_batch(train[i], [i, 9 - i]) for i in range(5)}
    members["test_batch"] = _cifar_batch(test, [3, 4, 5])
    members["batches.meta"] = pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    _install_cifar(tmp_path, monkeypatch, members)

    ds = load_dataset("cifar10")
    assert ds.images.shape == (10, 3, 32, 32)
    assert torch.equal(ds.images.permute(0, 2, 3, 1), torch.from_numpy(np.concatenate(train)))
    assert ds.labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert ds.class_names[:3] == ["airplane", "automobile", "bird"]
    t = load_dataset("cifar10:test")
    assert t.labels.tolist() == [3, 4, 5] and torch.equal(t.images.permute(0, 2, 3, 1), torch.from_numpy(test))


class _Hostile:
    """Unpickling this with pickle.load would run a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Hostile(marker), b"labels": [0]}, protocol=2)
    with pytest.raises(UnsafePickle, match=r"refusing to load: the pickle asks for (posix|os)\.system"):
        read_pickled_batch(evil, "evil")
    assert not marker.exists()

    # The same payload inside a CIFAR tarball: the load fails with one clear error, and nothing ran.
    members = {f"data_batch_{i}": evil for i in range(1, 6)}
    members.update(test_batch=evil, **{"batches.meta": pickle.dumps({b"label_names": [b"a"]}, protocol=2)})
    _install_cifar(tmp_path, monkeypatch, members)
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset("cifar10")
    assert not marker.exists()

    # Arrays of Python objects are code in disguise too (their elements are pickles): refused.
    with pytest.raises(UnsafePickle, match="only plain numeric arrays"):
        read_pickled_batch(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), "objects")
    # The restricted reader still reads every plain value a batch may hold, at any protocol.
    plain = {b"k": [1, 2.5, None, (b"x", "y")], b"a": np.arange(6, dtype=">i2").reshape(2, 3)}
    for proto in (2, 4, 5):
        out = read_pickled_batch(pickle.dumps(plain, protocol=proto), "plain")
        assert out["k"] == [1, 2.5, None, (b"x", "y")] and out["a"].tolist() == [[0, 1, 2], [3, 4, 5]]


# ---------------------------------------------------------------------------------------------------
# CycleGAN and pix2pix archives.


def _install(monkeypatch, name: str, archive: Path) -> None:
    entry = catalog.CATALOG[name]
    remote = Remote(archive.name, (archive.as_uri(),), sha256=_sha256(archive.read_bytes()))
    monkeypatch.setitem(catalog.CATALOG, name, dataclasses.replace(entry, files=(remote,)))


def _solid(colour, size=(16, 16)) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (size[1], size[0], 1))


def test_cyclegan_zip_loads_unpaired_with_its_splits(tmp_path, monkeypatch, data_home):
    counts = {"trainA": 3, "trainB": 5, "testA": 1, "testB": 2}
    colours = {"A": (250, 0, 0), "B": (0, 0, 250)}
    path = tmp_path / "horse2zebra.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("horse2zebra/", b"")
        for folder, n in counts.items():
            for i in range(n):
                zf.writestr(f"horse2zebra/{folder}/n{i:04d}.jpg", _jpeg(_solid(colours[folder[-1]])))
    _install(monkeypatch, "horse2zebra", path)

    ds = load_dataset("horse2zebra", kinds=("unpaired",))
    assert isinstance(ds, UnpairedDataset) and ds.domains == ["horse", "zebra"]
    assert ds.a.shape == (3, 3, 16, 16) and ds.b.shape == (5, 3, 16, 16)
    assert ds.a[:, 0].float().mean() > 200 and ds.b[:, 2].float().mean() > 200  # A is trainA, B is trainB
    test = load_dataset("horse2zebra:test", kinds=("unpaired",))
    assert (len(test.a), len(test.b)) == (1, 2)

    # Extracted once: later loads neither download nor extract again.
    monkeypatch.setattr(catalog, "extract", lambda *a, **k: pytest.fail("extracted twice"))
    path.unlink()
    assert len(load_dataset("horse2zebra", kinds=("unpaired",)).b) == 5
    with pytest.raises(DataError, match="unpaired"):
        load_dataset("horse2zebra", kinds=("image",))  # plain-image models get the existing clear error


def test_archive_with_a_path_outside_is_refused(tmp_path, monkeypatch, data_home):
    path = tmp_path / "monet2photo.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("monet2photo/trainA/1.jpg", _jpeg(_solid((1, 2, 3))))
        zf.writestr("monet2photo/../../evil.jpg", b"x")
    _install(monkeypatch, "monet2photo", path)
    with pytest.raises(DataError, match="outside the dataset folder"):
        load_dataset("monet2photo", kinds=("unpaired",))
    assert not (data_home / "evil.jpg").exists() and not (data_home.parent / "evil.jpg").exists()
    assert not (data_home / "monet2photo" / "extracted").exists()


def test_pix2pix_tarball_loads_paired_side_by_side(tmp_path, monkeypatch):
    path = tmp_path / "facades.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for split, n in (("train", 4), ("val", 2), ("test", 1)):
            for i in range(n):
                pair = np.concatenate([_solid((240, 10, 10)), _solid((10, 10, 240))], axis=1)  # photo | labels
                data = _jpeg(pair)
                info = tarfile.TarInfo(f"facades/{split}/{i + 1}.jpg")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    _install(monkeypatch, "facades", path)

    ds = load_dataset("facades", kinds=("paired",))
    assert isinstance(ds, PairedDataset) and len(ds) == 4 and ds.domains == ["labels", "photo"]
    # Facades are trained labels -> photo (pix2pix's BtoA): source is the right half, target the left.
    assert ds.source[:, 2].float().mean() > 200 and ds.target[:, 0].float().mean() > 200
    assert len(load_dataset("facades:val", kinds=("paired",))) == 2
    assert len(load_dataset("facades[:3]", kinds=("paired",))) == 3
    with pytest.raises(DataError, match="no split 'test2'"):
        load_dataset("facades:test2", kinds=("paired",))


def test_names_do_not_collide_and_a_local_folder_wins(tmp_path, monkeypatch):
    from ganforge.data import builtin

    assert not set(downloads.names()) & set(builtin.names())
    assert downloads.claims("mnist") and downloads.claims("cifar10:test[:100]") and not downloads.claims("emoji")
    (tmp_path / "mnist").mkdir()
    Image.fromarray(_solid((0, 200, 0), (8, 8))).save(tmp_path / "mnist" / "a.png")
    monkeypatch.chdir(tmp_path)
    assert not downloads.claims("mnist") and downloads.claims("download:mnist")
    assert load_dataset("mnist").images.shape == (1, 3, 8, 8)  # the local folder, not a download
    assert set(downloads.describe()) == set(downloads.names())


# ---------------------------------------------------------------------------------------------------
# Hugging Face datasets (hf:).


@pytest.fixture
def hf(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def _hf_dataset(datasets, n: int = 6, size: int = 12):
    rng = np.random.default_rng(2)
    imgs = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog", "fox"])})
    return datasets.Dataset.from_dict({"image": imgs, "label": [i % 3 for i in range(n)]}, features=feats), imgs


def test_hf_save_to_disk_with_class_labels(tmp_path, hf):
    ds, imgs = _hf_dataset(hf)
    ds.save_to_disk(str(tmp_path / "sd"))
    out = load_dataset(f"hf:{tmp_path / 'sd'}")
    assert isinstance(out, ImageDataset)
    assert out.images.shape == (6, 3, 12, 12)  # automatic resolution: the images' own size
    assert torch.equal(out.images[1].permute(1, 2, 0), torch.from_numpy(np.array(imgs[1])))
    assert out.labels.tolist() == [0, 1, 2, 0, 1, 2] and out.class_names == ["cat", "dog", "fox"]
    assert len(load_dataset(f"hf:{tmp_path / 'sd'}:train[:4]")) == 4  # a cap on how many are read
    assert load_dataset(f"hf:{tmp_path / 'sd'}", resolution=8, channels=1).images.shape == (6, 1, 8, 8)


def test_hf_dataset_dict_split_and_column(tmp_path, hf):
    _, imgs = _hf_dataset(hf, n=4)
    feats = hf.Features({"label": hf.ClassLabel(names=["a", "b"]), "image": hf.Image(), "mask": hf.Image()})
    cols = {"label": [0, 1, 0, 1], "image": imgs, "mask": [Image.new("L", (12, 12), 7)] * 4}
    two = hf.Dataset.from_dict(cols, features=feats)
    hf.DatasetDict({"train": two, "test": two.select(range(1))}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_dataset(f"hf:{tmp_path / 'dd'}")) == 4
    masks = load_dataset(f"hf:{tmp_path / 'dd'}:test:mask")
    assert len(masks) == 1 and int(masks.images.float().mean()) == 7
    with pytest.raises(DataError, match="no split 'valid'; it has train, test"):
        load_dataset(f"hf:{tmp_path / 'dd'}:valid")
    with pytest.raises(DataError, match="column 'label' is ClassLabel, not Image"):
        load_dataset(f"hf:{tmp_path / 'dd'}:train:label")


def test_hf_images_go_through_the_prepare_pipeline(tmp_path, hf):
    rgba = np.zeros((10, 20, 4), np.uint8)  # fully transparent, twice as wide as high
    rgba[:, :, 0] = 255
    feats = hf.Features({"img": hf.Image()})
    hf.Dataset.from_dict({"img": [Image.fromarray(rgba, "RGBA")] * 2}, features=feats).save_to_disk(str(tmp_path / "a"))
    out = load_dataset(f"hf:{tmp_path / 'a'}")
    assert out.images.shape == (2, 3, 20, 20)  # padded to a square on the long side
    assert int(out.images.min()) == 255  # transparency flattened onto white (a raw folder gives the same)
    assert out.labels is None


def test_hf_imagefolder(tmp_path, hf):
    for c, colour in (("cats", (200, 0, 0)), ("dogs", (0, 200, 0))):
        (tmp_path / "imf" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(_solid(colour, (8, 8))).save(tmp_path / "imf" / c / f"{i}.png")
    out = load_dataset(f"hf:{tmp_path / 'imf'}")
    assert out.images.shape == (4, 3, 8, 8) and out.class_names == ["cats", "dogs"]
    assert sorted(out.labels.tolist()) == [0, 0, 1, 1]


def test_hf_offline_without_cache_gives_one_clear_line(tmp_path, hf, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        load_dataset("hf:someone/pokemon-sprites")
    msg = str(err.value)
    assert "hf:someone/pokemon-sprites" in msg and "HF_HUB_OFFLINE" in msg and "save_to_disk" in msg
    assert "\n" not in msg


def test_hf_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(MissingDependencyError, match=r"ganforge\[hub\]"):
        load_dataset("hf:owner/name")


def test_train_cli_on_an_hf_folder(tmp_path, hf):
    from ganforge.cli import main

    ds, _ = _hf_dataset(hf, n=8, size=16)
    ds.save_to_disk(str(tmp_path / "sd"))
    args = [
        "train",
        "--model",
        "dcgan",
        "--data",
        f"hf:{tmp_path / 'sd'}",
        "--steps",
        "2",
        "--run",
        "hf",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--set",
        "ngf=8",
        "--set",
        "ndf=8",
        "--set",
        "nz=8",
        "--batch",
        "4",
        "--precision",
        "fp32",
        "--quiet",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "done: 2 steps" in r.output
    r = CliRunner().invoke(main, ["train", "--data", "hf:", "--steps", "1", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and r.output.strip().startswith("error: hf: needs a dataset")
