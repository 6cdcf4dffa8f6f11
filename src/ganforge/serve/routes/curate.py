"""/api/runs/{run}/curate: generate `num` images from seeds 0.., score them with `ganforge.curate`'s scorers and
keep the best `keep` (ranks averaged over the scorers, or discriminator rejection sampling with `by=drs`); the
kept images come back best first with their scores (and small PNG data URLs), with each scorer's mean before
and after. Nothing is written to disk."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request

from .. import params as P
from ..images import png_bytes, resized_frames
from ..runs import capabilities, checkpoint_meta, dataset_name, finite, latest_step, read_json
from ..studio import ERRORS, StudioDep

router = APIRouter(tags=["curate"])
THUMB = 128  # kept images are sent at most this many pixels on a side (the full image: generate.png?seed=)
NEEDS_D = ("realness", "drs")


def _noise_run(studio: Any, run: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    d = studio.run_dir(run)
    cfg = read_json(d / "config.json") or {}
    step, meta = checkpoint_meta(d)
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    if capabilities(cfg.get("model")).get("inputs") != "noise" or spec.get("kind") not in (None, "image"):
        raise P.ParamError(400, f"run '{d.name}' does not generate images from seeds: curation needs one that does")
    return d, cfg, spec


@router.get("/api/runs/{run}/curate/scorers", summary="The scorers curation can use for a run", responses=ERRORS)
def curate_scorers(run: str, studio: StudioDep) -> dict[str, Any]:
    """Every scorer of the registry with whether it can run for this run and, if not (or only maybe), why;
    `classes`: the names `classifier:<class>` takes."""
    from ...curate.scorers import scorer_names
    from ...metrics.classifier import SHIPPED_DATASETS

    d, cfg, spec = _noise_run(studio, run)
    names = [str(c) for c in spec.get("class_names") or []]
    data = dataset_name(cfg.get("data"))
    labelled = bool(spec.get("num_classes")) or data in SHIPPED_DATASETS
    if not names and data in SHIPPED_DATASETS:
        try:
            from ...metrics.classifier import load_shipped_classifier

            names = [str(c) for c in load_shipped_classifier(data)[0].meta.get("class_names") or []]
        except Exception:  # noqa: BLE001 - a damaged installation: the scorer itself will say so
            names = []
    why_labels = "" if labelled else "needs labelled training data (class sub-folders, digits, emoji)"
    out = []
    for name in scorer_names():
        entry: dict[str, Any] = {"name": name, "available": True, "why": ""}
        if name == "face-pose":
            entry.update(available=False, why="needs a face detector with landmarks, which no installed package ships")
        elif name in ("realism", "classifier"):
            entry["why"] = why_labels
            if name == "classifier":
                entry["takes"] = "class"
        elif name == "realness":
            entry["why"] = "uses the run's discriminator"
        out.append(entry)
    out.append({"name": "drs", "available": True, "why": "discriminator rejection sampling (Azadi et al. 2019), alone"})
    return {
        "run": d.name,
        "scorers": out,
        "classes": names,
        "limits": {"num": P.MAX_CURATE_NUM, "keep": P.MAX_CURATE_KEEP},
        "step": latest_step(d),
    }


@router.get(
    "/api/runs/{run}/curate",
    summary="Generate, score and keep the best images of a run",
    responses={**ERRORS, 400: {"description": "A scorer cannot run for this run (the detail says why)."}},
)
async def curate_run(
    request: Request,
    run: str,
    studio: StudioDep,
    by: str | None = Query(None, description="Scorers, e.g. sharpness,iqa or classifier:3, or drs alone."),
    num: str | None = Query(
        None, description=f"Images generated from seeds 0..num-1, 1..{P.MAX_CURATE_NUM} (default 128)."
    ),
    keep: str | None = Query(None, description=f"Images kept, 1..{P.MAX_CURATE_KEEP} and at most num (default 16)."),
) -> dict[str, Any]:
    """{"kept": [{"seed", "rank", "scores", "label"?, "png", "url"}], best first, "scorers": {name: before_mean,
    after_mean, before_std, after_std}, "method", "accepted_fraction" (drs)}. Seed s is the image of
    generate.png?seed=s."""
    d, _, _ = _noise_run(studio, run)
    names = P.parse_scorers(by)
    n, k = P.parse_curate_counts(num, keep)
    need_d = any(b in NEEDS_D for b in names)

    def work(model: Any) -> dict[str, Any]:
        return _curate(model, d.name, names, n, k, studio.device)

    if need_d:  # the cached generators hold G only: load the run with its discriminator (kept in `held`)
        step = latest_step(d)
        if step is None:
            raise P.ParamError(409, f"run '{d.name}' has no checkpoint yet: wait for its first one")

        def load() -> Any:
            from ...sample.model import Model

            return Model.load(d, checkpoint=step, device=studio.device, nets="all")

        out = await studio.held_work(request, ("curate-model", str(d), step), load, work, inference=False)
        out["step"] = step
    else:
        # Not in inference mode: a labelled set without a cached classifier trains one (realism, classifier:).
        out, loaded = await studio.model_work(request, d, lambda m: work(m.model), inference=False)
        out["step"] = loaded.step
    return finite(out)


def _curate(model: Any, run: str, names: list[str], num: int, keep: int, device: str) -> dict[str, Any]:
    import torch

    from ...curate import curate
    from ...sample.latents import noise_request

    res = curate(model, num=num, keep=keep, by=names, out=None, histograms=False, device=device, batch=64)
    idx = res.kept.nonzero().flatten()
    if res.method == "drs":
        key = -res.scores["drs_probability"][idx].double()
    else:  # the combined rank curate keeps by: mean over the scorers of each image's rank (0 = best)
        ranks = torch.zeros(len(res.seeds), dtype=torch.float64)
        for name in res.by:
            order = torch.argsort(-res.scores[name].double(), stable=True)
            r = torch.empty_like(ranks)
            r[order] = torch.arange(len(res.seeds), dtype=torch.float64)
            ranks += r
        key = ranks[idx] / max(len(res.by), 1)
    best = idx[torch.argsort(key, stable=True)].tolist()
    seeds = [res.seeds[i] for i in best]
    thumbs: list[str] = []
    for lo in range(0, len(seeds), 64):
        part = seeds[lo : lo + 64]
        x = model.sampler.run(noise_request(part, model.latent_shape, model.spec.num_classes), batch=64)
        side = x.shape[-1]
        for im in resized_frames(x, THUMB if side > THUMB else None):
            thumbs.append("data:image/png;base64," + base64.b64encode(png_bytes(im)).decode("ascii"))
    kept = []
    for rank, (i, s, png) in enumerate(zip(best, seeds, thumbs)):
        row: dict[str, Any] = {
            "seed": s,
            "rank": rank,
            "scores": {name: float(v[i]) for name, v in res.scores.items()},
            "png": png,
            "url": f"/api/runs/{quote(run, safe='')}/generate.png?seed={s}",
        }
        if res.labels is not None:
            row["label"] = int(res.labels[i])
        kept.append(row)
    summary = res.summary()
    return {
        "run": run,
        "num": num,
        "keep": keep,
        "by": names,
        "method": res.method,
        "scorers": summary["scorers"],
        "accepted_fraction": res.accepted_fraction,
        "kept": kept,
    }
