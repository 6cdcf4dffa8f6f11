"""/api/attack: adversarial examples on an upload or a held-out image, against a built-in classifier (digits,
emoji, digits16: the weights shipped with ganforge) or a run's discriminator (fake vs real), with
`ganforge.attack`. The page shows clean | perturbation (x10 around grey) | adversarial with both predictions.

Pixels are in [0, 1] and ε in that space, as in ART, foolbox and torchattacks; the adversarial image is rounded
to the 8-bit grid inside the ε-ball (`quantize=True`), so the PNG sent back keeps |adv - clean| <= ε per pixel.
Uploads are reduced to at most 128 px on their longer side first (`P.MAX_ATTACK_SIDE`): the classifiers look at
32 px and a tiny run's discriminator at its own resolution, so larger images only cost time.
"""

from __future__ import annotations

import base64
import logging
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from ...errors import DataError, GanforgeError
from .. import params as P
from ..images import png_bytes
from ..runs import capabilities, checkpoint_meta, list_runs, read_json
from ..studio import ERRORS, Studio, StudioDep

log = logging.getLogger("ganforge.serve")

router = APIRouter(tags=["attack"])
PERTURBATION_SCALE = 10  # the perturbation is shown x10 around mid-grey, as `ganforge attack`'s grid.png
MAX_EXAMPLE_POOL = 10_000  # a run's training images offered as examples: the first this many


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png01(x: Any) -> bytes:
    """float (C, H, W) in [0, 1] -> PNG bytes (8-bit: values already on the grid stay exact)."""
    import torch

    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return png_bytes(arr)


def _resolve(studio: Studio, model: str | None) -> tuple[str, str, Path | None]:
    """(kind, name, run folder or None) of the `model` parameter; a run must exist in RUNS_DIR (404)."""
    kind, name = P.parse_attack_model(model)
    if kind == "shipped":
        return kind, name, None
    return kind, name, studio.run_dir(name)


def _model_key(studio: Studio, kind: str, name: str, run_dir: Path | None) -> tuple[tuple[Any, ...], Any]:
    """The held-cache key and loader of the model to attack (a run's at its newest checkpoint)."""
    from ..runs import latest_step

    if run_dir is None:

        def load_shipped() -> Any:
            from ...attack import load_model

            return load_model(name, device=studio.device)

        return ("attack-model", name), load_shipped
    step = latest_step(run_dir)
    if step is None:
        raise P.ParamError(409, f"run '{run_dir.name}' has no checkpoint yet: wait for its first one")

    def load_run() -> Any:
        from ...attack import load_model

        return load_model(str(run_dir), device=studio.device, checkpoint=step)

    return ("attack-model", str(run_dir), step), load_run


def _load_examples(kind: str, name: str, run_dir: Path | None) -> dict[str, Any]:
    """The example pool: a shipped set's held-out images (those its classifier never trained on, with their
    labels), or a run's training images (label "real", class 1 of its discriminator)."""
    from ...attack import heldout_split
    from ...data import load_dataset
    from ...data.kinds import ImageDataset

    if run_dir is None:
        ds = load_dataset(name)
        if not isinstance(ds, ImageDataset) or ds.labels is None:
            raise DataError(f"'{name}' has no labelled images to take examples from")
        _, held = heldout_split(len(ds))
        return {
            "images": ds.images,
            "labels": ds.labels,
            "index": held,
            "class_names": [str(c) for c in ds.class_names],
            "note": "held out from the classifier's training",
        }
    cfg = read_json(run_dir / "config.json") or {}
    _, meta = checkpoint_meta(run_dir)
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    data = cfg.get("data")
    if not isinstance(data, str) or not data:
        raise P.ParamError(404, f"run '{run_dir.name}' does not name its training data: upload an image instead")
    try:
        ds = load_dataset(data, resolution=spec.get("resolution"), channels=spec.get("channels"))
    except GanforgeError as exc:
        raise P.ParamError(
            404, f"run '{run_dir.name}''s training data cannot be read here ({str(exc)[:200]})"
        ) from None
    if not isinstance(ds, ImageDataset):
        raise P.ParamError(404, f"run '{run_dir.name}' was not trained on images: upload an image instead")
    import torch

    n = min(len(ds), MAX_EXAMPLE_POOL)
    return {
        "images": ds.images,
        "labels": torch.ones(len(ds), dtype=torch.long),  # real images: the discriminator's class 1, "real"
        "index": torch.arange(n),
        "class_names": ["fake", "real"],
        "note": "a real image the discriminator saw in training",
    }


async def _examples(request: Request, studio: Studio, kind: str, name: str, run_dir: Path | None) -> dict[str, Any]:
    key = ("attack-examples", name if run_dir is None else str(run_dir))
    return await studio.held_work(request, key, lambda: _load_examples(kind, name, run_dir), lambda v: v)


def _pick(pool: dict[str, Any], index: str | None) -> tuple[int, Any, int]:
    """(index, uint8 (C, H, W) image, label) of example `index` (default: a random one)."""
    count = int(pool["index"].numel())
    if count == 0:
        raise P.ParamError(404, "this model has no examples to offer: upload an image instead")
    i = (
        secrets.randbelow(count)
        if index is None or index.strip() == ""
        else P.parse_int(index, "example", 0, count - 1)
    )
    j = int(pool["index"][i])
    return i, pool["images"][j], int(pool["labels"][j])


@router.get("/api/attack/models", summary="The models the attack page can target")
def attack_models(studio: StudioDep) -> dict[str, Any]:
    """The shipped classifiers of the built-in labelled sets, and the discriminator of every unconditional
    noise-to-image run in RUNS_DIR that has a checkpoint ("run:NAME"); with the methods, norms and ε ranges."""
    try:
        from ...data.builtin import describe

        notes = describe()
    except Exception:  # noqa: BLE001 - the notes are decoration
        notes = {}
    models: list[dict[str, Any]] = [
        {"id": s, "label": f"{s}: built-in classifier", "kind": "classifier", "note": notes.get(s, "")}
        for s in P.ATTACK_SHIPPED
    ]
    for d in list_runs(studio.root):
        try:
            cfg = read_json(d / "config.json") or {}
            step, meta = checkpoint_meta(d)
            spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
            if step is None or capabilities(cfg.get("model")).get("inputs") != "noise":
                continue
            if spec.get("kind") not in (None, "image") or spec.get("num_classes"):
                continue  # a conditional D needs each image's class, which an upload does not carry
            models.append(
                {
                    "id": P.RUN_MODEL_PREFIX + d.name,
                    "label": f"discriminator of run {d.name}",
                    "kind": "discriminator",
                    "note": f"{cfg.get('model') or '?'}, {spec.get('resolution') or '?'} px: fake vs real",
                }
            )
        except Exception as exc:  # noqa: BLE001 - one unreadable run must not hide the others
            log.warning("attack page: run %s is not offered (%s: %s)", d.name, type(exc).__name__, str(exc)[:200])
            continue
    return {
        "models": models,
        "methods": list(P.ATTACK_METHODS),
        "norms": list(P.ATTACK_NORMS),
        "eps": dict(  # per norm, in P.ATTACK_NORMS' order: L∞ in 255ths, L2 in [0, 1] pixels
            zip(
                P.ATTACK_NORMS,
                (
                    {"unit": "255ths", "max": P.EPS_LINF_MAX, "default": 8},
                    {"unit": "pixels in [0, 1]", "max": P.EPS_L2_MAX, "default": 0.5},
                ),
            )
        ),
        "max_side": P.MAX_ATTACK_SIDE,
    }


@router.get("/api/attack/example", summary="A held-out example image for a model", responses=ERRORS)
async def attack_example(
    request: Request,
    studio: StudioDep,
    model: str | None = Query(None, description="digits, emoji, digits16 or run:NAME."),
    index: str | None = Query(None, description="Which example, 0..count-1 (default: a random one)."),
) -> dict[str, Any]:
    """{"index", "count", "label", "note", "png"}: for a built-in classifier an image it never trained on, with
    its true class; for a run's discriminator one of the run's real training images ("real")."""
    kind, name, run_dir = _resolve(studio, model)
    pool = await _examples(request, studio, kind, name, run_dir)
    i, img, label = _pick(pool, index)
    names = pool["class_names"]
    return {
        "index": i,
        "count": int(pool["index"].numel()),
        "label": names[label] if 0 <= label < len(names) else str(label),
        "note": pool["note"],
        "png": _data_url(png_bytes(img.permute(1, 2, 0).contiguous().numpy())),
    }


@router.post(
    "/api/attack",
    summary="Attack an uploaded image or an example: clean, perturbation and adversarial, with predictions",
    responses={
        **ERRORS,
        409: {"description": "The run has no checkpoint yet."},
        413: {"description": "Over 10 MB, or over 4096 pixels on a side."},
        415: {"description": "Not an image (PNG, JPEG, WebP, BMP, GIF, TIFF)."},
    },
)
async def attack(
    request: Request,
    studio: StudioDep,
    model: str | None = Form(None, description="digits, emoji, digits16 or run:NAME (its discriminator)."),
    method: str | None = Form(None, description="fgsm (one step) or pgd (20 steps, random start; default)."),
    eps: str | None = Form(
        None, description="L∞: 0..32 in 255ths (default 8); L2: 0..10 in [0, 1] pixels (default 0.5)."
    ),
    norm: str | None = Form(None, description="linf (default) or l2."),
    example: str | None = Form(None, description="Attack example N of /api/attack/example instead of an upload."),
    image: UploadFile | None = File(None, description="The image: at most 10 MB and 4096 px on a side."),
) -> dict[str, Any]:
    """The attack's row (label, clean and adversarial prediction with confidence, success, L∞ and L2 of the
    perturbation) and the three images as PNG data URLs. Success follows the libraries: the adversarial
    prediction is not the label (the true class of an example; for an upload, the clean prediction); `flipped`:
    the prediction changed."""
    import torch

    kind, name, run_dir = _resolve(studio, model)
    m = P.parse_choice(method, "method", P.ATTACK_METHODS, "pgd")
    nm = P.parse_choice(norm, "norm", P.ATTACK_NORMS, "linf")
    e = P.parse_eps(eps, nm)
    has_example = example is not None and example.strip() != ""
    if has_example == (image is not None):
        raise P.ParamError(422, "send either an image (upload) or example=N, not both and not neither")
    mk, load = _model_key(studio, kind, name, run_dir)
    source: dict[str, Any]
    if image is not None:
        data = await image.read(P.MAX_UPLOAD_BYTES + 1)
        P.check_upload(data)
        source = {"upload": data, "name": image.filename or "upload"}
    else:
        pool = await _examples(request, studio, kind, name, run_dir)
        i, img, label = _pick(pool, example)
        source = {"tensor": img, "label": label, "name": f"example {i}", "index": i}

    def work(target: Any) -> dict[str, Any]:
        from ...attack import attack_images

        reduced = None
        if "upload" in source:
            x, reduced = _decode(source["upload"], target.channels)
            labels = None
        else:
            x = source["tensor"].float().div(255).unsqueeze(0)
            if x.shape[1] != target.channels:  # a set's images in the other colour mode: as `to_input` would
                x = x.mean(1, keepdim=True) if target.channels == 1 else x.expand(-1, 3, -1, -1)
                x = (x * 255).round() / 255
            labels = torch.tensor([source["label"]])
        res = attack_images(target, x, labels, method=m, eps=e, norm=nm, quantize=True, seed=0)
        row = res.rows()[0]
        clean, adv = res.clean[0], res.adv[0]
        pert = ((adv - clean) * PERTURBATION_SCALE + 0.5).clamp(0, 1)
        return {
            **row,
            "flipped": row["clean_pred"] != row["adv_pred"],
            "linf_255": row["linf"] * 255,
            "model": {
                "id": model.strip() if model else name,
                "name": getattr(target, "name", name) if run_dir is None else f"discriminator of run {name}",
            },
            "method": m,
            "norm": nm,
            "eps": e,
            "eps_label": P.eps_label(e, nm),
            "source": source["name"],
            "example": source.get("index"),
            "size": [int(x.shape[-1]), int(x.shape[-2])],
            "reduced_from": reduced,
            "perturbation_scale": PERTURBATION_SCALE,
            "images": {
                "clean": _data_url(_png01(clean)),
                "perturbation": _data_url(_png01(pert)),
                "adversarial": _data_url(_png01(adv)),
            },
        }

    return await studio.held_work(request, mk, load, work, inference=False)


def _decode(data: bytes, channels: int) -> tuple[Any, list[int] | None]:
    """An upload as float (1, C, H, W) in [0, 1] on the 8-bit grid, reduced to at most MAX_ATTACK_SIDE px on its
    longer side; with the original size when it was reduced."""
    import torch
    from PIL import Image

    from ...images import open_image, pil_to_array

    try:
        im = open_image(data, mode="L" if channels == 1 else "RGB")
    except GanforgeError as exc:
        raise P.ParamError(415, f"the upload is not a readable image ({str(exc)[:200]})") from None
    reduced = None
    if max(im.size) > P.MAX_ATTACK_SIDE:
        reduced = [im.width, im.height]
        scale = P.MAX_ATTACK_SIDE / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    arr = pil_to_array(im)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255).unsqueeze(0), reduced
