"""Images in and out, defined once: the guarded decoder and the tensor <-> numpy <-> PIL <-> PNG conversions.

Below everything else in ganforge: it imports numpy, PIL, `ganforge.errors` and (inside the functions that
need it) torch, so that data/, sample/, serve/, share/ and metrics/ all read and write images the same way.

Decoding (`open_image`, and `decode` for `prepare`, which keeps going past a bad file) never trusts a file:

- only regular files are opened (a FIFO would block the process waiting for a writer, a device may never
  end, a directory is not an image): what else a path names is said in one line, without opening it;
- an image whose header claims more than `pixel_limit()` pixels (PIL's decompression-bomb threshold,
  89,478,485 by default) is refused from the header alone, before any pixel is decoded;
- the first frame is decoded and turned upright (EXIF orientation);
- converting to "RGB" or "L", transparency is composited onto a background colour (white by default) at
  full size; 16-bit and float images are scaled to 8 bits, not clipped (see `to_8bit`).

Tensors hold images as float in [-1, 1], (C, H, W) or (N, C, H, W); numpy arrays as uint8 (H, W, C) or
(N, H, W, C); `to_uint8` rounds (x + 1) * 127.5 to nearest (ties to even) and `from_uint8` inverts it exactly
for every uint8 level. The metrics quantise with StyleGAN's x * 127.5 + 128 truncated (`quantize`), which
stays on the tensor's device.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from .errors import DataError

if TYPE_CHECKING:
    import torch

WHITE = (255, 255, 255)
MODES = ("RGB", "L", "RGBA")  # what `open_image` converts to; None keeps the file's own mode
_ORIENTATION = 0x0112  # EXIF tag

ImageSource = str | os.PathLike | bytes  # a path, or the bytes of a file (an upload, a zip member)


# ---- decoding --------------------------------------------------------------------------------------------


def pixel_limit() -> int:
    """Most pixels an image may have: PIL's decompression-bomb threshold (`Image.MAX_IMAGE_PIXELS`, 89,478,485
    by default, about 0.25 GiB as 24-bit RGB), read at call time so that it can be changed. PIL only warns
    between one and two times this and would decode such an image; ganforge refuses it from its header."""
    return int(Image.MAX_IMAGE_PIXELS or 0) or 2**62


def too_large(w: int, h: int, limit: int | None = None) -> str | None:
    """Why a w x h image is refused (over `limit`, default `pixel_limit()`), or None."""
    limit = pixel_limit() if limit is None else limit
    if w * h <= limit:
        return None
    return (
        f"too large: {w:,}x{h:,} = {w * h:,} pixels, over the pixel limit of {limit:,} (decompression-bomb protection)"
    )


def shown_path(path: str | os.PathLike) -> str:
    """A path as reports and messages show it: a name that is not valid UTF-8 (Python keeps its bytes as
    surrogates, which no UTF-8 file or terminal accepts) gets its odd bytes written as \\xNN."""
    path = os.fspath(path)
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def _file_kind(mode: int) -> str:
    """What a path that is not a regular file names, for a message."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


class UnusableImage(Exception):
    """A file refused before or instead of decoding; the message is `prepare`'s reason for its report.
    `kind` says what a path names when it is not a regular file ("a directory", "a FIFO (named pipe)", ...)."""

    def __init__(self, reason: str, kind: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind


def _check_file(path: str) -> UnusableImage | None:
    """Why `path` cannot be read as an image file without even opening it, or None. Opening a FIFO would
    wait for a writer forever and a device may never end, so only regular files (through symlinks) pass."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return UnusableImage(read_problem(exc))
    if not stat.S_ISREG(st.st_mode):
        return UnusableImage(
            "unreadable: not a regular file (a pipe, device or socket named like an image)", _file_kind(st.st_mode)
        )
    if st.st_size == 0:
        return UnusableImage("empty file: 0 bytes")
    return None


def file_problem(path: str | os.PathLike) -> str | None:
    """Why the file `path` cannot be read as an image, found without opening it (see `_check_file`), or None."""
    problem = _check_file(os.fspath(path))
    return str(problem) if problem else None


def read_problem(exc: BaseException) -> str:
    """A short reason for a failed read; the text before ':' is the category `prepare` counts."""
    if isinstance(exc, UnusableImage):
        return str(exc)
    if isinstance(exc, Image.DecompressionBombError):  # PIL: "Image size (N pixels) exceeds limit of ..."
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(m.group(1)):,} pixels" if m else "its header's size"
        return f"too large: {size}, over the pixel limit of {pixel_limit():,} (decompression-bomb protection)"
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image: unknown format or corrupt header"
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system's refusal, not a decoder's
        if exc.errno == errno.ENOENT:
            return "unreadable: no such file (a broken symbolic link?)"
        return f"unreadable: {(exc.strerror or str(exc)).lower()}"
    msg = str(exc) or type(exc).__name__
    if "truncated" in msg.lower() or isinstance(exc, EOFError):
        return f"truncated: {msg}"
    return f"corrupt: {type(exc).__name__}: {msg}"


def _open_lazily(src: ImageSource) -> Image.Image:
    """PIL's lazy open (the header only) of a checked source; PIL's own bomb warning is silenced, as the
    callers refuse such images with the limit in the message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)


def _check_source(src: ImageSource) -> None:
    if isinstance(src, bytes):
        if not src:
            raise UnusableImage("empty file: 0 bytes")
        return
    problem = _check_file(os.fspath(src))
    if problem:
        raise problem


def header_size(src: ImageSource, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the header alone (cheap). Raises UnusableImage for what `decode` refuses unread
    (not a regular file, empty, over the pixel limit) and PIL's exceptions for a header it cannot parse."""
    _check_source(src)
    with _open_lazily(src) as im:
        size = im.size
    problem = too_large(*size, max_pixels)
    if problem:
        raise UnusableImage(problem)
    return size


def decode(src: ImageSource, draft: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """The first frame of an image file (or its bytes), decoded and upright (EXIF orientation), in its own
    mode. Refuses, without opening, what is not a regular file, and from the header alone an image over
    `max_pixels` (default `pixel_limit()`), raising UnusableImage; a corrupt or truncated file raises PIL's
    exception (`read_problem` words it). `draft`: JPEGs may be decoded smaller in the DCT domain, never below
    `draft` pixels a side."""
    _check_source(src)
    im = _open_lazily(src)
    with im:
        problem = too_large(*im.size, max_pixels)
        if problem:
            raise UnusableImage(problem)
        if im.format == "JPEG" and draft:
            im.draft(None, (draft, draft))  # DCT-domain downscale, still >= the target size
        im.load()  # the first frame of animations; raises here for truncated/corrupt data
        if im.getexif().get(_ORIENTATION, 1) != 1:
            upright = ImageOps.exif_transpose(im)
            assert upright is not None
            return upright
        return im  # skip exif_transpose's copy: it costs as much as decoding a small PNG


def to_8bit(im: Image.Image) -> Image.Image:
    """16-bit ("I;16*", and "I", which PIL uses for 16-bit PNG/TIFF) and float ("F") images as 8-bit "L":
    x * 255 / 65535 rounded for integers (32-bit "I" is assumed to hold 16-bit data); floats are taken to lie
    in [0, 1] when their maximum is at most 1, else in [0, 255]. Other modes are returned as they are."""
    if not (im.mode.startswith("I") or im.mode == "F"):
        return im
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        peak = float(np.nanmax(arr)) if arr.size else 0.0
        arr = np.nan_to_num(arr) * (255.0 if peak <= 1.0 else 1.0)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    arr = np.clip(arr.astype(np.int64), 0, 65535)
    return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")  # x * 255 / 65535, rounded


def flatten_alpha(im: Image.Image, background: tuple[int, int, int] = WHITE, *, gray: bool = False) -> Image.Image:
    """Any PIL mode -> "RGB" or "L", with transparency composited onto `background` at full size. Grayscale
    stays "L" and colour becomes "RGB" whatever `gray` says; `gray` only keeps a transparent grayscale image
    ("LA", or "L" with a transparent colour) in "L", composited onto the background's luma."""
    im = to_8bit(im)
    if im.mode == "1":
        im = im.convert("L")
    if "transparency" in im.info and im.mode in ("P", "L", "RGB"):
        im = im.convert("LA" if im.mode == "L" else "RGBA")  # colour-key / palette transparency -> alpha
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" else "RGB")
    elif im.mode in ("RGBa", "La"):  # premultiplied alpha
        im = im.convert("RGBA" if im.mode == "RGBa" else "LA")
    if im.mode == "LA" and gray:
        bg = Image.new("L", im.size, ImageColor.getcolor("rgb({},{},{})".format(*background), "L"))
        bg.paste(im.getchannel("L"), (0, 0), im.getchannel("A"))
        return bg
    if im.mode == "LA":
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, background)
        bg.paste(im, (0, 0), im)  # alpha blend: out = im * a + bg * (1 - a)
        return bg
    if im.mode in ("L", "RGB"):
        return im
    return im.convert("RGB")  # CMYK (PIL undoes Adobe's inversion), YCbCr, HSV, ...


def convert(im: Image.Image, mode: str, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """`im` in `mode` ("RGB", "L" or "RGBA"), as `prepare` converts: for RGB and L transparency composited onto
    `background`; 16-bit and float images scaled to 8 bits rather than clipped; CMYK and palettes converted."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "RGBA":
        im = to_8bit(im)
        return im if im.mode == "RGBA" else im.convert("RGBA")
    out = flatten_alpha(im, background, gray=mode == "L")
    return out if out.mode == mode else out.convert(mode)


def open_image(
    src: ImageSource,
    *,
    mode: str | None = "RGB",
    background: tuple[int, int, int] = WHITE,
    max_pixels: int | None = None,
) -> Image.Image:
    """One image file (or its bytes: an upload), decoded with every guard `prepare` uses (see the module
    docstring): the first frame, upright, in `mode` ("RGB", "L", "RGBA"; None: the file's own mode), with
    transparency flattened onto `background` for RGB and L. `max_pixels` lowers the pixel limit (it cannot
    raise it above `pixel_limit()`, where PIL itself refuses).

    Raises DataError, one line naming the file and the reason (not a regular file: what it is instead;
    over the pixel limit: the sizes and the limit; truncated, corrupt, unknown format, ...), never PIL's
    many exception types; never blocks on a FIFO and never decodes a pixel bomb."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} or None, not {mode!r}")
    limit = pixel_limit() if max_pixels is None else min(int(max_pixels), pixel_limit())
    what = "the uploaded image" if isinstance(src, bytes) else shown_path(src)
    try:
        im = decode(src, max_pixels=limit)
        return im if mode is None else convert(im, mode, background)
    except UnusableImage as exc:
        reason = f"it is {exc.kind}, not a regular file; give an image file" if exc.kind else str(exc)
    except Exception as exc:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError, ...)
        reason = read_problem(exc)
    raise DataError(f"cannot read {what}: {' '.join(reason.split())}") from None


# ---- conversions -----------------------------------------------------------------------------------------


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [-1, 1], (N, C, H, W) or (C, H, W) -> uint8 numpy (N, H, W, C) or (H, W, C):
    round((x + 1) * 127.5), clamped to [-1, 1] first."""
    import torch

    if images.ndim not in (3, 4):
        raise ValueError(f"expected images (C, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return (x.permute(1, 2, 0) if x.ndim == 3 else x.permute(0, 2, 3, 1)).numpy()


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C), (H, W) or (N, H, W, C) -> float32 (C, H, W) or (N, C, H, W) in [-1, 1]: x / 127.5 - 1,
    the exact inverse of `to_uint8` at every uint8 level. Always a new tensor (never shares `arr`'s memory)."""
    import torch

    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3, 4):
        raise ValueError(f"expected a uint8 (H, W[, C]) or (N, H, W, C) array, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.array(arr))  # a copy: a read-only or non-contiguous array is fine
    t = t.permute(2, 0, 1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div(127.5).sub(1.0)


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """uint8 (H, W, C) with C 1, 3 or 4 (or (H, W)) -> a PIL image in "L", "RGB" or "RGBA"."""
    return Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)


def pil_to_array(im: Image.Image) -> np.ndarray:
    """An 8-bit PIL image ("L", "RGB", "RGBA", ...) -> a new, writable uint8 (H, W, C) array (C 1 for "L");
    use `convert` first for other modes."""
    arr = np.asarray(im, dtype=np.uint8)
    return np.array(arr[:, :, None] if arr.ndim == 2 else arr)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float images (N, C, H, W) in [-1, 1] -> one PIL image each ("L" for one channel, "RGB" for three)."""
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    return [array_to_pil(a) for a in to_uint8(images)]


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One float image (C, H, W) in [-1, 1] -> a PIL image."""
    if image.ndim != 3:
        raise ValueError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    return array_to_pil(to_uint8(image))


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """An 8-bit PIL image -> float32 (C, H, W) in [-1, 1] (add `[None]` for a batch of one)."""
    return from_uint8(pil_to_array(im))


def png_bytes(image: Image.Image | np.ndarray | torch.Tensor, *, compress_level: int = 6) -> bytes:
    """A PIL image, a uint8 (H, W, C) array or a float (C, H, W) tensor in [-1, 1] as the bytes of a PNG
    file. `compress_level` 0..9 (zlib; PIL's default 6; 1 is much faster for a few % more bytes)."""
    if isinstance(image, Image.Image):
        im = image
    elif isinstance(image, np.ndarray):
        im = array_to_pil(image)
    else:
        im = tensor_to_pil(image)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8, same shape and device, as the metrics quantise (StyleGAN's
    x * 127.5 + 128 truncated, i.e. rounding half up): what FID & co. are measured on."""
    import torch

    return (images.detach().float() * 127.5 + 128).clamp_(0, 255).to(torch.uint8)


# ---- writing files ---------------------------------------------------------------------------------------

# File suffixes `save_image` writes, and PIL's format for each.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_image(img: Image.Image, path: str | os.PathLike, format: str | None = None) -> None:
    """Write atomically (temp file + rename, so a viewer never sees half a file) in the format of the path's
    suffix (see IMAGE_FORMATS; PNG for any other): JPEG at quality 95, WebP lossless, so a saved grid still
    shows what the model made."""
    path = Path(path)
    fmt = format or IMAGE_FORMATS.get(path.suffix.lower(), "PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    kwargs: dict[str, Any] = {}
    if fmt == "JPEG":
        img = img.convert("L" if img.mode in ("L", "1") else "RGB")
        kwargs = {"quality": 95}
    elif fmt == "WEBP":
        kwargs = {"lossless": True}
    try:
        img.save(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    """Write a PNG atomically (temp file + rename), so a viewer never sees half a PNG."""
    save_image(img, path, format="PNG")


def save_png_array(arr: np.ndarray, path: str | os.PathLike, *, level: int = 6) -> None:
    """Write a uint8 (H, W, C) array (C 1, 3 or 4) as an 8-bit PNG, atomically, compressing one row at a time,
    so a very large image (a 4000x3000 photo enlarged 4x: 192 million pixels) costs no copy beyond the
    array itself; PIL would first copy it into its own 4-bytes-per-pixel image (PNG spec, ISO/IEC 15948)."""
    import struct
    import zlib

    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected a uint8 (H, W, 1|3|4) array, got {arr.dtype} {arr.shape}")
    h, w, c = arr.shape
    colour = {1: 0, 3: 2, 4: 6}[c]  # grayscale, truecolour, truecolour with alpha

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)))
            z = zlib.compressobj(level)
            pending = bytearray()
            for row in arr:  # filter type 0 (none) per row
                pending += z.compress(b"\x00" + np.ascontiguousarray(row).tobytes())
                if len(pending) >= 1 << 20:
                    f.write(chunk(b"IDAT", bytes(pending)))
                    pending.clear()
            pending += z.flush()
            f.write(chunk(b"IDAT", bytes(pending)) + chunk(b"IEND", b""))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
