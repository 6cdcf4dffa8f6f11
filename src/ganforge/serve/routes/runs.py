"""/api/runs: every run's summary, one run's details, its training curves and sample grids; /api/server."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from ... import __version__
from .. import params as P
from ..runs import is_metric, list_runs, series, summary
from ..studio import ERRORS, PNG, StudioDep

log = logging.getLogger("ganforge.serve")
REGULARISERS = ("r1", "gp", "pl_penalty", "pl_mean", "kl_loss", "recon", "cycle", "identity", "l1", "content")
# The groups of curves on the page, in this order; a key goes to the first that claims it (see `_group`).
GROUPS = ["Losses", "Evaluation", "D(x) and D(G(z))", "Gradient norms", "Regularisers", "Speed (img/s)", "Other"]

router = APIRouter(tags=["runs"])


@router.get("/api/runs", summary="Every run in RUNS_DIR")
def get_runs(studio: StudioDep) -> dict[str, Any]:
    """Family, dataset, step, last losses, last metric and status (training / done / stopped /
    failed) of every run folder. A run whose training process is gone shows as stopped."""
    runs = []
    for d in list_runs(studio.root):
        try:
            runs.append(summary(d, studio.metrics_log(d)))
        except Exception:  # one unreadable run must not hide the others
            log.exception("cannot summarise run %s", d)
            runs.append({"name": d.name, "error": "cannot read this run (see the server log)"})
    return {"runs_dir": str(studio.root), "runs": runs}


@router.get("/api/runs/{run}", summary="One run: summary, config, checkpoints, sample steps", responses=ERRORS)
def get_run(run: str, studio: StudioDep) -> dict[str, Any]:
    d = studio.run_dir(run)
    return summary(d, studio.metrics_log(d), detail=True)


@router.get("/api/runs/{run}/metrics", summary="Training curves from metrics.jsonl", responses=ERRORS)
def get_metrics(
    run: str,
    studio: StudioDep,
    max_points: str | None = Query(
        None, description=f"Points per curve, 10..{10_000} (default 2000); longer logs are averaged down."
    ),
) -> dict[str, Any]:
    """{"series": {key: {"x": steps, "y": values}}, "groups": [{"title", "keys"}], "step": last step}.
    Damaged or torn lines of the log are skipped; non-finite values are left out."""
    d = studio.run_dir(run)
    n = P.parse_int(max_points, "max_points", 10, 10_000, 2000)
    records = studio.metrics_log(d).read()
    s = series(records, n)
    groups: dict[str, list[str]] = {}
    for k in sorted(s):
        groups.setdefault(_group(k), []).append(k)
    return {
        "run": d.name,
        "step": int(records[-1]["step"]) if records else 0,
        "series": s,
        "groups": [{"title": t, "keys": groups[t]} for t in GROUPS if t in groups],
    }


def _group(key: str) -> str:
    """The chart a logged key is drawn in."""
    if key.startswith("loss"):
        return "Losses"
    if is_metric(key):
        return "Evaluation"
    if key in ("D_real", "D_fake"):
        return "D(x) and D(G(z))"
    if key.startswith("grad"):
        return "Gradient norms"
    if key in REGULARISERS:
        return "Regularisers"
    if key == "img_s":
        return "Speed (img/s)"
    return "Other"


@router.get(
    "/api/runs/{run}/samples/{step}.png",
    summary="The sample grid saved at a step",
    response_class=Response,
    responses={**PNG, **ERRORS},
)
def get_sample(run: str, step: str, studio: StudioDep) -> FileResponse:
    """samples/grid-NNNNNN.png: the same fixed seeds at every step, so grids compare over training."""
    d = studio.run_dir(run)
    n = P.parse_step(step)
    path = d / "samples" / f"grid-{n:06d}.png"
    if not path.is_file():
        raise P.ParamError(404, f"run '{d.name}' has no sample grid at step {n}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/server", summary="The studio itself: version, runs folder, loaded models")
def server_info(studio: StudioDep) -> dict[str, Any]:
    return {
        "version": __version__,
        "runs_dir": str(studio.root),
        "device": studio.device,
        "loaded": studio.cache.info(),
        "token": studio.needs_token,
    }
