"""A trained model as a self-contained folder to share: a minimal run folder.

    DIR/
      README.md                      model card (family, data, steps, metrics, sample grid, license, how to load)
      config.json                    the run's config (local paths reduced to file names)
      checkpoints/step-NNNNNN.safetensors   generator weights only (the EMA copy where the run has one)
      checkpoints/step-NNNNNN.json   what `Model.load` needs (family, configs, data spec, version)
      checkpoints/latest.json
      samples/grid-NNNNNN.png        the run's last sample grid (or one made from the exported weights)
      metrics.jsonl                  the training log, when the run has one
      ganforge-export.json           what this folder is and where it came from

Why a run folder rather than a new format: every reader of runs (`ganforge.load`, `generate`, `info`,
`report`, the web studio's runs directory) then accepts it unchanged, and the loader has one code path to
keep safe (safetensors + JSON, never pickle). What is dropped: the discriminator, optimizer state, RNG
states, data order and the family's training-only tensors (CycleGAN's image pools, StyleGAN2's path
length mean), so the folder cannot resume training; `train --resume-from DIR` can start a new run from it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .. import checkpoint as ckpt
from ..config import TrainConfig
from ..errors import ConfigError
from ..locate import find_run
from ..sample.model import Model

EXPORT_FORMAT = "ganforge-export-1"
MARKER = "ganforge-export.json"
CARD_GRID_SEEDS = list(range(16))  # when the run has no sample grid: seeds 0-15 from the exported weights

# The Hugging Face pipeline tag for each kind of data (shown on the Hub's model page).
PIPELINE_TAGS = {
    "image": "unconditional-image-generation",
    "paired": "image-to-image",
    "unpaired": "image-to-image",
    "superres": "image-to-image",
}


def _scrub(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config safe to publish: local paths (which name the user's folders) reduced to file names."""
    out = dict(cfg)
    for key in ("data", "resume_from"):
        val = out.get(key)
        if isinstance(val, str) and val and (os.sep in val or "/" in val) and not val.startswith(("hf:", "builtin:")):
            out[key] = Path(val).name
    out["runs_dir"] = "runs"
    return out


def generator_state(
    model_dir: Path, checkpoint: str | int = "latest", ema: bool = True
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of a generator-only checkpoint: the networks generation needs, read from their EMA
    copies (stored under the copies' names, so `Model.load` picks them as it does in a run)."""
    from ..registry import get_family

    base = ckpt.resolve_checkpoint(model_dir, checkpoint)
    meta = ckpt.read_meta(base)
    family = get_family(TrainConfig.from_dict(meta["config"]).model)
    stored = ckpt.load_tensors(base, prefixes=("net/",))
    have = {k.split("/")[1] for k in stored}
    keep: set[str] = set()
    for name in family.generator_nets:
        copy = family.ema.get(name)
        keep.add(copy if ema and copy in have else name)
    missing = keep - have
    if missing:
        raise ConfigError(f"{base}.safetensors has no weights for {', '.join(sorted(missing))}; it cannot be exported")
    tensors = {k: v for k, v in stored.items() if k.split("/")[1] in keep}
    slim = {k: v for k, v in meta.items() if k not in ("optimizers", "rng", "loop")}
    loop = meta.get("loop", {})
    slim["loop"] = {k: loop[k] for k in ("nimg", "elapsed", "precision") if k in loop}
    slim["config"] = _scrub(meta["config"])
    slim["exported"] = {
        "format": EXPORT_FORMAT,
        "nets": sorted(keep),
        "ema": bool(ema and keep - set(family.generator_nets)),
    }
    return slim, tensors


def final_metrics(metrics_path: Path) -> dict[str, float]:
    """The last logged value of every numeric key in metrics.jsonl (damaged lines skipped)."""
    last: dict[str, float] = {}
    for rec in ckpt.read_log(metrics_path):
        for k, v in rec.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                last[k] = float(v)
    return last


def export_folder(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str | int = "latest",
    ema: bool = True,
    license: str | None = None,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the shareable folder for `run` to `out` (see the module docstring) and check that it loads.

    Written to a temporary folder beside `out` and renamed, so `out` is either complete or absent."""
    run_dir = find_run(run)
    out = Path(out)
    if out.resolve() == run_dir.resolve():
        raise ConfigError(f"--out {out} is the run itself; choose another folder")
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        # Only a folder this function wrote may be replaced: never a user's folder by a typo.
        if not (overwrite and (out / MARKER).exists()):
            hint = "add --overwrite to replace it" if (out / MARKER).exists() else "choose an empty or new folder"
            raise ConfigError(f"{out} already exists and is not empty; {hint}")
    meta, tensors = generator_state(run_dir, checkpoint, ema)
    step = int(meta["step"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        ckdir = tmp / "checkpoints"
        ckdir.mkdir()
        from safetensors.torch import save_file

        name = ckpt.ckpt_name(step)
        save_file(
            {k: v.contiguous() for k, v in tensors.items()}, str(ckdir / f"{name}.safetensors"),
            metadata={"format": ckpt.FORMAT, "ganforge_version": __version__},
        )  # fmt: skip
        (ckdir / f"{name}.json").write_text(json.dumps(meta))
        ckpt.set_pointer(ckdir, "latest", step)
        (tmp / "config.json").write_text(json.dumps(meta["config"], indent=2))
        if (run_dir / "metrics.jsonl").exists():
            shutil.copyfile(run_dir / "metrics.jsonl", tmp / "metrics.jsonl")
        grid = _copy_grid(run_dir, tmp)
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "format": EXPORT_FORMAT,
                    "ganforge_version": __version__,
                    "source_run": run_dir.name,
                    "step": step,
                    "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "nets": meta["exported"]["nets"],
                },
                indent=2,
            )
        )
        model = Model.load(tmp)  # the folder must load before anyone sees it
        if grid is None and model.capabilities.inputs == "noise" and spec_is_image(model):
            from ..images import save_png
            from ..sample.grid import make_grid

            grid = f"samples/grid-{step:06d}.png"
            save_png(make_grid(model.generate(CARD_GRID_SEEDS, output="tensor")), tmp / grid)  # type: ignore[arg-type]
        (tmp / "README.md").write_text(
            model_card(model, run_dir, grid, license=license, repo_id=repo_id, out_name=out.name)
        )
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def spec_is_image(model: Model) -> bool:
    return model.spec.kind != "points"


def _copy_grid(run_dir: Path, dest: Path) -> str | None:
    """The run's newest sample grid copied to `dest`/samples/: its relative path, or None without one."""
    grids = sorted((run_dir / "samples").glob("grid-*.png")) if (run_dir / "samples").is_dir() else []
    (dest / "samples").mkdir()
    if grids:
        shutil.copyfile(grids[-1], dest / "samples" / grids[-1].name)
        return f"samples/{grids[-1].name}"
    return None


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 and float(v).is_integer() else f"{v:.4g}"


def model_card(
    model: Model,
    run_dir: Path,
    grid: str | None,
    *,
    license: str | None = None,
    repo_id: str | None = None,
    out_name: str = "",
) -> str:
    """README.md for the Hub (YAML front matter) and for people: what the model is, how it was trained,
    how good it measured, what it looks like, what the license is and how to load it."""
    cfg, spec, fam = model.config, model.spec, model.family
    data = cfg.data
    builtin_emoji = data in ("emoji", "builtin:emoji")
    nvidia = data.startswith("imported:") or str(cfg.resume_from).endswith(".pkl")
    lic = license or ("cc-by-4.0" if builtin_emoji else "other")
    tags = ["ganforge", "gan", fam.name, "pytorch", "safetensors"]
    pipeline = PIPELINE_TAGS.get(spec.kind)
    front = ["---", f"license: {lic}", "library_name: ganforge", "tags:"] + [f"- {t}" for t in tags]
    if pipeline:
        front.append(f"pipeline_tag: {pipeline}")
    front.append("---")
    loop = model.meta.get("loop", {})
    kimg = float(loop.get("nimg", 0)) / 1000
    hours = float(loop.get("elapsed", 0)) / 3600
    what = {
        "image": f"{spec.resolution}x{spec.resolution} images, {spec.channels} channel{'s' if spec.channels > 1 else ''}",
        "points": f"{spec.dim}-D points",
    }.get(spec.kind, f"{spec.source_resolution} px {spec.kind} inputs -> {spec.resolution} px images")
    title = out_name or run_dir.name
    lines = [*front, "", f"# {title}", ""]
    lines += [
        f"A **{fam.name}** model trained with ganforge ({'class-conditional, ' if spec.num_classes else ''}{what}).",
        "",
    ]
    if grid:
        kind = "input | output | target rows" if spec.image_input else "fixed seeds"
        lines += [f"![sample grid at step {model.step} ({kind})]({grid})", ""]
    lines += ["## Training", "", "| | |", "| --- | --- |", f"| family | `{fam.name}` |", f"| data | `{data}` |"]
    if spec.num_classes:
        names = ", ".join(spec.class_names[:20]) + (" ..." if len(spec.class_names) > 20 else "")
        lines.append(f"| classes | {spec.num_classes}: {names} |")
    lines += [
        f"| steps | {model.step:,} ({kimg:,.1f} kimg, batch {cfg.batch}) |",
        f"| training time | {hours:.2f} h |" if hours >= 0.01 else f"| training time | {hours * 3600:.0f} s |",
        f"| augmentation | {cfg.aug}{f' (p={cfg.aug_p:g})' if cfg.aug == 'fixed' else ''} |",
        f"| precision | {loop.get('precision', cfg.precision)} |",
        f"| weights | {'EMA generator' if model.meta.get('exported', {}).get('ema') else 'generator'} "
        f"(`{', '.join(model.meta.get('exported', {}).get('nets', []))}`) |",
        f"| ganforge | {model.meta.get('ganforge_version', '?')} |",
        "",
    ]
    metrics = final_metrics(run_dir / "metrics.jsonl")
    if metrics:
        skip = {"step", "kimg", "time_s"}
        lines += [
            "## Metrics",
            "",
            f"Last logged values (step {_fmt(metrics.get('step', model.step))}):",
            "",
            "| metric | value |",
            "| --- | ---: |",
        ]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if k not in skip]
        lines.append("")
    lines += ["## Use", "", "```bash", "pip install ganforge"]
    ref = f"hf:{repo_id}" if repo_id else f"path/to/{title}"
    if spec.image_input:
        lines += [f"ganforge translate {ref} my_images/ --out out/", "```", "", "```python", "import ganforge", ""]
        lines += [f'model = ganforge.load("{ref}")', 'images = model.translate(["a.png"])  # list of PIL images']
    else:
        lines += [f"ganforge generate {ref} --seeds 0-15 --grid", "```", "", "```python", "import ganforge", ""]
        lines += [f'model = ganforge.load("{ref}")', "images = model.generate(seeds=[0, 1, 2])  # list of PIL images"]
    lines += [
        "```",
        "",
        "The folder is a ganforge run folder holding only the generator (no discriminator or optimizer "
        "state): weights in safetensors, everything else in JSON, so loading it never runs code from it.",
        "",
        "## License",
        "",
    ]
    if builtin_emoji:
        lines.append(
            "Trained on ganforge's built-in `emoji` set, derived from [Twemoji](https://github.com/twitter/twemoji) "
            "(Copyright Twitter, Inc. and other contributors, CC-BY 4.0): credit Twemoji when you use the images."
        )
    elif nvidia:
        lines.append(
            "Started from an NVlabs StyleGAN2-ADA network: NVIDIA's non-commercial source code license applies to "
            "those weights and what is derived from them (research and teaching, not a product)."
        )
    else:
        lines.append(
            f"License: `{lic}`. A generator reproduces what its training data looks like: check the data's license "
            "before sharing the model or its images."
        )
    lines += ["", "ganforge's own code is Apache-2.0.", ""]
    return "\n".join(lines)
