"""Export a generator to ONNX and check the file against PyTorch with onnxruntime.

Why the wrappers below instead of exporting the networks directly: generation is more than one network
call (labels into the generator, StyleGAN2's mapping + truncation + synthesis, the family's clamp to
[-1, 1]), and an ONNX user should get exactly what `ganforge generate` makes for the same latents.

Exporter: `torch.onnx.export(..., dynamo=True)` (the torch.export-based exporter, the default since
PyTorch 2.9; the TorchScript exporter is deprecated). Inputs and outputs:

  noise models     z float32 (batch, *latent_shape) [, labels int64 (batch,)] -> image float32 (batch, C, H, W)
                   (or points float32 (batch, D) for point data)
  stylegan2        z, [labels,] psi float32 (1,): truncation toward the tracked mean w, 1 = none;
                   per-pixel noise is fixed to the 'const' mode (same z, same image, as `generate`)
  text to image    z, sentence float32 (batch, sent_dim): the family's text encoder's sentence vector (dfgan). The
                   encoder itself (a Python tokenizer: hashed character n-grams) is not in the graph; the
                   vectors of the data's example captions are in the file's metadata (`sentence_vectors`), and
                   `Model.load(run).family.sentence(...)` gives any prompt's
  image to image   source float32 (batch, C, H, W) in [-1, 1] -> image; H and W are dynamic (multiples of
                   the network's stride) for fully convolutional families, else fixed at the training size

StyleGAN2's modulated convolutions run fused as one grouped convolution at inference, with the batch
size as the group count; ONNX's Conv needs a constant `group`, so the export uses the equivalent
non-fused path (scale activations, shared convolution, demodulate: Karras et al. 2020, sec. 2.2), whose
outputs differ from the fused path only by float rounding (checked below).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import GanforgeError, require
from ..sample.latents import noise_request
from ..spec import ImageRequest, NoiseRequest, encode_text

DEFAULT_OPSET = 18  # the torch.export-based exporter's own default opset
TOLERANCE = 1e-3  # max |ONNX - PyTorch| accepted, for outputs in [-1, 1] (observed: ~1e-6)
MAX_SIDE = 8192  # largest image side the dynamic axes allow
CHECK_SEEDS = (0, 1, 2, 3, 4)  # five random seeds: a batch the export example (2) did not have


class _Noise(nn.Module):
    """z -> samples, through the family's own generate."""

    def __init__(self, family: Any, nets: nn.ModuleDict) -> None:
        super().__init__()
        self.family, self.nets = family, nets

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.family.generate(self.nets, NoiseRequest(z))


class _NoiseLabels(_Noise):
    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.family.generate(self.nets, NoiseRequest(z, labels))


class _Text(nn.Module):
    """z, sentence vectors -> images: a text-conditioned family past its text encoder (`sample_sentence`)."""

    def __init__(self, family: Any, nets: nn.ModuleDict) -> None:
        super().__init__()
        self.family, self.nets = family, nets

    def forward(self, z: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        return self.family.sample_sentence(self.nets, z, sentence)


def _sentences(model: Any, prompts: list[str]) -> torch.Tensor:
    """Sentence vectors (B, dim) of `prompts` under a text-conditioned model's own encoder."""
    try:
        with torch.no_grad():
            return model.family.sentence(model.nets, encode_text(prompts))
    except NotImplementedError:  # a text family that does not implement the base's text protocol
        raise GanforgeError(
            f"model '{model.family.name}' reads text but has no sentence-vector entry point (Family.sentence, "
            "sample_sentence), so it cannot be exported to ONNX"
        ) from None


def _prompts(model: Any, n: int) -> list[str]:
    """n prompts for the export's example and check: the data's example captions, in turn."""
    caps = list(model.spec.captions) or ["red heart"]
    return [caps[i % len(caps)] for i in range(n)]


class _StyleGAN(_Noise):
    """z [, labels], psi -> images: mapping, truncation w' = w_avg + psi (w - w_avg) (Karras et al. 2019,
    appendix B) as an input, then synthesis with const noise on the non-fused modulated convolutions."""

    def __init__(self, family: Any, nets: nn.ModuleDict, conditional: bool) -> None:
        super().__init__(family, nets)
        self.conditional = conditional

    def _run(self, z: torch.Tensor, labels: torch.Tensor | None, psi: torch.Tensor) -> torch.Tensor:
        G = self.family.generator_net(self.nets)
        ws = self.family.mapping(self.nets, z, labels, 1.0)  # (B, num_ws, w_dim)
        ws = G.mapping.w_avg.lerp(ws, psi.reshape(()).to(ws.dtype))
        return G.synthesis(ws, noise_mode="const", fused_modconv=False).float().clamp(-1, 1)

    def forward(self, z: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._run(z, None, psi)


class _StyleGANLabels(_StyleGAN):
    def forward(self, z: torch.Tensor, labels: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._run(z, labels, psi)


class _Image(_Noise):
    def __init__(self, family: Any, nets: nn.ModuleDict, direction: str) -> None:
        super().__init__(family, nets)
        self.direction = direction

    def forward(self, source: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.family.generate(self.nets, ImageRequest(source, direction=self.direction))


@dataclass
class OnnxExport:
    """What was exported, for the CLI's report and for callers."""

    path: Path
    opset: int
    inputs: dict[str, str]  # name -> "float32 [batch, 16]"
    outputs: dict[str, str]
    max_abs_diff: float
    tolerance: float
    notes: list[str] = field(default_factory=list)


def _describe(arg: Any) -> str:
    """onnxruntime's NodeArg as 'float32 [batch, 3, 32, 32]'."""
    dtype = arg.type.removeprefix("tensor(").rstrip(")")
    return f"{'float32' if dtype == 'float' else dtype} [{', '.join(str(d) for d in arg.shape)}]"


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    direction: str | None = None,
    tolerance: float = TOLERANCE,
    check_psi: float = 0.7,
) -> OnnxExport:
    """Export `model` (a `sample.model.Model`, loaded on the CPU) to `path` and check it with onnxruntime on
    `CHECK_SEEDS` (and psi = 1 and `check_psi` for StyleGAN2, a second image size for dynamic image
    inputs). Raises GanforgeError, and removes the file, when the outputs differ by more than `tolerance`."""
    require("onnx", "onnx")
    require("onnxscript", "onnx")  # the torch.export-based exporter builds the graph with it
    ort = require("onnxruntime", "onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fam, nets, spec = model.family, model.nets, model.spec
    caps = fam.capabilities
    notes: list[str] = []
    batch = torch.export.Dim("batch", min=1, max=65536)
    if caps.inputs == "noise":
        cond = spec.num_classes > 0
        ex_req = noise_request(
            [10, 11], model.latent_shape, spec.num_classes
        )  # batch 2: a size-1 dim would be specialised
        names = ["z", "labels"] if cond else ["z"]
        example: tuple[torch.Tensor, ...] = (ex_req.z,) + ((ex_req.labels,) if cond else ())  # type: ignore[operator]
        shapes: dict[str, Any] = {"z": {0: batch}, **({"labels": {0: batch}} if cond else {})}
        if caps.truncation:
            wrapper: nn.Module = _StyleGANLabels(fam, nets, True) if cond else _StyleGAN(fam, nets, False)
            names.append("psi")
            example = (*example, torch.tensor([0.7]))
            shapes["psi"] = None
            notes.append("psi (truncation) is an input: float32 [1], 1 = none, 0.7 is usual")
            notes.append("per-pixel noise is fixed to the 'const' mode")
        else:
            wrapper = (_NoiseLabels if cond else _Noise)(fam, nets)
        if fam.capabilities_for(nets).conditioning == "text":
            wrapper = _Text(fam, nets)
            names = ["z", "sentence"]
            example = (ex_req.z, _sentences(model, _prompts(model, 2)))
            shapes = {"z": {0: batch}, "sentence": {0: batch}}
            notes.append(
                "sentence is the text encoder's vector of a caption; the data's example captions' vectors are in "
                "the metadata (sentence_vectors); other prompts need ganforge (the encoder is not exported)"
            )
        out_name = "points" if spec.kind == "points" else "image"
        candidates: list[tuple[tuple, dict, list[str], int]] = [(example, shapes, [], 0)]
    else:
        directions = caps.directions or ("AtoB",)
        direction = direction or directions[0]
        if direction not in directions:
            raise GanforgeError(f"model '{fam.name}' translates {', '.join(directions)}, not {direction}")
        if len(directions) > 1:
            notes.append(f"direction {direction} (export the other with --direction)")
        wrapper = _Image(fam, nets, direction)
        names, out_name = ["source"], "image"
        side, ch = spec.source_resolution, spec.source_channels
        gen = torch.Generator().manual_seed(0)

        def example_image(s: int) -> tuple[torch.Tensor, ...]:
            return (torch.rand(2, ch, s, s, generator=gen) * 2 - 1,)

        fixed = {"source": {0: batch}}
        candidates = [
            (example_image(side), fixed, [f"image size fixed at {side}x{side} (the network takes no other)"], 0)
        ]
        caps = fam.capabilities_for(model.nets)
        if caps.fully_convolutional:
            stride = caps.size_multiple
            if stride > 1:
                h = stride * torch.export.Dim("h_blocks", min=1, max=MAX_SIDE // stride)
                w = stride * torch.export.Dim("w_blocks", min=1, max=MAX_SIDE // stride)
                note = f"height and width are dynamic: any multiple of {stride}"
            else:
                h = torch.export.Dim("height", min=2, max=MAX_SIDE)
                w = torch.export.Dim("width", min=2, max=MAX_SIDE)
                note = "height and width are dynamic"
            # An example side of one block would be specialised to 1 by torch.export.
            candidates.insert(
                0, (example_image(max(side, 2 * stride)), {"source": {0: batch, 2: h, 3: w}}, [note], stride)
            )

    wrapper.eval()
    param_bytes = sum(p.numel() * p.element_size() for p in nets.parameters())
    last_exc: Exception | None = None
    size_multiple = 0  # image inputs: the stride of dynamic sides (0: fixed size)
    for example, dyn, dyn_notes, multiple in candidates:
        try:
            _export(wrapper, example, path, names, out_name, dyn, opset, external=param_bytes > 1_800_000_000)
        except Exception as exc:  # noqa: BLE001 - dynamic image axes that the network does not allow: try fixed
            last_exc = exc
            continue
        notes += dyn_notes
        size_multiple = multiple
        break
    else:
        raise GanforgeError(f"ONNX export of '{fam.name}' failed: {str(last_exc).strip().splitlines()[-1][:300]}")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diff = _check(sess, model, names, out_name, direction, check_psi, size_multiple)
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        Path(str(path) + ".data").unlink(missing_ok=True)
        raise GanforgeError(
            f"the ONNX export differs from PyTorch by {diff:.3g} (tolerance {tolerance:g}) on seeds "
            f"{CHECK_SEEDS[0]}-{CHECK_SEEDS[-1]}; the file was removed. Try another --opset"
        )
    _annotate(path, model, notes)
    ins = {i.name: _describe(i) for i in sess.get_inputs()}
    outs = {o.name: _describe(o) for o in sess.get_outputs()}
    return OnnxExport(path, opset, ins, outs, diff, tolerance, notes)


def _export(
    wrapper: nn.Module,
    example: tuple,
    path: Path,
    names: list[str],
    out_name: str,
    dyn: dict,
    opset: int,
    external: bool,
) -> None:
    """One quiet export: the exporter prints progress lines and logs guard failures we handle ourselves."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, example, str(path), input_names=names, output_names=[out_name], dynamic_shapes=dyn,
                opset_version=opset, dynamo=True, external_data=external, verbose=False,
            )  # fmt: skip
    finally:
        torch_log.setLevel(level)


def _check(
    sess: Any, model: Any, names: list[str], out_name: str, direction: str | None, psi: float, size_multiple: int
) -> float:
    """Max |ONNX - PyTorch| over the check inputs, PyTorch being the model's own (fused, unexported) path."""
    spec = model.spec
    worst = 0.0
    if "sentence" in names:
        prompts = _prompts(model, len(CHECK_SEEDS))
        req = noise_request(list(CHECK_SEEDS), model.latent_shape, spec.num_classes)
        req.text = encode_text(prompts)
        feed = {"z": req.z.numpy(), "sentence": _sentences(model, prompts).numpy()}
        ref = model.sampler.run(req).numpy()
        return float(np.abs(sess.run([out_name], feed)[0] - ref).max())
    if model.capabilities.inputs == "noise":
        psis = (1.0, psi) if "psi" in names else (1.0,)
        for p in psis:
            req = noise_request(list(CHECK_SEEDS), model.latent_shape, spec.num_classes, truncation=p)
            feed = {"z": req.z.numpy()}
            if "labels" in names:
                assert req.labels is not None
                feed["labels"] = req.labels.numpy()
            if "psi" in names:
                feed["psi"] = np.array([p], np.float32)
            ref = model.sampler.run(req).numpy()
            worst = max(worst, float(np.abs(sess.run([out_name], feed)[0] - ref).max()))
        return worst
    g = torch.Generator().manual_seed(1)
    side = spec.source_resolution
    sizes = [(side, side)]
    if size_multiple == 1:
        sizes.append((side + 3, side + 7))
    elif size_multiple > 1:
        sizes.append((2 * size_multiple, 3 * size_multiple))
    for h, w in sizes:
        x = torch.rand(len(CHECK_SEEDS), spec.source_channels, h, w, generator=g) * 2 - 1
        ref = model.sampler.run(ImageRequest(x, direction=direction or "AtoB")).numpy()
        worst = max(worst, float(np.abs(sess.run([out_name], {"source": x.numpy()})[0] - ref).max()))
    return worst


def _annotate(path: Path, model: Any, notes: list[str]) -> None:
    """Metadata in the file itself (family, step, resolution, classes, what the inputs mean), so an
    ONNX file separated from its run still says what it is."""
    import json

    import onnx

    from .. import __version__

    m = onnx.load(str(path), load_external_data=False)
    spec = model.spec
    props = {
        "ganforge_version": __version__,
        "family": model.family.name,
        "step": str(model.step),
        "resolution": str(spec.resolution),
        "channels": str(spec.channels),
        "class_names": json.dumps(list(spec.class_names)),
        "output_range": "[-1, 1]: uint8 = round((x + 1) * 127.5)",
        "notes": "; ".join(notes),
    }
    if model.capabilities.conditioning == "text":
        prompts = list(dict.fromkeys(spec.captions))
        if prompts:
            vecs = _sentences(model, prompts)
            props["sentence_vectors"] = json.dumps(
                {p: [round(float(v), 6) for v in row] for p, row in zip(prompts, vecs)}
            )
    for k, v in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    m.producer_name = "ganforge"
    onnx.save(m, str(path))
