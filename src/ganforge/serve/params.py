"""Validation of everything a client sends the studio, as small pure functions.

Each takes the raw text of a query parameter (or the bytes of an upload) and returns a valid value or
raises `ParamError` with the HTTP status and the one-line message the client gets as {"detail": ...}.
They import neither FastAPI nor torch, so tests can fuzz them with arbitrary strings
(tests/serve/test_fuzz_params.py): any input gives a value or a `ParamError`, never another exception.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from .. import vocab
from ..config import run_name_problem
from ..sample.seeds import MAX_SEED  # seeds are 32-bit, as in StyleGAN's --seeds and `ganforge generate`
from ..text import TEXT_BYTES, text_problem  # noqa: F401  (TEXT_BYTES: the routes' docs)
from ..vocab import DIRECTIONS, NOISE_MODES

PSI_RANGE = (-2.0, 2.0)  # truncation psi: 1 = none, 0 = the mean image; beyond +-2 images are only noise
MAX_FRAMES = 240  # frames of one interpolation GIF (10 s at 24 fps): bounds the work of one request
SIZE_RANGE = (8, 2048)  # side of a generated image after resizing, in pixels
FPS_RANGE = (1, 50)  # GIF frame rate: browsers clamp frame delays under 20 ms anyway
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # an uploaded image: 10 MB
MAX_UPLOAD_SIDE = 4096  # an uploaded image: pixels on a side
MAX_MIX_SEEDS = 8  # rows or columns of a style-mixing grid

UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # what the studio decodes; others are 415
_INT = re.compile(r"[+]?[0-9]+")


class ParamError(Exception):
    """A request the client must fix: `status` is the HTTP status, `detail` the message."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def shown(text: str, limit: int = 40) -> str:
    """Client text quoted in a message: control characters escaped, long text shortened."""
    s = text if text.isprintable() else ascii(text)[1:-1]
    return s if len(s) <= limit else s[: limit - 3] + "..."


def parse_int(text: str | None, name: str, lo: int, hi: int, default: int | None = None) -> int:
    """A whole number in [lo, hi] written in plain decimal digits (no sign tricks, no 1e3, no 0x)."""
    if text is None or text.strip() == "":
        if default is None:
            raise ParamError(422, f"{name} is required: a whole number from {lo} to {hi}")
        return default
    t = text.strip()
    # Length check before int(): a million-digit string must not cost a quadratic conversion.
    if not _INT.fullmatch(t) or len(t.lstrip("+").lstrip("0")) > len(str(hi)) + 1:
        if re.fullmatch(r"-[0-9]+", t):
            raise ParamError(422, f"{name} must be from {lo} to {hi}, not {shown(t)}")
        raise ParamError(422, f"{name} must be a whole number from {lo} to {hi}, not '{shown(t)}'")
    v = int(t)
    if not lo <= v <= hi:
        raise ParamError(422, f"{name} must be from {lo} to {hi}, not {shown(t)}")
    return v


def parse_seed(text: str | None, name: str = "seed", default: int | None = 0) -> int:
    """A seed: 0 .. 2**32 - 1, the range `ganforge generate --seeds` accepts."""
    return parse_int(text, name, 0, MAX_SEED, default)


def parse_psi(text: str | None, default: float = 1.0) -> float:
    """Truncation psi (Karras et al. 2019, sec. 3 / StyleGAN2's `truncation_psi`): finite, in [-2, 2]."""
    if text is None or text.strip() == "":
        return default
    t = text.strip()
    if len(t) > 32:
        raise ParamError(422, f"psi must be a number from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g}, not '{shown(t)}'")
    try:
        v = float(t)
    except ValueError:
        raise ParamError(
            422, f"psi must be a number from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g}, not '{shown(t)}'"
        ) from None
    if not math.isfinite(v):
        raise ParamError(422, f"psi must be a finite number, not {shown(t)}")
    if not PSI_RANGE[0] <= v <= PSI_RANGE[1]:
        raise ParamError(422, f"psi must be from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g}, not {shown(t)}")
    return v


def parse_prompt(text: str | None) -> str | None:
    """A prompt for a text-conditioned model (None: none given), checked as `Model.generate` checks it."""
    if text is None:
        return None
    problem = text_problem(text)
    if problem:
        raise ParamError(422, problem)
    return text


def parse_frames(text: str | None, default: int = 48) -> int:
    return parse_int(text, "frames", 2, MAX_FRAMES, default)


def parse_fps(text: str | None, default: int = 24) -> int:
    return parse_int(text, "fps", FPS_RANGE[0], FPS_RANGE[1], default)


def parse_size(text: str | None) -> int | None:
    """Side of the returned image in pixels (None: the model's own resolution)."""
    if text is None or text.strip() == "":
        return None
    return parse_int(text, "size", SIZE_RANGE[0], SIZE_RANGE[1])


def parse_noise(text: str | None) -> str:
    """Per-pixel noise mode (StyleGAN2): const, random or none."""
    if text is None or text.strip() == "":
        return "const"
    t = text.strip()
    if t not in NOISE_MODES:
        raise ParamError(422, f"noise must be one of {', '.join(NOISE_MODES)}, not '{shown(t)}'")
    return t


def parse_direction(text: str | None, allowed: Sequence[str] = DIRECTIONS) -> str:
    """Which way an image-to-image model translates; one-way models accept only their own."""
    if text is None or text.strip() == "":
        return allowed[0] if allowed else "AtoB"
    t = text.strip()
    if t not in (allowed or DIRECTIONS):
        raise ParamError(422, f"direction must be {' or '.join(allowed or DIRECTIONS)}, not '{shown(t)}'")
    return t


def parse_class(text: str | None, class_names: Sequence[str], num_classes: int) -> int | None:
    """A class by index or by name (None: unconditional, or each seed's own class, seed % classes)."""
    if text is None or text.strip() == "":
        return None
    t = text.strip()
    if num_classes <= 0:
        raise ParamError(422, "this model is not class-conditional: drop class")
    names = list(class_names)[:num_classes]  # a name past num_classes (a damaged spec) names no class
    if t in names:
        return names.index(t)
    if _INT.fullmatch(t) and len(t) <= 12:
        v = int(t)
        if v < num_classes:
            return v
        raise ParamError(422, f"class {shown(t)} out of range: this model has classes 0..{num_classes - 1}")
    known = ", ".join(shown(c, 20) for c in names[:20])
    raise ParamError(422, f"unknown class '{shown(t)}'" + (f"; classes: {known}" if known else ""))


def parse_seed_list(text: str | None, name: str, default: Sequence[int], max_count: int = MAX_MIX_SEEDS) -> list[int]:
    """'1,2,3' or '0-3': a short list of seeds, for the rows and columns of a style-mixing grid."""
    if text is None or text.strip() == "":
        return list(default)
    return _int_list(text, name, 0, MAX_SEED, max_count)


def parse_styles(text: str | None, num_ws: int) -> list[int]:
    """Layers whose styles come from the column seed: 'coarse', 'middle', 'fine' (Karras et al. 2019,
    fig. 3: 4-8 px, 16-32 px and 64 px-up resolutions, i.e. layers 0-3, 4-7, 8-) or a list like '0-3,6'."""
    t = (text or "coarse").strip()
    if t in ("coarse", "middle", "fine"):
        if num_ws >= 10:  # the paper's split
            bounds = {"coarse": (0, 4), "middle": (4, 8), "fine": (8, num_ws)}
        else:  # a small network: thirds
            a, b = max(1, num_ws // 3), max(2, 2 * num_ws // 3)
            bounds = {"coarse": (0, a), "middle": (a, b), "fine": (b, num_ws)}
        lo, hi = bounds[t]
        return list(range(lo, min(hi, num_ws)))
    return _int_list(t, "styles", 0, num_ws - 1, num_ws)


def _int_list(text: str, name: str, lo: int, hi: int, max_count: int) -> list[int]:
    if len(text) > 400:
        raise ParamError(422, f"{name} is too long")
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition("-")
        first = parse_int(a, name, lo, hi)
        last = parse_int(b, name, lo, hi) if sep else first
        if last < first:
            raise ParamError(422, f"{name} range '{shown(part)}' runs backwards; write it low-high")
        if len(out) + last - first + 1 > max_count:
            raise ParamError(422, f"{name} holds more than {max_count} values")
        out.extend(range(first, last + 1))
    if not out:
        raise ParamError(422, f"{name} is empty: give e.g. 0-3")
    return out


def parse_step(text: str) -> int:
    """The step of a sample grid in its URL (samples/{step}.png)."""
    return parse_int(text, "step", 0, 10**12)


def run_dir(runs_dir: Path, name: str) -> Path:
    """The folder of run `name` inside `runs_dir`, or ParamError 404. The name is one plain folder name:
    no separator, no '..', no hidden folder; the resolved path (symlinks followed) must still lie in
    `runs_dir`, so no request reads a file outside it."""
    missing = ParamError(404, f"no run named '{shown(name)}'")
    if run_name_problem(name) is not None:  # the one rule for run names (ganforge train uses it too)
        raise missing
    root = runs_dir.resolve()
    try:
        p = (root / name).resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, odd bytes
        raise missing from None
    if p.parent != root or not p.is_dir():
        raise missing
    if not ((p / "config.json").is_file() or (p / "checkpoints").is_dir()):
        raise missing
    return p


def check_upload(
    data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_UPLOAD_SIDE
) -> tuple[str, int, int]:
    """(format, width, height) of an uploaded image, read from its header only: over `max_bytes` or
    `max_side` is 413, not an image (or a format the studio does not take) is 415. Nothing is decoded
    here, so a decompression bomb costs nothing; the decoder (`data.prepare.load_image`) checks again."""
    if len(data) > max_bytes:
        raise ParamError(413, f"the upload is {len(data) / 2**20:.1f} MB; the limit is {max_bytes // 2**20} MB")
    if not data:
        raise ParamError(415, "the upload is empty: send a PNG or JPEG image")
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the size check below decides
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header, not the pixels
                fmt, (w, h) = str(im.format or ""), im.size
    except Image.DecompressionBombError:
        raise ParamError(413, f"the image is too large: at most {max_side} pixels on a side") from None
    except Exception:  # PIL raises many types for non-images (UnidentifiedImageError, SyntaxError, ...)
        raise ParamError(415, "the upload is not an image the studio can read: send a PNG or JPEG") from None
    if fmt not in UPLOAD_FORMATS:
        raise ParamError(415, f"{shown(fmt) or 'this'} images are not supported: send a PNG or JPEG")
    if w < 1 or h < 1:
        raise ParamError(415, "the image has no pixels")
    if max(w, h) > max_side:
        raise ParamError(413, f"the image is {w}x{h}; at most {max_side} pixels on a side")
    return fmt, w, h


# ---- attack page (/api/attack) --------------------------------------------------------------------------------

ATTACK_METHODS = vocab.ATTACK_METHODS[:2]  # what the page offers: fgsm (one step) and pgd (20 steps, random start)
ATTACK_NORMS = vocab.ATTACK_NORMS
ATTACK_SHIPPED = ("digits", "emoji", "digits16")  # built-in labelled sets with a classifier shipped in the wheel
EPS_LINF_MAX = 32.0  # L∞ budget in 255ths: 32/255 already changes an image visibly (the page's slider stops at 16)
EPS_L2_MAX = 10.0  # L2 budget in [0, 1] pixel units (the libraries' usual one is 0.5)
MAX_ATTACK_SIDE = 128  # uploads are reduced to this many pixels on their longer side before the attack
RUN_MODEL_PREFIX = "run:"  # "run:NAME": the discriminator of run NAME in RUNS_DIR


def parse_choice(text: str | None, name: str, choices: Sequence[str], default: str | None = None) -> str:
    """One of `choices`, spelled exactly (None or empty: `default`, required when that is None)."""
    if text is None or text.strip() == "":
        if default is None:
            raise ParamError(422, f"{name} is required: one of {', '.join(choices)}")
        return default
    t = text.strip()
    if t not in choices:
        raise ParamError(422, f"{name} must be one of {', '.join(choices)}, not '{shown(t)}'")
    return t


def parse_eps(text: str | None, norm: str) -> float:
    """The attack's budget ε in [0, 1] pixel space (the ART / foolbox / torchattacks convention). For L∞ the
    client sends it in 255ths (8 means 8/255), 0..32; for L2 in pixel units, 0..10 (default 0.5)."""
    linf = norm == "linf"
    hi = EPS_LINF_MAX if linf else EPS_L2_MAX
    unit = " in 255ths (8 means 8/255)" if linf else " (L2, in [0, 1] pixel units)"
    if text is None or text.strip() == "":
        return 8 / 255 if linf else 0.5
    t = text.strip()
    bad = ParamError(422, f"eps must be a number from 0 to {hi:g}{unit}, not '{shown(t)}'")
    if len(t) > 24:
        raise bad
    try:
        v = float(t)
    except ValueError:
        raise bad from None
    if not math.isfinite(v) or not 0.0 <= v <= hi:
        raise bad
    return v / 255 if linf else v


def eps_label(eps: float, norm: str) -> str:
    """8/255 for L∞ budgets on the 8-bit grid, else the number."""
    k = eps * 255
    if norm == "linf" and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:.4g}"


def parse_attack_model(text: str | None) -> tuple[str, str]:
    """('shipped', set) for a built-in classifier, ('run', NAME) for "run:NAME" (the run's discriminator;
    the name is checked against RUNS_DIR by `run_dir`)."""
    if text is None or text.strip() == "":
        raise ParamError(422, f"model is required: one of {', '.join(ATTACK_SHIPPED)} or run:NAME")
    t = text.strip()
    if t in ATTACK_SHIPPED:
        return "shipped", t
    if t.startswith(RUN_MODEL_PREFIX) and len(t) > len(RUN_MODEL_PREFIX):
        return "run", t[len(RUN_MODEL_PREFIX) :]
    raise ParamError(
        422, f"unknown model '{shown(t)}': give {', '.join(ATTACK_SHIPPED)} or run:NAME (a run's discriminator)"
    )


# ---- curate view (/api/runs/{run}/curate) ---------------------------------------------------------------------

MAX_CURATE_NUM = 512  # images generated and scored by one request
MAX_CURATE_KEEP = 64  # images sent back
MAX_CURATE_SCORERS = 6
_SCORER = re.compile(r"[A-Za-z0-9_.-]{1,40}(:[A-Za-z0-9_. +-]{1,60})?")


def parse_scorers(text: str | None) -> list[str]:
    """'sharpness,iqa' or 'classifier:7': scorer names (the registry checks them), at most 6, no repeats."""
    if text is None or text.strip() == "":
        raise ParamError(422, "by is required: scorers separated by commas, e.g. sharpness,iqa")
    if len(text) > 400:
        raise ParamError(422, "by is too long")
    out: list[str] = []
    for part in text.split(","):
        p = part.strip()
        if not p:
            continue
        if not _SCORER.fullmatch(p):
            raise ParamError(422, f"'{shown(p)}' is not a scorer name (e.g. sharpness, iqa, classifier:3)")
        if p not in out:
            out.append(p)
    if not out:
        raise ParamError(422, "by is empty: give scorers, e.g. sharpness,iqa")
    if len(out) > MAX_CURATE_SCORERS:
        raise ParamError(422, f"by names {len(out)} scorers; at most {MAX_CURATE_SCORERS}")
    if "drs" in out and len(out) > 1:
        raise ParamError(422, "drs samples by the discriminator alone: choose it without other scorers")
    return out


def parse_curate_counts(num: str | None, keep: str | None) -> tuple[int, int]:
    """(num, keep): images generated (1..512, default 128) and kept (1..64 and at most num, default 16)."""
    n = parse_int(num, "num", 1, MAX_CURATE_NUM, 128)
    k = parse_int(keep, "keep", 1, MAX_CURATE_KEEP, min(16, n))
    if k > n:
        raise ParamError(422, f"keep ({k}) is more than num ({n}): keep at most the images generated")
    return n, k
