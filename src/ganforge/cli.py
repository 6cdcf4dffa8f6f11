"""The `ganforge` command. Each verb is thin: options -> validated config -> one library call.

Errors a user can cause (GanforgeError) are printed as one line, without a traceback.
Other modules attach their verbs to `main` (see the imports at the bottom of this file).
"""

from __future__ import annotations

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


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (the StyleGAN --seeds syntax)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise GanforgeError(f"cannot parse seeds '{text}': use a list and ranges like 0-63 or 3,17,42") from None
    if not seeds:
        raise GanforgeError("no seeds given: use e.g. --seeds 0-63")
    return seeds


# Verbs defined in their own modules register themselves on `main` when imported.
from . import cli_eval, cli_prepare, cli_sample, cli_train  # noqa: E402,F401,I001
