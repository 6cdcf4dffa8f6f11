"""/api/runs/{run}/generate.png, interpolate.gif and mix.png: images from seeds, at the run's newest checkpoint
(X-Ganforge-Step tells which)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...errors import GanforgeError
from .. import params as P
from ..images import gif_bytes, png_bytes, resized_frames
from ..models import Loaded
from ..studio import ERRORS, GIF, PNG, StudioDep, image_headers

router = APIRouter(tags=["generate"])


@router.get(
    "/api/runs/{run}/generate.png",
    summary="One image for a seed",
    response_class=Response,
    responses={**PNG, **ERRORS, 400: {"description": "The run translates images (use /translate)."}},
)
async def generate_png(
    request: Request,
    run: str,
    studio: StudioDep,
    seed: str | None = Query(None, description="0..4294967295 (default 0)."),
    psi: str | None = Query(
        None, description="Truncation psi, finite, -2..2 (default 1: none). Refused (422) by models without truncation."
    ),
    class_: str | None = Query(
        None, alias="class", description="Class index or name, for conditional models (default: seed % classes)."
    ),
    size: str | None = Query(None, description="Side of the PNG in pixels, 8..2048 (default: the model's resolution)."),
    noise: str | None = Query(None, description="Per-pixel noise (stylegan2): const, random or none (default const)."),
    prompt: str | None = Query(
        None, description=f"Text-conditioned models: what to draw, at most {P.TEXT_BYTES} bytes (default: an example caption)."
    ),
) -> Response:
    """The generator's image for `seed` at the run's newest checkpoint (X-Ganforge-Step tells which)."""
    d = studio.run_dir(run)
    s, p, px, nm = P.parse_seed(seed), P.parse_psi(psi), P.parse_size(size), P.parse_noise(noise)
    pr = P.parse_prompt(prompt)

    def work(m: Loaded) -> bytes:
        model = m.model
        if model.capabilities.inputs != "noise":
            raise GanforgeError(f"run '{d.name}' translates images: POST an image to /api/runs/{d.name}/translate")
        label = P.parse_class(class_, model.class_names, model.spec.num_classes)
        _supported(model, p, nm, pr)
        x = model.generate([s], label=label, trunc=p, noise_mode=nm, prompt=pr, output="tensor")
        return png_bytes(resized_frames(x, px)[0])

    data, loaded = await studio.model_work(request, d, work)
    return Response(data, media_type="image/png", headers=image_headers(loaded))


@router.get(
    "/api/runs/{run}/interpolate.gif",
    summary="An animation between two seeds",
    response_class=Response,
    responses={**GIF, **ERRORS},
)
async def interpolate_gif(
    request: Request,
    run: str,
    studio: StudioDep,
    from_: str | None = Query(None, alias="from", description="First seed, 0..4294967295 (default 0)."),
    to: str | None = Query(None, description="Second seed, 0..4294967295 (default 1)."),
    frames: str | None = Query(None, description=f"Frames in the loop, 2..{P.MAX_FRAMES} (default 48)."),
    fps: str | None = Query(None, description="Frames per second, 1..50 (default 24)."),
    psi: str | None = Query(None, description="Truncation psi, -2..2 (default 1)."),
    class_: str | None = Query(None, alias="class", description="Class index or name (default: the first seed's)."),
    size: str | None = Query(None, description="Side of the frames in pixels, 8..2048."),
    noise: str | None = Query(None, description="const, random or none (default const)."),
    prompt: str | None = Query(None, description="Text-conditioned models: what to draw (default: an example caption)."),
) -> Response:
    """A looping GIF that walks from `from` to `to` and back along the great circle between their
    latents (spherical interpolation, White 2016), eased so the ends linger."""
    d = studio.run_dir(run)
    a, b = P.parse_seed(from_, "from"), P.parse_seed(to, "to", default=1)
    n, rate, p, px, nm = (
        P.parse_frames(frames),
        P.parse_fps(fps),
        P.parse_psi(psi),
        P.parse_size(size),
        P.parse_noise(noise),
    )
    pr = P.parse_prompt(prompt)

    def work(m: Loaded) -> bytes:
        import torch

        from ...sample.interpolate import slerp
        from ...sample.latents import labels_for_seeds, latents_for_seeds

        model = m.model
        if model.capabilities.inputs != "noise":
            raise GanforgeError(f"run '{d.name}' translates images; it has no seeds to walk between")
        label = P.parse_class(class_, model.class_names, model.spec.num_classes)
        _supported(model, p, nm, pr)
        keys = latents_for_seeds([a, b], model.latent_shape)
        # Ping-pong with ease in and out: t = (1 - cos(2 pi k / n)) / 2 goes 0 -> 1 -> 0 over the loop.
        t = (1 - torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)) / 2
        z = slerp(keys[0], keys[1], t.to(keys.dtype))  # (n, *latent_shape)
        lab = labels_for_seeds([a], model.spec.num_classes, label)
        labels = lab.expand(n) if lab is not None else None
        x = model.sample_latents(z, labels, trunc=p, noise_mode=nm, batch=16, prompt=_walk_prompt(model, pr, a))
        return gif_bytes(resized_frames(x, px), rate)

    data, loaded = await studio.model_work(request, d, work)
    return Response(data, media_type="image/gif", headers=image_headers(loaded))


@router.get(
    "/api/runs/{run}/mix.png",
    summary="A style-mixing grid (stylegan2)",
    response_class=Response,
    responses={**PNG, **ERRORS, 400: {"description": "The model has no W space."}},
)
async def mix_png(
    request: Request,
    run: str,
    studio: StudioDep,
    rows: str | None = Query(None, description="Row seeds, e.g. 1,2,3 or 1-3 (at most 8; default 1-3)."),
    cols: str | None = Query(None, description="Column seeds (at most 8; default 4-7)."),
    styles: str | None = Query(
        None, description="coarse, middle, fine (Karras et al. 2019, fig. 3) or layers like 0-3 (default coarse)."
    ),
    psi: str | None = Query(None, description="Truncation psi, -2..2 (default 1)."),
    class_: str | None = Query(None, alias="class", description="Class index or name, for conditional models."),
    noise: str | None = Query(None, description="const, random or none (default const)."),
) -> Response:
    """Cell (r, c) takes row r's latent with the layers `styles` taken from column c's; the first
    row and column show the seeds' own images (the style-mixing figure of Karras et al. 2019)."""
    d = studio.run_dir(run)
    rs, cs = P.parse_seed_list(rows, "rows", [1, 2, 3]), P.parse_seed_list(cols, "cols", [4, 5, 6, 7])
    p, nm = P.parse_psi(psi), P.parse_noise(noise)

    def work(m: Loaded) -> bytes:
        from ...sample.grid import make_grid
        from ...sample.styles import style_mix

        model = m.model
        if not model.capabilities.style_mixing:
            raise GanforgeError(f"run '{d.name}' ({model.family.name}) has no W space: style mixing needs stylegan2")
        label = P.parse_class(class_, model.class_names, model.spec.num_classes)
        layers = P.parse_styles(styles, model.family.num_ws(model.nets))
        grid = style_mix(model, rs, cs, layers, trunc=p, noise_mode=nm, label=label)  # (R+1, C+1, C, H, W)
        r1, c1 = grid.shape[:2]
        return png_bytes(make_grid(grid.reshape(r1 * c1, *grid.shape[2:]), nrow=c1))

    data, loaded = await studio.model_work(request, d, work)
    return Response(data, media_type="image/png", headers=image_headers(loaded))


def _supported(model: Any, psi: float, noise: str, prompt: str | None) -> None:
    """Parameters a model does not have are refused with one line (422), as the CLI and `Model.generate` do;
    the page sends only the controls a run's capabilities list."""
    caps = model.capabilities
    if psi != 1.0 and not caps.truncation:
        raise P.ParamError(422, f"model '{model.family.name}' has no truncation trick; drop psi")
    if noise != "const" and noise not in caps.noise_modes:
        raise P.ParamError(422, f"model '{model.family.name}' has no per-pixel noise; drop noise")
    if prompt is not None and caps.conditioning != "text":
        raise P.ParamError(422, f"model '{model.family.name}' is not conditioned on text; drop prompt")


def _walk_prompt(model: Any, prompt: str | None, seed: int) -> str | None:
    """The caption of a walk between seeds: the prompt, else the first seed's example caption."""
    if prompt is not None or model.capabilities.conditioning != "text" or not model.spec.captions:
        return prompt
    return model.spec.captions[seed % len(model.spec.captions)]
