"""Plumbing the benchmark scripts share: the argument parser, row selection, the machine record and
the JSON report (which always says how to reproduce it).

Scripts import it as `_common`: their folder is on sys.path when run as `python benchmarks/x.py`,
and pytest's `pythonpath` setting puts it there for the tests that load a script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def parser(doc: str | None, *, quick: str | None = None) -> argparse.ArgumentParser:
    """An argument parser whose description is the script's docstring, with --json (and --quick,
    when `quick` says what it does)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if quick is not None:
        ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--json", type=Path, default=None, help="write the results here (with the command and the machine)")
    return ap


def select(items: Sequence[T], names: str, what: str) -> list[T]:
    """The items whose `.name` is in the comma-separated `names` (all when empty). Exits with one
    line naming the choices (exit code 2) when a name is unknown."""
    wanted = [n for n in names.split(",") if n]
    chosen = [it for it in items if not wanted or it.name in wanted]  # type: ignore[attr-defined]
    unknown = [n for n in wanted if n not in {it.name for it in items}]  # type: ignore[attr-defined]
    if unknown or not chosen:
        have = ", ".join(repr(it.name) for it in items)  # type: ignore[attr-defined]
        print(f"error: no {what} named {', '.join(map(repr, unknown or wanted))}; have: {have}", file=sys.stderr)
        sys.exit(2)
    return chosen


def cpu_features() -> str:
    """The CPU's vector feature set, as ganforge reports it (`ganforge.device.cpu_features`)."""
    from ganforge.device import cpu_features as features

    return features()


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_features": cpu_features(),
    }


def command(argv: Iterable[str] | None = None) -> str:
    """The command line that produced this run, for the report."""
    args = list(sys.argv[1:] if argv is None else argv)
    script = Path(sys.argv[0])
    shown = f"benchmarks/{script.name}" if script.suffix == ".py" else "benchmarks/<script>.py"
    return shlex.join(["python", shown, *args])


def write_json(path: Path | None, payload: dict[str, Any], argv: Iterable[str] | None = None) -> None:
    """Write the report with `command` and `machine` added (unless the payload has them)."""
    if path is None:
        return
    payload = {**payload}
    payload.setdefault("command", command(argv))
    payload.setdefault("machine", machine())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path}")
