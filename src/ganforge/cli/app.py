"""The `ganforge` click group: `main`, which imports no verb. The verbs are registered on it by
`ganforge.cli` (the package's __init__), explicitly, so no verb module imports the package.

Errors a user can cause (GanforgeError) are printed as one line, without a traceback."""

from __future__ import annotations

import sys
import warnings

import click

from .. import __version__
from ..errors import GanforgeError


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
    warnings.formatwarning = _warning_line


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    """A warning as the CLI prints it: one line, "warning: ...", without the source line behind it."""
    return f"warning: {message}\n"
