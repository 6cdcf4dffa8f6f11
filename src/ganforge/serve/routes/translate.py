"""/api/runs/{run}/translate and /examples: image-to-image runs (pix2pix, CycleGAN, super-resolution) on an
upload or on one of the run's own example inputs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from ...errors import GanforgeError
from .. import params as P
from ..images import png_bytes
from ..models import Loaded
from ..runs import MAX_EXAMPLES, example_inputs
from ..studio import ERRORS, PNG, StudioDep, image_headers

router = APIRouter(tags=["generate"])


@router.post(
    "/api/runs/{run}/translate",
    summary="Translate an uploaded image (pix2pix, CycleGAN, super-resolution)",
    response_class=Response,
    responses={
        **PNG,
        **ERRORS,
        413: {"description": "Over 10 MB, or over 4096 pixels on a side."},
        415: {"description": "Not an image (PNG, JPEG, WebP, BMP, GIF, TIFF)."},
    },
)
async def translate(
    request: Request,
    run: str,
    studio: StudioDep,
    image: UploadFile = File(..., description="The input image: at most 10 MB and 4096 px on a side."),
    direction: str | None = Form(None, description="CycleGAN: AtoB or BtoA (default: the model's first)."),
) -> Response:
    """The translated (or enhanced) image as PNG. The upload is checked from its header (size,
    dimensions, format) before any pixel is decoded."""
    d = studio.run_dir(run)
    data = await image.read(P.MAX_UPLOAD_BYTES + 1)
    P.check_upload(data)

    def work(m: Loaded) -> bytes:
        model = m.model
        if model.capabilities.inputs != "image":
            raise GanforgeError(f"run '{d.name}' generates from seeds: use /api/runs/{d.name}/generate.png")
        way = P.parse_direction(direction, model.capabilities.directions)
        try:
            out = model.translate(data, direction=way, output="png")
        except GanforgeError as exc:
            if "cannot read" in str(exc):
                raise P.ParamError(415, f"the upload is not a readable image ({str(exc)[:200]})") from None
            raise
        return out[0]

    png, loaded = await studio.model_work(request, d, work)
    return Response(png, media_type="image/png", headers=image_headers(loaded))


@router.get(
    "/api/runs/{run}/examples",
    summary="Example inputs for an image-to-image run (its own preview inputs)",
    responses=ERRORS,
)
def get_examples(run: str, studio: StudioDep) -> dict[str, Any]:
    """The fixed inputs the run shows in its sample grids (taken from its dataset when training
    started), as one-click examples for the translate playground: [{"index", "url", "direction",
    "width", "height"}]. Empty, with a "note", for runs that generate from seeds or have no grid yet."""
    d = studio.run_dir(run)
    found = example_inputs(d)
    examples = [
        {
            "index": i,
            "url": f"/api/runs/{quote(d.name, safe='')}/examples/{i}.png",
            "direction": way,
            "width": im.width,
            "height": im.height,
        }
        for i, (im, way) in enumerate(found["examples"])
    ]
    return {"run": d.name, "step": found["step"], "examples": examples, "note": found["note"]}


@router.get(
    "/api/runs/{run}/examples/{index}.png",
    summary="One example input as PNG",
    response_class=Response,
    responses={**PNG, **ERRORS},
)
def get_example(run: str, index: str, studio: StudioDep) -> Response:
    d = studio.run_dir(run)
    i = P.parse_int(index, "index", 0, MAX_EXAMPLES - 1)
    found = example_inputs(d)
    if i >= len(found["examples"]):
        raise P.ParamError(404, f"run '{d.name}' has no example {i}" + (f": {found['note']}" if found["note"] else ""))
    im, _ = found["examples"][i]
    return Response(png_bytes(im), media_type="image/png", headers={"Cache-Control": "no-cache"})
