"""Data from outside the package: Hugging Face datasets (`hf:...`) and the classic datasets by name.

`--data NAME[:SPLIT][[A:B]]` with a NAME from `names()`: mnist, fashion-mnist, cifar10, celeba64,
celeba128, horse2zebra, monet2photo, facades, edges2shoes. Files download once into the data directory
(`$GANFORGE_DATA`, else ~/.cache/ganforge/data), checked against published checksums and renamed into
place only when complete (`fetch.py`); formats are read as data, never executed (`formats.py`). Offline,
the error names the URL and the exact path to put the file at. `download:NAME` asks for the named set
even when a local file or folder has that name (a local one wins otherwise, as for built-in names).
None of these names is a built-in name (`builtin.py`: emoji, digits, ...), so no prefix is needed.

SPLIT is `train` (the default) or `test` (mnist, fashion-mnist, cifar10, horse2zebra, monet2photo),
`val`/`test` (facades), `val` (edges2shoes); `[A:B]` keeps images A to B-1 of it, e.g. `mnist[:1000]`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import DataError
from .catalog import ALIASES, CATALOG, Named
from .fetch import data_dir

__all__ = ["claims", "data_dir", "describe", "load", "names", "PREFIX", "HF_PREFIX"]

PREFIX = "download:"
HF_PREFIX = "hf:"
_NAMED = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)(?::(?P<split>\w+))?(?:\[(?P<a>\d*):(?P<b>\d*)\])?$")


def names() -> list[str]:
    return list(CATALOG)


def describe() -> dict[str, str]:
    """name -> one line, for help texts and listings."""
    return {k: v.about for k, v in CATALOG.items()}


def _entry(name: str) -> Named | None:
    key = name.lower()
    return CATALOG.get(ALIASES.get(key, key))


def claims(source: str) -> bool:
    """Whether `source` is for this module: `hf:...`, `download:...`, or a catalogue name (with an optional
    split and slice) that is not an existing local path."""
    if source.startswith((HF_PREFIX, PREFIX)):
        return True
    m = _NAMED.match(source)
    return bool(m and _entry(m["name"]) is not None and not Path(source).exists())


def _parse(source: str) -> tuple[Named, str, slice]:
    text = source[len(PREFIX) :] if source.startswith(PREFIX) else source
    m = _NAMED.match(text)
    entry = _entry(m["name"]) if m else None
    if m is None or entry is None:
        raise DataError(f"unknown dataset '{text}'; the named downloads are {', '.join(CATALOG)} (NAME[:SPLIT][[A:B]])")
    split = m["split"] or entry.splits[0]
    if split not in entry.splits:
        raise DataError(f"{entry.name} has no split '{split}'; use one of {', '.join(entry.splits)}")
    cut = slice(int(m["a"]) if m["a"] else None, int(m["b"]) if m["b"] else None)
    return entry, split, cut


def _sliced(ds: Any, cut: slice) -> Any:  # noqa: ANN401
    from ..kinds import ImageDataset, PairedDataset, UnpairedDataset

    if cut == slice(None):
        return ds
    if isinstance(ds, ImageDataset):
        labels = ds.labels[cut] if ds.labels is not None else None
        texts = ds.texts[cut] if ds.texts is not None else None
        out: Any = ImageDataset(ds.images[cut].contiguous(), labels, ds.class_names, ds.name, texts=texts)
    elif isinstance(ds, PairedDataset):
        out = PairedDataset(ds.source[cut].contiguous(), ds.target[cut].contiguous(), ds.crop, ds.domains, ds.name)
    elif isinstance(ds, UnpairedDataset):
        out = UnpairedDataset(ds.a[cut].contiguous(), ds.b[cut].contiguous(), ds.crop, ds.domains, ds.name)
    else:
        return ds
    if len(out) == 0:
        raise DataError(f"the slice [{cut.start or ''}:{cut.stop or ''}] of {ds.name} is empty")
    return out


def load(source: str, *, resolution: int | None = None, channels: int | None = None, progress: bool = False) -> Any:  # noqa: ANN401
    """The dataset `source` names (see `claims`): an ImageDataset, or for the CycleGAN/pix2pix sets an
    UnpairedDataset/PairedDataset, which `load_dataset` then fits to what the family consumes."""
    if source.startswith(HF_PREFIX):
        from . import hf

        return hf.load(source[len(HF_PREFIX) :], resolution=resolution, channels=channels, progress=progress)
    entry, split, cut = _parse(source)
    if entry.name.startswith("celeba"):
        return entry.load(entry, split, resolution, channels, progress, limit=cut)
    return _sliced(entry.load(entry, split, resolution, channels, progress), cut)
