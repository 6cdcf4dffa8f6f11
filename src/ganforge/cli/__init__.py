"""The `ganforge` command. Each verb is thin: options -> validated config -> one library call.

`main` (the click group, in `app`) gets its verbs here, explicitly, from one module per group of verbs. A
verb module imports `app` or the shared helpers (`options`), never this package, so the CLI has no import
cycle. Heavy imports (torch) stay inside the command functions, so `ganforge --help` is fast.
"""

from __future__ import annotations

# The --seeds syntax and its checks live with the Python API's (Model.generate), so both accept the same seeds.
from ..sample.seeds import MAX_SEED, MAX_SEEDS, parse_seeds
from . import attack, curate, eval, interop, prepare, sample, serve, share, train
from .app import main

for _command in (
    train.train,
    train.info,
    sample.generate,
    sample.translate,
    sample.enhance,
    sample.colorize,
    sample.interpolate,
    sample.mix,
    sample.project,
    eval.eval_cmd,
    curate.curate,
    attack.attack,
    prepare.prepare,
    prepare.datasets,
    interop.import_,
    share.export,
    share.push,
    share.report,
    serve.serve,
):
    main.add_command(_command)
del _command

__all__ = ["MAX_SEED", "MAX_SEEDS", "main", "parse_seeds"]
