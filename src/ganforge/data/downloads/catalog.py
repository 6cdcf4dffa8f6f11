"""The named classic datasets: where each file comes from, its published checksum, and how it becomes a dataset.

Checksums, with their sources (facts looked up, not computed here):
- MNIST, Fashion-MNIST, CIFAR-10 and CelebA MD5s: torchvision's dataset classes (`resources`, `tgz_md5`,
  `file_list`); Fashion-MNIST, CelebA and the CycleGAN zips' SHA-256 and sizes: TensorFlow Datasets'
  `url_checksums` (cycle_gan.txt lists the zips at their older people.eecs.berkeley.edu/~taesung_park
  address, which is kept as a mirror: the efrosgans server hosts the same files since they moved).
- The pix2pix tarballs have no published checksum: the first download's SHA-256 is pinned (see fetch.py).

Framing of the CelebA crops (img_align_celeba: 178x218 JPEGs, faces aligned by the eyes):
- celeba64: the centred 108x108 square, resized to 64 (the DCGAN-era convention, carpedm20/DCGAN-tensorflow's
  `--input_height 108 --crop` default), so the face fills the frame;
- celeba128: the centred 178x178 square (the whole width), resized to 128: the largest square, so 128 px is
  still a reduction and no detail is invented.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from .fetch import Remote, data_dir, ensure
from .formats import extract, read_cifar, read_idx

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
CYCLEGAN_MIRRORS = (
    "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/",
    "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/",
)
PIX2PIX_MIRRORS = ("http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/",)
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_DRIVE = "https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM"


def _idx_files(
    mirrors: tuple[str, ...], sums: dict[str, tuple[str | None, str | None, int | None]]
) -> dict[str, Remote]:
    return {
        f: Remote(f, tuple(m + f for m in mirrors), md5=md5, sha256=sha, size=size)
        for f, (md5, sha, size) in sums.items()
    }


MNIST_FILES = _idx_files(
    MNIST_MIRRORS,
    {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None, None),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", None, None),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", None, None),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", None, None),
    },
)
FASHION_FILES = _idx_files(
    FASHION_MIRRORS,
    {
        "train-images-idx3-ubyte.gz": (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            26421880,
        ),
        "train-labels-idx1-ubyte.gz": (
            "25c81989df183df01b3e8a0aad5dffbe",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            29515,
        ),
        "t10k-images-idx3-ubyte.gz": (
            "bef4ecab320f06d8554ea6380940ec79",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            4422102,
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "bb300cfdad3c16e7a12a480ee83cd310",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            5148,
        ),
    },
)
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR10 = Remote(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    md5="c58f30108f718f92721af3b95e74349a",
)
CELEBA = Remote(
    "img_align_celeba.zip",
    (CELEBA_DRIVE,),
    md5="00d2c5bc6d35e252742224ab0c1e8fcb",
    sha256="46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
    size=1443490838,
    manual=(
        f"CelebA is on Google Drive, which refuses scripted downloads: open {CELEBA_PAGE}, follow 'Align&Cropped "
        f"Images' to img_align_celeba.zip (or {CELEBA_DRIVE} in a browser), download it"
    ),
)


@dataclass(frozen=True)
class Named:
    """A named dataset: `--data NAME[:SPLIT][[A:B]]`."""

    name: str
    about: str  # one line for `--help` / listings
    kind: str  # image | paired | unpaired
    splits: tuple[str, ...]  # the first is the default
    load: Callable[..., Any]  # (entry, split, resolution, channels, progress) -> dataset
    files: tuple[Remote, ...] = ()  # everything it may download (for listings and tests)
    domains: tuple[str, str] = ("A", "B")  # two-sided sets: the names of the sides, as trained
    swap: bool = False  # pix2pix sets whose usual direction is B -> A (facades: labels on the right -> photo)
    crop: int = 0  # CelebA: the centred square cropped before resizing
    resolution: int = 0  # native (or cached) resolution


# ---------------------------------------------------------------------------------------------------
# Loaders.


def _image_dataset(images: np.ndarray, labels: np.ndarray | None, names: list[str], name: str, resolution, channels):  # noqa: ANN001, ANN202
    from ..kinds import ImageDataset

    ds = ImageDataset.from_numpy(images, labels, names, name=name)
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds


def _load_idx(entry: Named, split: str, resolution, channels, progress: bool):  # noqa: ANN001, ANN202
    files = MNIST_FILES if entry.name == "mnist" else FASHION_FILES
    stem = "train" if split == "train" else "t10k"
    x = read_idx(ensure(entry.name, files[f"{stem}-images-idx3-ubyte.gz"], progress=progress))
    y = read_idx(ensure(entry.name, files[f"{stem}-labels-idx1-ubyte.gz"], progress=progress))
    if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{entry.name}: the IDX files are not uint8 (N, H, W) images and (N,) labels; delete them and load again"
        )
    names = [str(i) for i in range(10)] if entry.name == "mnist" else list(FASHION_CLASSES)
    return _image_dataset(x, y.astype(np.int64), names, entry.name, resolution, channels)  # (N, 28, 28) grayscale


def _load_cifar(entry: Named, split: str, resolution, channels, progress: bool):  # noqa: ANN001, ANN202
    x, y, names = read_cifar(ensure(entry.name, CIFAR10, progress=progress), split)
    return _image_dataset(x, y, names, entry.name, resolution, channels)


_worker_zip: zipfile.ZipFile | None = None


def _open_worker_zip(path: str) -> None:
    global _worker_zip  # one open zip per worker process, for its whole life
    _worker_zip = zipfile.ZipFile(path)


def _crop_resize(task: tuple[str, int, int]) -> np.ndarray | None:
    """One CelebA JPEG: the centred `crop` square, resized to `size` (uint8 (size, size, 3)), or None if unreadable."""
    import io

    from PIL import Image

    name, crop, size = task
    assert _worker_zip is not None
    try:
        with Image.open(io.BytesIO(_worker_zip.read(name))) as im:
            w, h = im.size
            c = min(crop, w, h)
            left, top = round((w - c) / 2), round((h - c) / 2)  # centred, as DCGAN-tensorflow's center_crop
            out = im.convert("RGB").resize(
                (size, size), Image.Resampling.LANCZOS, box=(left, top, left + c, top + c), reducing_gap=3.0
            )
            return np.asarray(out)
    except Exception:  # a damaged member is skipped, not fatal (as in `ganforge prepare`)
        return None


def _celeba_images(zip_path: Path, crop: int, size: int, limit: slice, progress: bool) -> np.ndarray:
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg") and "/." not in n and "__MACOSX" not in n)
    names = names[limit]
    if not names:
        raise DataError(f"{zip_path} holds no JPEG images: it is not img_align_celeba.zip; delete it and load again")
    tasks = [(n, crop, size) for n in names]
    workers = min(os.cpu_count() or 1, 8)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="img", desc=f"celeba {size}px", leave=False)
    out: list[np.ndarray] = []
    try:
        if workers > 1 and len(tasks) >= 2000:
            from ..prepare import _pool_context  # fork on Linux (as `ganforge prepare`): no re-import per worker

            with _pool_context().Pool(workers, initializer=_open_worker_zip, initargs=(str(zip_path),)) as pool:
                for arr in pool.imap(_crop_resize, tasks, chunksize=64):
                    if arr is not None:
                        out.append(arr)
                    if bar is not None:
                        bar.update(1)
        else:
            _open_worker_zip(str(zip_path))
            try:
                for t in tasks:
                    arr = _crop_resize(t)
                    if arr is not None:
                        out.append(arr)
                    if bar is not None:
                        bar.update(1)
            finally:
                _close_worker_zip()
    finally:
        if bar is not None:
            bar.close()
    if not out:
        raise DataError(f"{zip_path}: no image could be read; delete it and load again")
    return np.stack(out)  # (N, size, size, 3)


def _close_worker_zip() -> None:
    global _worker_zip
    if _worker_zip is not None:
        _worker_zip.close()
        _worker_zip = None


def _load_celeba(entry: Named, split: str, resolution, channels, progress: bool, limit: slice = slice(None)):  # noqa: ANN001, ANN202
    """All 202,599 aligned faces (the GAN convention: no train/test split), cropped and resized once, then cached
    as a prepared archive (StyleGAN2-ADA format) next to the zip, which later loads read instead."""
    from ..archive import ArchiveData, read_archive, write_archive

    size = resolution or entry.resolution
    cache = data_dir() / "celeba" / f"{entry.name}.zip"
    whole = limit == slice(None)
    if cache.exists():
        arc = read_archive(cache)
        return _image_dataset(arc.images[limit], None, [], entry.name, resolution, channels)
    images = _celeba_images(ensure("celeba", CELEBA, progress=progress), entry.crop, size, limit, progress)
    if whole and size == entry.resolution:
        write_archive(ArchiveData(images=images, labels=None, class_names=[]), cache)
    return _image_dataset(images, None, [], entry.name, resolution, channels)


def _two_sided_root(entry: Named, progress: bool) -> Path:
    """The extracted dataset folder under the data directory (extracted once, from the checked archive)."""
    remote = entry.files[0]
    root = data_dir() / entry.name / "extracted"
    if root.is_dir() and (root / ".complete").exists():
        return root
    archive = ensure(entry.name, remote, progress=progress)
    if entry.kind == "unpaired":
        # horse2zebra/trainA/x.jpg -> train/trainA/x.jpg: one folder per split, holding its two domains, which is
        # the layout ganforge's unpaired reader takes.
        def place(parts: tuple[str, ...]) -> tuple[str, ...] | None:
            for i, p in enumerate(parts[:-1]):
                if p in ("trainA", "trainB", "testA", "testB"):
                    return (p[:-1], p, *parts[i + 1 :])
            return None
    else:
        # facades/train/1.jpg -> train/1.jpg (side-by-side A|B images, one folder per split)
        def place(parts: tuple[str, ...]) -> tuple[str, ...] | None:
            for i, p in enumerate(parts[:-1]):
                if p in entry.splits:
                    return (p, *parts[i + 1 :])
            return None

    extract(archive, root, place)
    (root / ".complete").write_text("")
    return root


def _load_two_sided(entry: Named, split: str, resolution, channels, progress: bool):  # noqa: ANN001, ANN202
    from ..kinds import PairedDataset, UnpairedDataset
    from ..pairs import load_two_sided

    folder = _two_sided_root(entry, progress) / split
    if not folder.is_dir():
        raise DataError(
            f"{entry.name}: the archive has no '{split}' split (it has {', '.join(entry.splits)}); delete {folder.parent} and load again"
        )
    ds = load_two_sided(folder, entry.kind, resolution=resolution, channels=channels, progress=progress)
    domains = list(entry.domains)
    if isinstance(ds, PairedDataset):
        src, tgt = (ds.target, ds.source) if entry.swap else (ds.source, ds.target)
        return PairedDataset(src, tgt, crop=ds.crop, domains=domains, name=entry.name)
    assert isinstance(ds, UnpairedDataset)
    return UnpairedDataset(ds.a, ds.b, crop=ds.crop, domains=domains, name=entry.name)


def _cyclegan(name: str, sha256: str, size: int, domains: tuple[str, str], about: str) -> Named:
    remote = Remote(f"{name}.zip", tuple(m + f"{name}.zip" for m in CYCLEGAN_MIRRORS), sha256=sha256, size=size)
    return Named(name, about, "unpaired", ("train", "test"), _load_two_sided, (remote,), domains=domains)


def _pix2pix(name: str, splits: tuple[str, ...], domains: tuple[str, str], about: str, swap: bool = False) -> Named:
    remote = Remote(f"{name}.tar.gz", tuple(m + f"{name}.tar.gz" for m in PIX2PIX_MIRRORS))
    return Named(name, about, "paired", splits, _load_two_sided, (remote,), domains=domains, swap=swap)


CATALOG: dict[str, Named] = {
    e.name: e
    for e in [
        Named(
            "mnist",
            "70,000 handwritten digits, 28x28 grayscale, 10 classes (LeCun et al. 1998); :train 60k, :test 10k",
            "image",
            ("train", "test"),
            _load_idx,
            tuple(MNIST_FILES.values()),
            resolution=28,
        ),
        Named(
            "fashion-mnist",
            "70,000 Zalando clothing images, 28x28 grayscale, 10 classes (Xiao et al. 2017)",
            "image",
            ("train", "test"),
            _load_idx,
            tuple(FASHION_FILES.values()),
            resolution=28,
        ),
        Named(
            "cifar10",
            "60,000 32x32 colour images, 10 classes (Krizhevsky 2009); :train 50k, :test 10k",
            "image",
            ("train", "test"),
            _load_cifar,
            (CIFAR10,),
            resolution=32,
        ),
        Named(
            "celeba64",
            "202,599 aligned celebrity faces, centre 108 px crop at 64x64 (manual download: Google Drive)",
            "image",
            ("all",),
            _load_celeba,
            (CELEBA,),
            crop=108,
            resolution=64,
        ),
        Named(
            "celeba128",
            "202,599 aligned celebrity faces, centre 178 px crop at 128x128 (manual download: Google Drive)",
            "image",
            ("all",),
            _load_celeba,
            (CELEBA,),
            crop=178,
            resolution=128,
        ),
        _cyclegan(
            "horse2zebra",
            "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
            116867962,
            ("horse", "zebra"),
            "CycleGAN's unpaired horses (1,067) and zebras (1,334), 256x256",
        ),
        _cyclegan(
            "monet2photo",
            "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04",
            305231073,
            ("monet", "photo"),
            "CycleGAN's unpaired Monet paintings (1,072) and photos (6,287), 256x256",
        ),
        _pix2pix(
            "facades",
            ("train", "val", "test"),
            ("labels", "photo"),
            "pix2pix's 400 label map -> facade photo pairs (CMP Facades), 256x256",
            swap=True,
        ),
        _pix2pix(
            "edges2shoes",
            ("train", "val"),
            ("edges", "shoes"),
            "pix2pix's 49,825 edge map -> shoe photo pairs, 256x256 (use --resolution 64 or [:N] to fit in memory)",
        ),
    ]
}
ALIASES = {
    "celeba": "celeba64",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
}
