"""Readers for the file formats the classic datasets ship in, reading them as data and nothing else.

- IDX (MNIST, Fashion-MNIST), gzipped: a 4-byte magic (two zero bytes, a type code, the number of
  dimensions), one big-endian uint32 per dimension, then the values, big-endian. Type codes from LeCun et
  al.'s MNIST page: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
- CIFAR-10 "python version" batches: Python 2 pickles (protocol 2) of a dict {data: uint8 (10000, 3072)
  array, each row the 1024 red, 1024 green then 1024 blue values of a 32x32 image in row-major order,
  labels: list of ints, ...} (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html). Pickle is a
  program, not a format: `pickle.load` would call whatever the file names. `read_pickled_batch` runs a
  restricted unpickler whose only globals are stand-ins that *describe* arrays (numpy's reconstruct,
  frombuffer, ndarray and dtype, and `_codecs.encode`, which protocol 2 uses for bytes): every other global is refused by
  name before anything is called, and the stand-ins build plain numeric arrays from raw bytes themselves.
- Archives (CycleGAN zips, pix2pix tarballs) are extracted member by member after checking every name:
  only regular files and folders under the destination, no absolute paths, no `..`, no links or devices.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError

# ---------------------------------------------------------------------------------------------------
# IDX.

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped when its name ends in .gz) as a native-endian array of its shape."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path} is not a readable{' gzip' if path.suffix == '.gz' else ''} file ({exc}); delete it and load again"
        ) from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, what: str = "IDX data") -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{what} is not an IDX file (bad magic {raw[:4].hex()}); delete it and load again")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{what}: truncated IDX header; delete it and load again")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) - head != count * dtype.itemsize:
        raise DataError(
            f"{what}: the header says {shape} values ({count * dtype.itemsize:,} bytes) but the file holds "
            f"{len(raw) - head:,}; it is truncated or corrupt: delete it and load again"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------------------------
# Pickled numpy batches, read as data.


class UnsafePickle(DataError):
    """A pickle that asks for something other than plain arrays and containers; nothing from it was run."""


class _NDArrayType:
    """Stands for numpy.ndarray inside a pickle: the only array subtype accepted."""


class _Dtype:
    """numpy.dtype(name, align, copy) plus its pickled state, limited to plain numeric types."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(name, bytes):
            name = name.decode("latin1")
        if not isinstance(name, str) or not re.fullmatch(r"[biuf]\d{1,2}|b1|\?", name):
            raise UnsafePickle(f"refusing array dtype {name!r}: only plain numeric arrays are read")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, elsize, alignment, flags): numpy's dtype.__reduce__
        if not isinstance(state, tuple) or len(state) < 5 or any(s is not None for s in state[2:5]):
            raise UnsafePickle("refusing a structured or sub-array dtype: only plain numeric arrays are read")
        order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        if order == ">":
            self.dtype = self.dtype.newbyteorder(">")
        elif order not in ("<", "|", "="):
            raise UnsafePickle(f"refusing dtype byte order {order!r}")


class _Array:
    """numpy's `_reconstruct(ndarray, shape, typecode)`, then `__setstate__((version, shape, dtype, fortran,
    raw bytes))`: the array is built here, from the bytes, with np.frombuffer."""

    def __init__(self, subtype: Any, shape: Any, typecode: Any) -> None:
        if subtype is not _NDArrayType:
            raise UnsafePickle("refusing an array subclass: only numpy.ndarray is read")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickle("refusing an array with an unknown pickled state")
        shape, dt, fortran, raw = state[-4:]
        if not isinstance(dt, _Dtype):
            raise UnsafePickle("refusing an array whose dtype is not a plain numeric dtype")
        self.array = _array(raw, dt, shape, "F" if fortran else "C")


def _array(raw: Any, dt: _Dtype, shape: Any, order: str) -> np.ndarray:  # noqa: ANN401
    if isinstance(raw, str):
        raw = raw.encode("latin1")  # Python 2 str read with a text encoding
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickle("refusing an array of Python objects: only raw numeric data is read")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise UnsafePickle(f"refusing an array with shape {shape!r}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) != count * dt.dtype.itemsize:
        raise DataError(
            f"a pickled array of shape {shape} holds {len(raw)} bytes, not {count * dt.dtype.itemsize}: the file is corrupt"
        )
    arr = np.frombuffer(raw, dtype=dt.dtype).reshape(shape, order="F" if order == "F" else "C")
    return arr.astype(dt.dtype.newbyteorder("="))  # one copy: writable and native-endian


def _frombuffer(raw: Any, dt: Any, shape: Any, order: Any) -> _Array:  # noqa: ANN401
    """numpy's protocol-5 array form, `_frombuffer(bytes, dtype, shape, order)`."""
    if not isinstance(dt, _Dtype):
        raise UnsafePickle("refusing an array whose dtype is not a plain numeric dtype")
    out = _Array(_NDArrayType, (0,), b"b")
    out.array = _array(raw, dt, shape, order)
    return out


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    """`_codecs.encode`, as protocol 2 uses it to store bytes: str -> bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle("refusing _codecs.encode with anything but (str, 'latin1')")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _encode,
}


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, what: str) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes: raw array data stays intact
        self.what = what

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafePickle(
                f"{self.what}: refusing to load: the pickle asks for {module}.{name}, which is not array data "
                "(a CIFAR batch names only numpy's array reconstruction); nothing from the file was run"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: ANN401
        raise UnsafePickle(
            f"{self.what}: refusing to load: the pickle uses persistent ids, which a data batch never does"
        )


def _plain(obj: Any, what: str, depth: int = 0) -> Any:  # noqa: ANN401
    """The unpickled tree with stand-ins replaced by arrays; only containers, strings, numbers and arrays."""
    if depth > 32:
        raise UnsafePickle(f"{what}: refusing a pickle nested more than 32 levels deep")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise UnsafePickle(f"{what}: an array without its data")
        return obj.array
    if isinstance(obj, dict):
        return {_key(k): _plain(v, what, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v, what, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v, what, depth + 1) for v in obj)
    if obj is None or isinstance(obj, (bytes, str, int, float, bool)):
        return obj
    raise UnsafePickle(
        f"{what}: refusing a {type(obj).__name__} in the pickle: only arrays and plain containers are read"
    )


def _key(k: Any) -> Any:  # noqa: ANN401
    return k.decode("latin1") if isinstance(k, bytes) else k


def read_pickled_batch(data: bytes, what: str) -> Any:  # noqa: ANN401
    """A pickled dict/list of numpy arrays, ints, strings and bytes (dict keys as str), without running code."""
    try:
        obj = _DataUnpickler(io.BytesIO(data), what).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(
            f"{what} is not a readable pickled batch ({type(exc).__name__}: {exc}); delete it and load again"
        ) from None
    return _plain(obj, what)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10.

CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_cifar(tarball: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 (N, 32, 32, 3) images, int64 (N,) labels, class names) of `split` from cifar-10-python.tar.gz,
    read straight from the tarball (no extraction). The images are a transposed view of (N, 3, 32, 32) memory,
    so ImageDataset.from_numpy takes them without copying."""
    tarball = Path(tarball)
    wanted = [*CIFAR_BATCHES[split], "batches.meta"]
    raw: dict[str, tuple[str, bytes]] = {}
    try:
        # One sequential pass: seeking back in a .tar.gz means decompressing it again from the start.
        with tarfile.open(tarball, "r|gz") as tf:
            for m in tf:
                base = Path(m.name).name
                if m.isfile() and base in wanted and base not in raw:
                    f = tf.extractfile(m)
                    assert f is not None
                    raw[base] = (m.name, f.read())
                    if len(raw) == len(wanted):
                        break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{tarball} is not a readable tar.gz ({exc}); delete it and load again") from None
    missing = [n for n in wanted if n not in raw]
    if missing:
        raise DataError(
            f"{tarball} lacks {', '.join(missing)}: it is not cifar-10-python.tar.gz; delete it and load again"
        )

    def read(name: str) -> dict:
        member, data = raw.pop(name)
        obj = read_pickled_batch(data, f"{tarball}:{member}")
        if not isinstance(obj, dict):
            raise DataError(f"{tarball}:{member} holds a {type(obj).__name__}, not a CIFAR batch dict")
        return obj

    meta = read("batches.meta")
    images, labels = [], []
    for name in CIFAR_BATCHES[split]:
        batch = read(name)
        data, lab = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{tarball}:{name}: 'data' is not a uint8 (N, 3072) array")
        if not isinstance(lab, list) or len(lab) != data.shape[0]:
            raise DataError(f"{tarball}:{name}: 'labels' is not one label per image")
        images.append(data.reshape(-1, 3, 32, 32))  # (N, 3072) -> (N, 3, 32, 32): R, G, B planes
        labels.append(np.asarray(lab, dtype=np.int64))
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
    y = np.concatenate(labels)
    if not names or int(y.max()) >= len(names) or int(y.min()) < 0:
        raise DataError(f"{tarball}: labels do not index batches.meta's label_names")
    return np.concatenate(images).transpose(0, 2, 3, 1), y, names  # (N, 32, 32, 3), a view of NCHW memory


# ---------------------------------------------------------------------------------------------------
# Archives.


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise DataError(f"{archive}: refusing member {name!r}: it would be written outside the dataset folder")
    return parts


def _members(archive: Path) -> Iterator[tuple[tuple[str, ...], Callable[[], Any]]]:
    """(path parts, opener of a binary file) for each regular file of a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode and mode != 0o100000:  # a symlink or device stored by a Unix zip tool
                    raise DataError(f"{archive}: refusing member {info.filename!r}: not a regular file")
                yield _safe_parts(info.filename, archive), (lambda info=info: zf.open(info))
        return
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            if m.isdir():
                continue
            if not m.isfile():
                raise DataError(f"{archive}: refusing member {m.name!r}: links and devices are not extracted")
            yield _safe_parts(m.name, archive), (lambda m=m: tf.extractfile(m))


def extract(
    archive: str | os.PathLike, dest: str | os.PathLike, place: Callable[[tuple[str, ...]], tuple[str, ...] | None]
) -> Path:
    """Extract the files of a zip or tar archive that `place` maps to a relative path (None: skip) into `dest`,
    atomically: into a hidden temporary sibling first, renamed into place when complete."""
    archive, dest = Path(archive), Path(dest)
    tmp = dest.with_name(f".{dest.name}.extracting-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n = 0
        for parts, open_member in _members(archive):
            rel = place(parts)
            if rel is None:
                continue
            out = tmp.joinpath(*rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            n += 1
        if n == 0:
            raise DataError(f"{archive} holds none of the expected files; delete it and load again")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive} is not a readable archive ({exc}); delete it and load again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
