"""Seeds as users give them: the StyleGAN `--seeds` syntax ('0-3,7') or a list of whole numbers.

One validation for the CLI (`ganforge generate --seeds`, `interpolate`, `mix`) and the Python API
(`Model.generate(seeds=...)`): seeds are whole numbers from 0 to 2**32 - 1, at most `MAX_SEEDS` of them,
never silently wrapped (-1 is not 4294967295), truncated (1.5 is not 1) or reduced (2**40 is not 0).
Imports nothing heavy: the CLI uses it before torch is loaded.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable

from ..errors import ConfigError

MAX_SEEDS = 1_000_000  # seeds in one list: more is a typo (0-1000000000) rather than a plan
MAX_SEED = 2**32 - 1  # seeds are 32-bit, as in StyleGAN's --seeds
_SEED_PART = re.compile(r"([0-9]+)(?:\s*-\s*([0-9]+))?")


def show(text: str, limit: int = 60) -> str:
    """User text quoted in a one-line message: control characters escaped, long text shortened."""
    shown = text if text.isprintable() else ascii(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def parse_seeds(text: str, *, max_count: int = MAX_SEEDS) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (the StyleGAN --seeds syntax).

    Seeds are whole numbers from 0 to 2**32 - 1; a list holds at most `max_count` of them, so that a
    mistyped range fails at once instead of filling memory. Errors are one-line ConfigErrors."""
    hint = "use a list and ranges like 0-63 or 3,17,42"
    seeds: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = _SEED_PART.fullmatch(part)
        if m is None:
            if re.search(r"(^|-)\s*-\s*[0-9]", part):
                raise ConfigError(f"seeds cannot be negative ('{show(part)}'); seeds go from 0 to {MAX_SEED}")
            raise ConfigError(f"cannot parse seeds '{show(text)}': {hint}")
        a, b = m.group(1), m.group(2) if m.group(2) is not None else m.group(1)
        if max(len(a.lstrip("0")), len(b.lstrip("0"))) > len(str(MAX_SEED)) or int(b) > MAX_SEED or int(a) > MAX_SEED:
            raise ConfigError(f"seed in '{show(part)}' is too large: seeds go from 0 to {MAX_SEED}")
        lo, hi = int(a), int(b)
        if hi < lo:
            raise ConfigError(f"seed range '{show(part)}' runs backwards; write it low-high, e.g. {hi}-{lo}")
        if len(seeds) + (hi - lo + 1) > max_count:
            raise ConfigError(
                f"--seeds '{show(text)}' names more than {max_count:,} seeds; generate in smaller ranges (e.g. 0-9999)"
            )
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise ConfigError("no seeds given: use e.g. --seeds 0-63")
    return seeds


def check_seeds(seeds: str | int | Iterable[int], *, max_count: int = MAX_SEEDS) -> list[int]:
    """Seeds as the Python API takes them: a string in the --seeds syntax ('0-3,7'), one int, or any
    iterable of whole numbers (a list, a range, a numpy or torch integer array). Returns a list of ints
    in 0..2**32-1, or raises a one-line ConfigError naming the first bad seed."""
    if isinstance(seeds, str):
        return parse_seeds(seeds, max_count=max_count)
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        seeds = [seeds]
    if hasattr(seeds, "tolist") and callable(seeds.tolist):  # numpy / torch arrays: their elements as Python values
        seeds = seeds.tolist()
        seeds = [seeds] if not isinstance(seeds, list) else seeds
    if isinstance(seeds, range):
        if len(seeds) > max_count:
            raise ConfigError(f"seeds {seeds} name more than {max_count:,} seeds; generate in smaller ranges (e.g. range(10000))")
        if len(seeds) and (min(seeds) < 0 or max(seeds) > MAX_SEED):
            raise ConfigError(f"seeds {seeds} go outside 0..{MAX_SEED}; seeds go from 0 to {MAX_SEED}")
    try:
        items = iter(seeds)
    except TypeError:
        raise ConfigError(
            f"seeds must be a list of whole numbers or a string like '0-3,7', not {type(seeds).__name__}"
        ) from None
    out: list[int] = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            what = repr(s) if isinstance(s, (numbers.Number, str)) else type(s).__name__
            raise ConfigError(
                f"seed {show(what)} is not a whole number: seeds are integers from 0 to {MAX_SEED} "
                "(or a string like '0-3,7')"
            )
        v = int(s)
        if not 0 <= v <= MAX_SEED:
            raise ConfigError(f"seed {v} is out of range: seeds go from 0 to {MAX_SEED} (they are not wrapped)")
        out.append(v)
        if len(out) > max_count:
            raise ConfigError(f"more than {max_count:,} seeds; generate in smaller ranges (e.g. 10,000 at a time)")
    if not out:
        raise ConfigError("no seeds given: pass at least one, e.g. seeds=[0, 1, 2] or seeds='0-3'")
    return out
