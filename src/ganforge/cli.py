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


# The --seeds syntax and its checks live with the Python API's (Model.generate), so both accept the same seeds.
from .sample.seeds import MAX_SEED, MAX_SEEDS, parse_seeds  # noqa: E402,F401,I001  (ganforge.cli.parse_seeds, as before)


# Verbs defined in their own modules register themselves on `main` when imported.
from . import cli_eval, cli_interop, cli_prepare, cli_sample, cli_train  # noqa: E402,F401,I001
from . import cli_share  # noqa: E402,F401,I001
from . import cli_serve  # noqa: E402,F401,I001
