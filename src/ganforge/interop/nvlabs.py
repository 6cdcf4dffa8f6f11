"""NVlabs' published StyleGAN2-ADA networks (`network-snapshot-*.pkl`, `ffhq.pkl`, ...) read as data.

Those files are pickles of `torch_utils.persistence` objects: each network pickles as
`_reconstruct_persistent_obj(meta)` with `meta = {type, version, module_src, class_name, state}`, where
`module_src` is the Python source of its module (NVlabs' loader `exec`s it) and `state` is the
module's `__dict__` (`_parameters`, `_buffers`, `_modules` holding the sub-networks, `_init_kwargs`
holding the constructor's arguments). Tensors are pickled by torch (`torch._utils._rebuild_tensor_v2`,
`_rebuild_parameter`, storages as `torch.storage._load_from_bytes` of a `torch.save`d blob).

Here a restricted unpickler resolves only those reconstructors (tensor and storage rebuilding, plain
containers) and replaces `_reconstruct_persistent_obj` and `dnnlib.util.EasyDict` by stand-ins that
keep their arguments as data: `module_src` is never compiled, imported or run, and any other global
in the file is refused with its name. The weights then go, key by key, into ganforge's `stylegan2`
networks, whose layout is NVlabs' (see `nn/stylegan2.py`).
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError

# (module, name) -> what the unpickler may build. Everything else is refused.
_TORCH_REBUILD = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("torch", "Size"),
}
_STORAGES = {
    "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage", "ShortStorage",
    "CharStorage", "ByteStorage", "BoolStorage", "UntypedStorage",
}
_DTYPES = {"float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"}


class PersistentObject:
    """A `torch_utils.persistence` object as data: its class name, the source NVlabs would run (kept as
    an inert string) and its state. Nothing about it is executed."""

    def __init__(self, meta: dict[str, Any]) -> None:
        if not isinstance(meta, dict):
            raise pickle.UnpicklingError("a persistent object without its meta dict")
        self.class_name = str(meta.get("class_name", "?"))
        self.version = meta.get("version")
        self.module_src = str(meta.get("module_src", ""))  # never executed
        state = meta.get("state") or {}
        self.state: dict[str, Any] = dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<persistent {self.class_name}>"

    # ---- reading it as a torch module's data ----------------------------------------------------
    def children(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def init_kwargs(self) -> dict[str, Any]:
        return _plain(self.state.get("_init_kwargs") or {})

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state dict: parameters and buffers of this object and its sub-modules, by dotted name."""
        out: dict[str, torch.Tensor] = {}
        for kind in ("_parameters", "_buffers"):
            for k, v in (self.state.get(kind) or {}).items():
                if isinstance(v, torch.Tensor):
                    out[prefix + k] = v.detach().clone()
        for name, child in self.children().items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access): data only."""


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _load_storage_bytes(b: bytes) -> Any:
    """`torch.storage._load_from_bytes`: a storage saved with torch.save, loaded with weights_only."""
    return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return PersistentObject
        if (module, name) in (("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")):
            return _EasyDict
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage_bytes
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in _TORCH_REBUILD or (module == "torch" and name in _STORAGES):
            return getattr(__import__(module, fromlist=[name]), name)
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"disallowed global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:  # torch.save's zip format; NVlabs pickles do not use it
        raise pickle.UnpicklingError("persistent ids (a torch.save file, not an NVlabs network pickle)")


def load_pickle(path: str | Path) -> Any:
    """The pickle's top-level object with persistent objects as `PersistentObject`s. Raises DataError
    naming the refused global when the file holds anything but network data."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _Unpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path.name} is not an NVlabs network pickle ganforge can read safely: {exc}; nothing in it was run"
        ) from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError) as exc:
        raise DataError(f"cannot read {path} as a network pickle ({type(exc).__name__}: {str(exc)[:200]})") from None


@dataclass
class NVNetworks:
    """What an NVlabs snapshot holds, as data."""

    G: PersistentObject | None
    D: PersistentObject | None
    G_ema: PersistentObject | None
    extra: dict[str, Any] = field(default_factory=dict)


def read_networks(path: str | Path) -> NVNetworks:
    data = load_pickle(path)
    if isinstance(data, PersistentObject):  # a bare network
        data = {"G_ema": data}
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentObject) for k in ("G", "G_ema")):
        raise DataError(f"{Path(path).name} holds no generator (expected a dict with G / G_ema, as NVlabs' snapshots have)")
    nets = {k: data.get(k) if isinstance(data.get(k), PersistentObject) else None for k in ("G", "D", "G_ema")}
    extra = {k: _plain(v) for k, v in data.items() if k not in nets and not isinstance(v, PersistentObject)}
    return NVNetworks(**nets, extra=extra)


def architecture(nets: NVNetworks) -> dict[str, Any]:
    """ganforge stylegan2 settings and data spec read from the networks' constructor arguments, or a
    DataError "not supported: <architecture>"."""
    g = nets.G_ema or nets.G
    assert g is not None
    if g.class_name != "Generator":
        raise DataError(f"not supported: a network of class {g.class_name} (ganforge imports StyleGAN2 Generators)")
    syn = g.children().get("synthesis")
    if isinstance(syn, PersistentObject) and ("input" in syn.children() or syn.class_name != "SynthesisNetwork"):
        raise DataError("not supported: StyleGAN3 (alias-free, -t/-r) networks; ganforge's stylegan2 family runs StyleGAN2/ADA")
    kw = g.init_kwargs()
    need = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    if not all(k in kw for k in need):
        raise DataError(f"not supported: a Generator without its constructor arguments {need} (an older pickle format)")
    mk, sk = kw.get("mapping_kwargs") or {}, kw.get("synthesis_kwargs") or {}
    arch = sk.get("architecture", "skip")
    if arch != "skip":
        raise DataError(f"not supported: generator architecture '{arch}' (ganforge's stylegan2 G uses 'skip', as every published network does)")
    for key in ("embed_features", "layer_features"):
        if mk.get(key) not in (None, kw["w_dim"]):
            raise DataError(f"not supported: mapping network with {key}={mk[key]}")
    fam: dict[str, Any] = {
        "cfg": "auto", "z_dim": int(kw["z_dim"]), "w_dim": int(kw["w_dim"]), "map_layers": int(mk.get("num_layers", 8)),
        "channel_base": int(sk.get("channel_base", 32768)), "channel_max": int(sk.get("channel_max", 512)),
        "num_fp16_res": int(sk.get("num_fp16_res", 0)), "conv_clamp": float(sk.get("conv_clamp") or 0.0),
        "d_architecture": "resnet", "mbstd_group": 4,
    }
    if nets.D is not None:
        dk = nets.D.init_kwargs()
        fam["d_architecture"] = dk.get("architecture", "resnet")
        fam["mbstd_group"] = int((dk.get("epilogue_kwargs") or {}).get("mbstd_group_size", 4) or 4)
        for key, default in (("channel_base", 32768), ("channel_max", 512)):
            if int(dk.get(key, default)) != fam[key]:
                raise DataError(f"not supported: D and G of different widths ({key} {dk.get(key, default)} vs {fam[key]})")
    res, ch, c_dim = int(kw["img_resolution"]), int(kw["img_channels"]), int(kw["c_dim"])
    spec = {"kind": "image", "resolution": res, "channels": ch, "num_classes": c_dim, "class_names": [str(i) for i in range(c_dim)]}
    return {"family": fam, "spec": spec}


def import_network(pkl: str | Path, run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Convert an NVlabs pickle into a ganforge run folder (config.json + checkpoints/step-000000) that
    `generate`, `mix`, `project`, `eval`, `serve` and `train --resume-from` use like any run."""
    from .. import checkpoint as ckpt
    from ..config import TrainConfig
    from ..families.build import build_model
    from ..spec import DataSpec

    pkl, run_dir = Path(pkl), Path(run_dir)
    if (run_dir / "config.json").exists() and not overwrite:
        raise DataError(f"{run_dir} already exists; choose another --run or pass --overwrite")
    nets_nv = read_networks(pkl)
    arch = architecture(nets_nv)
    spec = DataSpec.from_dict(arch["spec"])
    cfg = TrainConfig(data=f"imported:{pkl.name}", model="stylegan2", run=run_dir.name, runs_dir=str(run_dir.parent), family=arch["family"])
    family, fam_cfg, nets = build_model(cfg, spec, torch.device("cpu"))
    cfg.family = {k: getattr(fam_cfg, k) for k in arch["family"]} | {"cfg": "auto"}
    sources = {"G": nets_nv.G or nets_nv.G_ema, "G_ema": nets_nv.G_ema or nets_nv.G, "D": nets_nv.D}
    for name, src in sources.items():
        if src is None:
            continue  # a pickle without D (e.g. G_ema only): D stays freshly initialised for fine-tuning
        sd = src.tensors()
        missing = sorted(set(nets[name].state_dict()) - set(sd))
        unexpected = sorted(set(sd) - set(nets[name].state_dict()))
        if missing or unexpected:
            raise DataError(
                f"not supported: {name}'s layout differs from ganforge's stylegan2 (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        try:
            nets[name].load_state_dict(sd)
        except RuntimeError as exc:
            raise DataError(f"not supported: {name}'s tensor shapes differ ({str(exc).splitlines()[-1][:200]})") from None
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    meta = {
        "family": family.name, "config": cfg.to_dict(), "spec": spec.to_dict(),
        "loop": {"nimg": 0, "elapsed": 0.0, "sampler": {"epoch": 0, "pos": 0}, "precision": "fp32"},
        "torch_version": torch.__version__,
        "imported_from": {"file": pkl.name, "has_D": nets_nv.D is not None, "extra": nets_nv.extra},
    }
    ckpt.save_checkpoint(run_dir / "checkpoints", 0, nets, {}, meta, family.state_dict())
    return run_dir


def pretrained_state(source: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Network weights to start a run from (`train --resume-from`): an NVlabs pickle (G, G_ema, D) or a
    ganforge run folder (its latest checkpoint), as {network: state dict}."""
    from .. import checkpoint as ckpt
    from ..sample.model import find_run

    path = Path(source)
    if path.suffix.lower() == ".pkl":
        nv = read_networks(path)
        architecture(nv)  # refuses what the family cannot run
        out = {k: v.tensors() for k, v in (("G", nv.G or nv.G_ema), ("G_ema", nv.G_ema or nv.G), ("D", nv.D)) if v is not None}
        return out
    base = ckpt.resolve_checkpoint(find_run(source), "latest")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in ckpt.load_tensors(base, prefixes=("net/",)).items():
        _, net, key = k.split("/", 2)
        out.setdefault(net, {})[key] = v
    return out
