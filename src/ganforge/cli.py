"""The `ganforge` command. Each verb is thin: options -> validated config -> one library call.

Errors a user can cause (GanforgeError) are printed as one line, without a traceback.
Other modules attach their verbs to `main` (see the imports at the bottom of this file).
"""

from __future__ import annotations

import re
import sys

import click

from . import __version__
from .errors import GanforgeError


class _Group(click.Group):
    """A click group that turns user errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GanforgeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ganforge")
def main() -> None:
    """ganforge: prepare image datasets, train GANs, evaluate them and generate images."""


MAX_SEEDS = 1_000_000  # seeds in one --seeds list: more is a typo (0-1000000000) rather than a plan
MAX_SEED = 2**32 - 1  # seeds are 32-bit, as in StyleGAN's --seeds
_SEED_PART = re.compile(r"([0-9]+)(?:\s*-\s*([0-9]+))?")


def _show(text: str, limit: int = 60) -> str:
    """User text quoted in a one-line message: control characters escaped, long text shortened."""
    shown = text if text.isprintable() else ascii(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def parse_seeds(text: str, *, max_count: int = MAX_SEEDS) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (the StyleGAN --seeds syntax).

    Seeds are whole numbers from 0 to 2**32 - 1; a list holds at most `max_count` of them, so that a
    mistyped range fails at once instead of filling memory."""
    hint = "use a list and ranges like 0-63 or 3,17,42"
    seeds: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = _SEED_PART.fullmatch(part)
        if m is None:
            if re.search(r"(^|-)\s*-\s*[0-9]", part):
                raise GanforgeError(f"seeds cannot be negative ('{_show(part)}'); seeds go from 0 to {MAX_SEED}")
            raise GanforgeError(f"cannot parse seeds '{_show(text)}': {hint}")
        a, b = m.group(1), m.group(2) if m.group(2) is not None else m.group(1)
        if max(len(a.lstrip("0")), len(b.lstrip("0"))) > len(str(MAX_SEED)) or int(b) > MAX_SEED or int(a) > MAX_SEED:
            raise GanforgeError(f"seed in '{_show(part)}' is too large: seeds go from 0 to {MAX_SEED}")
        lo, hi = int(a), int(b)
        if hi < lo:
            raise GanforgeError(f"seed range '{_show(part)}' runs backwards; write it low-high, e.g. {hi}-{lo}")
        if len(seeds) + (hi - lo + 1) > max_count:
            raise GanforgeError(
                f"--seeds '{_show(text)}' names more than {max_count:,} seeds; generate in smaller ranges (e.g. 0-9999)"
            )
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise GanforgeError("no seeds given: use e.g. --seeds 0-63")
    return seeds


# Verbs defined in their own modules register themselves on `main` when imported.
from . import cli_eval, cli_interop, cli_prepare, cli_sample, cli_train  # noqa: E402,F401,I001
from . import cli_share  # noqa: E402,F401,I001
from . import cli_serve  # noqa: E402,F401,I001
