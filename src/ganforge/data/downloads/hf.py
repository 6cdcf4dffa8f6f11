"""`--data hf:OWNER/NAME[:SPLIT][:COLUMN][?caption=TEXT]`: an image dataset through Hugging Face `datasets` (the
`hub` extra).

The target is a Hub repository, or a local folder: one written by `save_to_disk` (a Dataset or a
DatasetDict), or an image folder (class sub-folders, as `datasets`' "imagefolder" builder reads it).
SPLIT defaults to `train` (else the first split) and may carry `datasets`' slice syntax, `train[:1000]`,
which caps how many images are read. COLUMN names the image column; by default it is the first `Image`
feature. The first `ClassLabel` feature, if any, gives the class labels and their names. The first string
column, if any, gives each image its caption (for text-to-image models); `?caption=TEXT` names another one and
`?caption=none` reads none.

Images go through the same per-image steps as a raw folder (`prepare._prepare_one`: upright, alpha
flattened onto white, padded to a square, resized), so an HF dataset trains exactly as the same images
in a folder would. They are read as encoded bytes (the image column cast to `Image(decode=False)`), in
batches, so only the prepared uint8 pixels stay in memory.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError, require

PREFIX = "hf:"
_BATCH = 256  # rows read from the Arrow table at a time
_SLICE = re.compile(r"^(?P<split>[\w.-]+)\[(?P<a>-?\d*):(?P<b>-?\d*)\]$")


CAPTION_QUERY = "?caption="


def split_caption(spec: str) -> tuple[str, str | None]:
    """'owner/name:train?caption=text' -> ('owner/name:train', 'text'); no query -> (spec, None)."""
    head, sep, col = spec.rpartition(CAPTION_QUERY)
    if not sep:
        if "?" in spec and not Path(spec).expanduser().exists():
            raise DataError(f"hf:{spec}: the only option after '?' is caption=COLUMN (or caption=none)")
        return spec, None
    if not col:
        raise DataError(f"hf:{spec}: name the caption column after '?caption=' (or caption=none)")
    return head, col


def parse(spec: str) -> tuple[str, str | None, str | None]:
    """'owner/name:train[:100]:img' -> ('owner/name', 'train[:100]', 'img'). A local folder may itself hold
    ':' (rare), so the longest prefix that exists on disk is the target."""
    parts = re.split(r":(?![^\[]*\])", spec)  # not the ':' of a slice such as train[:100]
    for n in range(len(parts), 0, -1):
        head = ":".join(parts[:n])
        if n > 1 and Path(head).expanduser().exists():
            rest = parts[n:]
            break
    else:
        head, rest = parts[0], parts[1:]
    if not head:
        raise DataError("hf: needs a dataset: --data hf:OWNER/NAME[:SPLIT][:COLUMN] or hf:/path/to/folder")
    if len(rest) > 2:
        raise DataError(f"hf:{spec}: too many ':' parts; use hf:OWNER/NAME[:SPLIT][:COLUMN]")
    split = rest[0] if rest and rest[0] else None
    column = rest[1] if len(rest) > 1 and rest[1] else None
    return head, split, column


def _is_local(target: str) -> bool:
    return target.startswith(("/", ".", "~")) or Path(target).expanduser().exists()


def _hub_error(target: str, exc: BaseException) -> DataError:
    datasets = require("datasets", "hub")
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    if type(exc).__name__ == "DatasetNotFoundError" and not getattr(datasets.config, "HF_HUB_OFFLINE", False):
        return DataError(
            f"no dataset hf:{target} on the Hugging Face Hub ({reason}); check OWNER/NAME, or log in (hf auth login) for a gated one"
        )
    cache = getattr(datasets.config, "HF_DATASETS_CACHE", "~/.cache/huggingface/datasets")
    return DataError(
        f"cannot load hf:{target} ({reason}): it is not in the Hugging Face cache ({cache}) and the Hub cannot be "
        f"reached. Load it once with network (it is cached; HF_HUB_OFFLINE=1 then reads the cache), point HF_HOME "
        f"at a cache that has it, or run datasets.load_dataset('{target}').save_to_disk('DIR') elsewhere, copy DIR "
        f"here and use --data hf:DIR"
    )


def _pick_split(dd: Any, split: str | None, what: str) -> Any:  # noqa: ANN401
    names = list(dd.keys())
    if split is None:
        return dd["train"] if "train" in dd else dd[names[0]]
    if split not in dd:
        raise DataError(f"{what} has no split '{split}'; it has {', '.join(names)}")
    return dd[split]


def _open(target: str, split: str | None) -> Any:  # noqa: ANN401
    """The `datasets.Dataset` for one split (with any [a:b] slice applied)."""
    datasets = require("datasets", "hub")
    base, cut = split, None
    m = _SLICE.match(split or "")
    if m:
        base, cut = m["split"], slice(int(m["a"]) if m["a"] else None, int(m["b"]) if m["b"] else None)
    if _is_local(target):
        path = Path(target).expanduser()
        if not path.is_dir():
            raise DataError(
                f"hf:{target}: no such folder; give a folder written by save_to_disk, an image folder, or OWNER/NAME on the Hub"
            )
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            try:
                loaded = datasets.load_from_disk(str(path))
            except Exception as exc:  # datasets raises several kinds for a damaged folder
                raise DataError(
                    f"hf:{target}: cannot read this save_to_disk folder ({type(exc).__name__}: {exc})"
                ) from None
            ds = loaded if isinstance(loaded, datasets.Dataset) else _pick_split(loaded, base, f"hf:{target}")
            if isinstance(loaded, datasets.Dataset) and base not in (None, "train"):
                raise DataError(f"hf:{target} is a single dataset without splits; drop ':{base}'")
        else:
            try:
                dd = datasets.load_dataset("imagefolder", data_dir=str(path))
            except Exception as exc:
                raise DataError(
                    f"hf:{target}: cannot read it as an image folder ({type(exc).__name__}: {exc})"
                ) from None
            ds = _pick_split(dd, base, f"hf:{target}")
    else:
        try:
            if base is None:
                dd = datasets.load_dataset(target)
                ds = _pick_split(dd, None, f"hf:{target}")
            else:
                ds = datasets.load_dataset(target, split=base)
        except ValueError as exc:  # an unknown split
            raise DataError(f"hf:{target}: {exc}") from None
        except Exception as exc:  # ConnectionError, DatasetNotFoundError, OfflineModeIsEnabled, HTTP errors, ...
            raise _hub_error(target, exc) from None
    if cut is not None:
        ds = ds.select(range(len(ds))[cut])
    return ds


def _columns(ds: Any, column: str | None, what: str) -> tuple[str, str | None]:  # noqa: ANN401
    datasets = require("datasets", "hub")
    feats = ds.features
    images = [k for k, f in feats.items() if isinstance(f, datasets.Image)]
    if column is not None:
        if column not in feats:
            raise DataError(f"{what} has no column '{column}'; its columns are {', '.join(feats)}")
        if not isinstance(feats[column], datasets.Image):
            raise DataError(
                f"{what}: column '{column}' is {type(feats[column]).__name__}, not Image; image columns: {', '.join(images) or 'none'}"
            )
        image = column
    elif images:
        image = images[0]
    else:
        raise DataError(f"{what} has no Image column (columns: {', '.join(feats)}); give one with hf:NAME:SPLIT:COLUMN")
    labels = [k for k, f in feats.items() if isinstance(f, datasets.ClassLabel) and k != image]
    return image, (labels[0] if labels else None)


def _text_column(ds: Any, column: str | None, what: str) -> str | None:  # noqa: ANN401
    """The caption column: `column` ('none': no captions), else the first string feature (None if there is none)."""
    datasets = require("datasets", "hub")
    feats = ds.features

    def is_text(f: Any) -> bool:  # noqa: ANN401
        return isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")

    if column is None:
        texts = [k for k, f in feats.items() if is_text(f)]
        return texts[0] if texts else None
    if column.lower() == "none":
        return None
    if column not in feats:
        raise DataError(f"{what} has no column '{column}'; its columns are {', '.join(feats)}")
    if not is_text(feats[column]):
        kind = type(feats[column]).__name__ if not isinstance(feats[column], datasets.Value) else feats[column].dtype
        texts = [k for k, f in feats.items() if is_text(f)]
        raise DataError(f"{what}: column '{column}' is {kind}, not text; text columns: {', '.join(texts) or 'none'}")
    return column


def _captions(ds: Any, column: str, keep: list[int], what: str, named: bool) -> list[str] | None:  # noqa: ANN401
    """The kept rows' captions, each checked as the contract's captions are (`text.text_problem`). A column picked
    by default (the first string column: it may be an id or a file name) with an unusable row gives no captions
    and a warning; a column the user named gives the error."""
    from ...text import TEXT_BYTES, text_problem

    cells = list(ds.select_columns([column])[column])
    out = []
    for i in keep:
        cap = cells[i]
        if isinstance(cap, str):
            cap = " ".join(cap.split())  # newlines and runs of spaces: one space
            if len(cap.encode("utf-8")) > TEXT_BYTES:  # a long description: cut at a word boundary, as a prompt must be
                cut = cap.encode("utf-8")[:TEXT_BYTES].decode("utf-8", "ignore")
                cap = cut.rsplit(" ", 1)[0] if " " in cut else cut
        problem = text_problem(cap, f"the caption of row {i} (column '{column}')")
        if problem and named:
            raise DataError(f"{what}: {problem}; fix the data or read no captions with ?caption=none")
        if problem:
            import warnings

            warnings.warn(
                f"{what}: no captions read ({problem}); name a text column with ?caption=COLUMN",
                UserWarning,
                stacklevel=3,
            )
            return None
        out.append(cap)
    return out


def _sources(ds: Any, image: str) -> Any:  # noqa: ANN401
    """Each row's image as encoded bytes, or a path when the table only stores one."""
    for batch in ds.iter(batch_size=_BATCH):
        for cell in batch[image]:
            if cell is None:
                yield None
            elif cell.get("bytes") is not None:
                yield cell["bytes"]
            else:
                yield cell.get("path")


def load(spec: str, *, resolution: int | None = None, channels: int | None = None, progress: bool = False):  # noqa: ANN201
    """`hf:`-source `spec` (without the prefix) as an in-memory ImageDataset."""
    datasets = require("datasets", "hub")
    from PIL import Image

    from ..kinds import ImageDataset
    from ..prepare import FILTERS, PrepareOptions, _auto_resolution, _Params, _prepare_one, background_rgb

    spec, caption = split_caption(spec)
    target, split, column = parse(spec)
    what = f"hf:{spec}"
    ds = _open(target, split)
    image_col, label_col = _columns(ds, column, what)
    text_col = _text_column(ds, caption, what)
    ds = ds.cast_column(image_col, datasets.Image(decode=False))
    n = len(ds)
    if n == 0:
        raise DataError(f"{what} is empty")

    opts = PrepareOptions(resolution=resolution)  # the raw-folder defaults: pad on white, lanczos, RGB
    opts.validate()
    res = opts.resolution
    if res is None:  # the most common size among up to 1,000 evenly spaced images, as for a folder
        step = max(1, n // 1000)
        sample = ds.select(range(0, n, step))

        def size(src: Any) -> tuple[int, int] | None:  # noqa: ANN401
            try:
                with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
                    return im.size
            except Exception:
                return None

        res = _auto_resolution((size(s) for s in _sources(sample, image_col) if s is not None), opts.fit) or 64
    params = _Params(res, opts.fit, FILTERS[opts.filter], background_rgb(opts.background), opts.channels)

    labels_all = np.asarray(ds[label_col], dtype=np.int64) if label_col else None
    kept: list[np.ndarray] = []
    keep_idx: list[int] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="img", desc=f"hf:{target}", leave=False)
    try:
        for i, src in enumerate(_sources(ds, image_col)):
            if src is not None:
                arr, _ = _prepare_one(src, params)
                if arr is not None:
                    kept.append(arr)
                    keep_idx.append(i)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not kept:
        raise DataError(f"{what}: none of its {n} images could be read (column '{image_col}')")
    labels, names = None, []
    if labels_all is not None:
        labels = labels_all[keep_idx]
        names = list(ds.features[label_col].names)
        if (labels < 0).any():  # -1: no label (e.g. a test split): an unlabelled dataset then
            labels, names = None, []
    captions = _captions(ds, text_col, keep_idx, what, named=caption is not None) if text_col else None
    name = Path(target).name if _is_local(target) else target.replace("/", "-")
    out = ImageDataset.from_numpy(np.stack(kept), labels, names, name=name, captions=captions)  # (N, H, W, C)
    if channels is not None:
        out = out.with_channels(channels)
    return out
