"""`ganforge serve`: the local web studio and REST API."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from ..errors import ConfigError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the studio on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command(context_settings={"show_default": True})
@click.argument("runs_dir", required=False, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", help="Address to listen on; 0.0.0.0 opens the studio to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, help="TCP port.")
@click.option(
    "--token",
    default=None,
    envvar="GANFORGE_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' on every API request (pages: open /?token=TOKEN once). "
    "Also read from $GANFORGE_TOKEN.",
)
@click.option("--device", default="cpu", help="Where models generate: cpu, auto, cuda or mps.")
@click.option(
    "--threads",
    type=click.IntRange(0, 256),
    default=0,
    help="CPU threads per generation (torch intra-op); 0: every core, or the cores other processes (a training) "
    "leave free, re-read at most once a second: threads that compete for busy cores make each image many times slower.",
)
@click.option("--cache", "cache_size", type=click.IntRange(1, 64), default=4, help="Models kept loaded (LRU).")
def serve(
    runs_dir: str | None, host: str, port: int, token: str | None, device: str, threads: int, cache_size: int
) -> None:
    """Open the web studio for the runs in RUNS_DIR [default: $GANFORGE_RUNS_DIR or ./runs]: runs with
    live status, loss and metric curves, the sample-grid timeline, and a generator playground. The REST
    API is documented at /docs."""
    from ..errors import require

    require("fastapi", "serve")
    from ..serve import _require_multipart

    _require_multipart()
    uvicorn = require("uvicorn", "serve")
    from ..serve import create_app

    root = Path(runs_dir or os.environ.get("GANFORGE_RUNS_DIR") or "runs").expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"no runs folder at {root}; give the folder `ganforge train` writes runs into (default ./runs)"
        )
    if token is not None and (len(token) < 8 or not token.isprintable() or " " in token):
        raise ConfigError(
            "--token must be at least 8 printable characters without spaces (e.g. from `openssl rand -hex 16`)"
        )
    local = is_loopback(host)
    if not local and token is None:
        click.echo(
            f"warning: --host {host} makes the studio reachable from other machines, and it has no authentication; "
            "anyone who can reach this port can use it. Add --token SECRET to require a bearer token.",
            err=True,
        )
    app = create_app(
        root, token, device=device, cache_size=cache_size, allowed_hosts=LOOPBACK_NAMES if local else None,
        share_cpu=threads == 0,
    )
    shown = f"[{host}]" if ":" in host else host
    query = "?token=…" if token else ""
    _check_port(host, port)
    if threads:
        import torch

        torch.set_num_threads(threads)
    click.echo(
        f"ganforge studio: http://{shown}:{port}/{query}  (runs in {root.resolve()}; API docs at /docs; Ctrl-C stops)"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the port is taken or the address is not this machine's (uvicorn would log
    and exit 1)."""
    import socket

    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve --host {host} ({exc.strerror or exc})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port"
            ) from None
