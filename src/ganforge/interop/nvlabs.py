"""NVlabs' published StyleGAN2-ADA networks (`network-snapshot-*.pkl`, `ffhq.pkl`, ...) read as data.

Those files are pickles of `torch_utils.persistence` objects: each network pickles as
`_reconstruct_persistent_obj(meta)` with `meta = {type, version, module_src, class_name, state}`, where
`module_src` is the Python source of its module (NVlabs' loader `exec`s it) and `state` is the
module's `__dict__` (`_parameters`, `_buffers`, `_modules` holding the sub-networks, `_init_kwargs`
holding the constructor's arguments, and plain attributes, some of them numpy scalars such as
`weight_gain = lr_multiplier / np.sqrt(in_features)`). Tensors are pickled by torch
(`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, storages as `torch.storage._load_from_bytes`
of a `torch.save`d blob). A snapshot is `{G, D, G_ema, augment_pipe, training_set_kwargs}`.

Here a restricted unpickler resolves only those reconstructors (tensor and storage rebuilding, plain
containers, numpy scalars and numeric arrays rebuilt from their bytes by ganforge's own checked
constructors) and replaces `_reconstruct_persistent_obj` and `dnnlib.util.EasyDict` by stand-ins that
keep their arguments as data: `module_src` is never compiled, imported or run, and any other global
in the file is refused with its name. Before unpickling, every length the file declares is checked
against the file's size, so a few crafted bytes cannot make the unpickler allocate terabytes. The
weights then go, key by key, into ganforge's `stylegan2` networks, whose layout is NVlabs' (see
`nn/stylegan2.py`). Both repositories' StyleGAN2 networks are read: stylegan2-ada-pytorch's
(`training.networks`, synthesis arguments in `synthesis_kwargs`) and stylegan3's `--cfg=stylegan2`
(`training.networks_stylegan2`, synthesis arguments at the top level, other defaults).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np
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
# numpy keeps `numpy.core` for files written under numpy 1 (NVlabs' published networks) and `numpy._core`
# for numpy 2.
_NUMPY_CORE = ("numpy.core", "numpy._core")
# numpy dtypes as numpy pickles them ("<kind><bytes>"): the numeric ones only, never objects, strings or records.
_NUMPY_CODES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"}
_MAX_DEPTH = 64  # NVlabs' networks nest 4 levels deep, their constructor arguments 3
_LINE_LIMIT = 1 << 16  # a text opcode's line (a global's name, a decimal) longer than this is not a network's


class _Refused(pickle.UnpicklingError):
    """The file holds something ganforge will not build; the message says what."""


class _Damaged(_Refused):
    """The file's opcodes declare more than the file holds, or are not a pickle's."""


class _StorageRefused(_Refused):
    """A tensor storage torch's weights-only loader would not read."""


class PersistentObject:
    """A `torch_utils.persistence` object as data: its class name, the source NVlabs would run (kept as
    an inert string) and its state. Nothing about it is executed."""

    # Defaults for an instance a crafted file creates without its meta (NEWOBJ): an empty network.
    class_name, version, module_src = "?", None, ""
    state: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, meta: dict[str, Any]) -> None:
        if not isinstance(meta, dict):
            raise _Refused("a persistent object without its meta dict")
        self.class_name = str(meta.get("class_name", "?"))
        self.version = meta.get("version")
        self.module_src = str(meta.get("module_src", ""))  # never executed
        state = meta.get("state") or {}
        self.state = dict(state) if isinstance(state, dict) else {}

    def __setstate__(self, state: Any) -> None:  # NVlabs never writes one; a crafted file gets no say
        raise _Refused("state for a persistent object outside its meta dict")

    def __repr__(self) -> str:
        return f"<persistent {self.class_name}>"

    # ---- reading it as a torch module's data ----------------------------------------------------
    def children(self) -> dict[str, Any]:
        mods = self.state.get("_modules")
        return dict(mods) if isinstance(mods, dict) else {}

    def child(self, *path: str) -> PersistentObject | None:
        node: Any = self
        for name in path:
            node = node.children().get(name) if isinstance(node, PersistentObject) else None
        return node if isinstance(node, PersistentObject) else None

    def init_kwargs(self) -> dict[str, Any]:
        kw = _plain(self.state.get("_init_kwargs") or {})
        return kw if isinstance(kw, dict) else {}

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state dict: parameters and buffers of this object and its sub-modules, by dotted name."""
        out: dict[str, torch.Tensor] = {}
        for kind in ("_parameters", "_buffers"):
            group = self.state.get(kind)
            for k, v in (group.items() if isinstance(group, dict) else ()):
                if isinstance(v, torch.Tensor):
                    out[prefix + str(k)] = v.detach().clone()
        for name, child in self.children().items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access): data only."""

    def __setstate__(self, state: Any) -> None:
        if state is not None and not isinstance(state, dict):
            raise _Refused("an EasyDict with a state that is not a dict")
        self.update(state or {})  # EasyDict keeps attributes as items


def _plain(x: Any, depth: int = 0) -> Any:
    """Containers, numbers and strings as plain JSON-able Python; numpy values as Python values."""
    if depth > _MAX_DEPTH:
        raise DataError("not supported: absurdly nested data in the pickle (a damaged or crafted file); nothing in it was run")
    if isinstance(x, dict):
        return {str(k): _plain(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, depth + 1) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, _NumpyDType):
        return str(x.dtype)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return f"<{type(x).__name__}>"


def _check_tree(net: PersistentObject, name: str) -> None:
    """Refuse a network whose sub-modules loop back on themselves or nest absurdly deep (a crafted file):
    everything after walks the tree recursively."""
    seen: set[int] = set()
    todo = [(net, 0)]
    while todo:
        node, depth = todo.pop()
        if id(node) in seen or depth > _MAX_DEPTH:
            raise DataError(f"not supported: {name}'s sub-networks loop or nest absurdly deep (a damaged or crafted file)")
        seen.add(id(node))
        todo.extend((c, depth + 1) for c in node.children().values() if isinstance(c, PersistentObject))


# ---- numpy values, rebuilt by ganforge from their bytes -----------------------------------------------
class _NumpyDType:
    """`numpy.dtype(code, align, copy)` as pickled: a numeric dtype by its code. Its pickled state may only
    set the byte order; structured, object and string dtypes are refused."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or code not in _NUMPY_CODES:
            raise _Refused(f"a numpy dtype {str(code)[:20]!r} (only numeric dtypes are read)")
        if align not in (0, 1) or copy not in (0, 1):  # False/True, or 0/1 as numpy 1 writes them
            raise _Refused("a numpy dtype with odd arguments")
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        # numpy writes (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or state[1] not in ("<", ">", "|", "="):
            raise _Refused("a numpy dtype with an odd state")
        if any(s is not None for s in state[2:5]):
            raise _Refused("a structured numpy dtype (only numeric dtypes are read)")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_dtype(x: Any) -> np.dtype:
    if not isinstance(x, _NumpyDType) or not isinstance(getattr(x, "dtype", None), np.dtype):
        raise _Refused("a numpy value whose dtype is not a numeric numpy dtype")
    return x.dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    """`numpy.core.multiarray.scalar(dtype, bytes)`: one number from its bytes."""
    dt = _numpy_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise _Refused(f"a numpy {dt} scalar without its {dt.itemsize} bytes")
    if dt.kind == "b" and data not in (b"\x00", b"\x01"):
        raise _Refused("a numpy bool that is neither 0 nor 1")
    return np.frombuffer(data, dtype=dt)[0]


def _check_array(shape: Any, dt: np.dtype, data: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise _Refused("a numpy array with an odd shape")
    if len(shape) > 32 or not isinstance(data, (bytes, bytearray)) or len(data) != math.prod(shape) * dt.itemsize:
        raise _Refused(f"a numpy array whose bytes do not fit its shape {shape[:8]} and dtype {dt}")
    if dt.kind == "b" and data.strip(b"\x00\x01"):
        raise _Refused("a numpy bool array with values other than 0 and 1")
    return shape


class _NumpyArray(np.ndarray):
    """A numpy array rebuilt from its pickled (shape, numeric dtype, bytes), checked before numpy sees them."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1 or not isinstance(state[3], bool):
            raise _Refused("a numpy array with an odd state")
        dt = _numpy_dtype(state[2])
        shape = _check_array(state[1], dt, state[4])
        super().__setstate__((1, shape, dt, state[3], bytes(state[4])))


class _NumpyArrayType:
    """What `numpy.ndarray` stands for in a pickle: only the first argument of `_reconstruct`, never built."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise _Refused("numpy.ndarray called directly (numpy pickles arrays through _reconstruct)")


def _numpy_reconstruct(cls: Any, shape: Any, typecode: Any) -> _NumpyArray:
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`: the empty array a pickled array starts as."""
    if cls is not _NumpyArrayType or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused("numpy's array reconstructor with odd arguments")
    return np.ndarray.__new__(_NumpyArray, (0,), np.uint8)


def _numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """`numpy.core.numeric._frombuffer` (arrays pickled with protocol 5): an array from its bytes."""
    dt = _numpy_dtype(dtype)
    shape = _check_array(tuple(shape) if isinstance(shape, list) else shape, dt, buf)
    if order not in ("C", "F"):
        raise _Refused("a numpy array with an odd memory order")
    return np.frombuffer(bytes(buf), dtype=dt).reshape(shape, order=order).copy()


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {("numpy", "dtype"): _NumpyDType, ("numpy", "ndarray"): _NumpyArrayType}
for _core in _NUMPY_CORE:
    _NUMPY_GLOBALS[(f"{_core}.multiarray", "scalar")] = _numpy_scalar
    _NUMPY_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _numpy_reconstruct
    _NUMPY_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _numpy_frombuffer


def _load_storage_bytes(b: Any) -> Any:
    """`torch.storage._load_from_bytes`: a storage saved with torch.save, loaded with weights_only."""
    refused = _StorageRefused("a storage ganforge cannot read safely")
    if not isinstance(b, bytes):
        raise refused
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")
    except Exception:  # torch's refusal (a long note suggesting weights_only=False), a damaged blob, a huge size
        raise refused from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise refused
    return storage


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
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):  # protocol <= 3 pickles sets so
            return set if name == "set" else frozenset
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        if (module, name) in _TORCH_REBUILD or (module == "torch" and name in _STORAGES):
            return getattr(__import__(module, fromlist=[name]), name)
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"disallowed global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:  # torch.save's zip format; NVlabs pickles do not use it
        raise pickle.UnpicklingError("persistent ids (a torch.save file, not an NVlabs network pickle)")


# ---- declared sizes, checked before anything is read ----------------------------------------------------
_COUNT_BYTES = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def check_declared_sizes(f: BinaryIO, size: int) -> None:
    """Walk the opcodes of the pickle in `f` (`size` bytes) without building anything, seeking over byte
    strings, and raise `_Damaged` when a declared length (bytes, strings, big integers, frames) runs past
    the end of the file or a memo index is out of sequence: pickle allocates those sizes before reading,
    so a 14-byte file could otherwise ask for a terabyte. Leaves `f` where it started."""
    start = f.tell()
    memo = 0
    try:
        while True:
            pos = f.tell()
            code = f.read(1)
            if not code:
                raise _Damaged("it ends before its STOP opcode (truncated)")
            op = pickletools.code2op.get(code.decode("latin-1"))
            if op is None:
                raise _Damaged(f"unknown pickle opcode {code!r} at byte {pos}")
            arg = op.arg
            if op.name == "MEMOIZE":
                memo += 1
            if op.name == "STOP":
                break
            if arg is None:
                continue
            if arg.n == pickletools.UP_TO_NEWLINE:
                lines = [f.readline(_LINE_LIMIT) for _ in range(2 if op.name in ("GLOBAL", "INST") else 1)]
                if not all(line.endswith(b"\n") for line in lines):
                    raise _Damaged(f"an overlong or unterminated {op.name} argument at byte {pos}")
                value = lines[0]
            elif arg.n >= 0:
                raw = f.read(arg.n)
                if len(raw) != arg.n:
                    raise _Damaged("it ends in the middle of an opcode (truncated)")
                value = int.from_bytes(raw, "little")
                if op.name == "FRAME" and value > size - f.tell():
                    raise _Damaged(f"a frame at byte {pos} declares {value} bytes, more than the file holds")
            else:
                width, signed = _COUNT_BYTES[arg.n]
                raw = f.read(width)
                if len(raw) != width:
                    raise _Damaged("it ends in the middle of an opcode (truncated)")
                n = int.from_bytes(raw, "little", signed=signed)
                left = size - f.tell()
                if n < 0 or n > left:
                    raise _Damaged(
                        f"its {op.name} at byte {pos} declares {n} bytes but only {max(left, 0)} follow"
                    )
                f.seek(n, io.SEEK_CUR)
                continue
            if op.name in _MEMO_PUTS:
                index = int(value) if op.name == "PUT" else value
                if index > memo:  # picklers number memo entries 0, 1, 2, ...; a huge index would size the memo
                    raise _Damaged(f"a memo index {index} out of sequence at byte {pos}")
                memo += 1
    except ValueError as exc:
        raise _Damaged(f"a malformed opcode argument ({str(exc)[:80]})") from None
    finally:
        f.seek(start)


def load_pickle(path: str | Path) -> Any:
    """The pickle's top-level object with persistent objects as `PersistentObject`s. Raises DataError
    naming the refused global when the file holds anything but network data."""
    path = Path(path)
    how = "nothing in it was run"
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            check_declared_sizes(f, size)
            return _Unpickler(f).load()
    except _StorageRefused:
        raise DataError(f"{path.name} holds a storage ganforge cannot read safely; {how}") from None
    except _Damaged as exc:
        raise DataError(f"{path.name} is damaged or not a pickle: {exc}; {how}; download it again") from None
    except _Refused as exc:
        raise DataError(f"{path.name} is not an NVlabs network pickle ganforge can read safely: {exc}; {how}") from None
    except pickle.UnpicklingError as exc:
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path.name} is not an NVlabs network pickle ganforge can read safely: {msg}; {how}"
        ) from None
    except (MemoryError, RecursionError) as exc:
        raise DataError(
            f"{path.name} is not an NVlabs network pickle ganforge can read: it asks for too much "
            f"({type(exc).__name__}); {how}"
        ) from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError) as exc:
        msg = (str(exc).splitlines() or [""])[0][:200]
        raise DataError(f"cannot read {path} as a network pickle ({type(exc).__name__}: {msg})") from None


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
    for k, net in nets.items():
        if net is not None:
            _check_tree(net, k)
    # training_set_kwargs and the like as plain values; augment_pipe (a persistent AugmentPipe) by class name
    extra = {str(k): f"<{v.class_name}>" if isinstance(v, PersistentObject) else _plain(v) for k, v in data.items() if k not in nets}
    return NVNetworks(**nets, extra=extra)


_SUPPORTED = "ganforge imports StyleGAN2 and StyleGAN2-ADA generators (stylegan2-ada-pytorch, or stylegan3's --cfg=stylegan2)"
_G_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


def _blocks(net: PersistentObject | None, prefix: str) -> list[PersistentObject]:
    if net is None:
        return []
    return [c for n, c in net.children().items() if n.startswith(prefix) and isinstance(c, PersistentObject)]


def _clamp_in_state(blocks: list[PersistentObject], layers: tuple[str, ...]) -> tuple[bool, Any]:
    """(found, conv_clamp) as the networks' layers hold it (NVlabs stores it on each layer)."""
    for b in blocks:
        for name in layers:
            layer = b.child(name)
            if layer is not None and "conv_clamp" in layer.state:
                return True, _plain(layer.state["conv_clamp"])
    return False, None


def _fp16_in_state(blocks: list[PersistentObject]) -> int | None:
    """How many blocks compute in fp16, as the blocks' `use_fp16` says (the reference's num_fp16_res,
    counted as it takes effect)."""
    flags = [b.state.get("use_fp16") for b in blocks]
    if not flags or any(f is None for f in flags):
        return None
    return sum(bool(_plain(f)) for f in flags)


def architecture(nets: NVNetworks) -> dict[str, Any]:
    """ganforge stylegan2 settings and data spec read from the networks' constructor arguments and state,
    or a DataError "not supported: <architecture>"."""
    g = nets.G_ema or nets.G
    assert g is not None
    if g.class_name != "Generator":
        raise DataError(f"not supported: a network of class {g.class_name}; {_SUPPORTED}")
    syn = g.child("synthesis")
    if syn is not None and (
        "input" in syn.children() or syn.class_name != "SynthesisNetwork"
        or any(isinstance(c, PersistentObject) and c.class_name in ("SynthesisInput", "SynthesisLayer") for c in syn.children().values())
    ):
        raise DataError(f"not supported: a StyleGAN3 (alias-free, --cfg=stylegan3-t/-r) generator; {_SUPPORTED}")
    kw = g.init_kwargs()
    need = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    if not all(k in kw for k in need):
        raise DataError(f"not supported: a Generator without its constructor arguments {need} (an older pickle format); {_SUPPORTED}")
    mk = kw.get("mapping_kwargs") or {}
    if "synthesis_kwargs" in kw:  # stylegan2-ada-pytorch: Generator(..., synthesis_kwargs={...})
        sk = kw.get("synthesis_kwargs") or {}
        default_fp16, default_clamp = 0, None
    else:  # stylegan3's networks_stylegan2: Generator(..., **synthesis_kwargs), whose defaults differ
        sk = {k: v for k, v in kw.items() if k not in _G_TOP}
        default_fp16, default_clamp = 4, 256
    if not isinstance(mk, dict) or not isinstance(sk, dict):
        raise DataError("not supported: a Generator whose mapping/synthesis arguments are not dicts")
    g_blocks = _blocks(syn, "b")
    arch = sk.get("architecture", g_blocks[0].state.get("architecture", "skip") if g_blocks else "skip")
    if arch != "skip":
        raise DataError(f"not supported: generator architecture '{arch}' (ganforge's stylegan2 G uses 'skip', as every published network does)")
    for key in ("embed_features", "layer_features"):
        if mk.get(key) not in (None, kw["w_dim"]):
            raise DataError(f"not supported: mapping network with {key}={mk[key]}")
    found, clamp = _clamp_in_state(g_blocks, ("conv1", "conv0", "torgb"))
    if not found:
        clamp = sk.get("conv_clamp", default_clamp)
    fp16 = _fp16_in_state(g_blocks)
    if fp16 is None:
        fp16 = int(sk.get("num_fp16_res", default_fp16) or 0)
    fam: dict[str, Any] = {
        "cfg": "auto", "z_dim": int(kw["z_dim"]), "w_dim": int(kw["w_dim"]), "map_layers": int(mk.get("num_layers", 8)),
        "channel_base": int(sk.get("channel_base", 32768)), "channel_max": int(sk.get("channel_max", 512)),
        "num_fp16_res": fp16, "conv_clamp": float(clamp or 0.0),
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


# Attributes NVlabs' layers and ganforge's share: equal values mean ganforge computes what the pickle's code did
# (lr multipliers, activations, gains, clamps, resampling). Anything the kwargs above did not carry shows here.
_SAME_ATTRS = (
    "weight_gain", "bias_gain", "act_gain", "activation", "conv_clamp", "up", "down", "padding", "architecture",
    "use_noise", "num_ws", "z_dim", "c_dim", "w_dim", "in_channels", "out_channels", "resolution", "img_channels",
    "is_last", "num_conv", "num_torgb", "use_fp16", "num_channels", "cmap_dim", "first_layer_idx",
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _check_same(src: PersistentObject, module: torch.nn.Module, path: str) -> None:
    for attr in _SAME_ATTRS:
        if attr in src.state and hasattr(module, attr) and not isinstance(getattr(module, attr), (torch.Tensor, torch.nn.Module)):
            theirs, ours = _plain(src.state[attr]), getattr(module, attr)
            if not _same(theirs, ours):
                raise DataError(
                    f"not supported: {path}.{attr} is {theirs!r} in the pickle but {ours!r} in ganforge's stylegan2 "
                    f"(a network built with options ganforge does not have); {_SUPPORTED}"
                )
    for name, child in src.children().items():
        sub = getattr(module, name, None)
        if isinstance(child, PersistentObject) and isinstance(sub, torch.nn.Module):
            _check_same(child, sub, f"{path}.{name}")


def _family_state(family: Any, nets: Any) -> dict[str, Any]:
    """The family's run state (`Family.state_dict` of the built networks)."""
    return family.state_dict(nets)


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
        _check_same(src, nets[name], name)
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
    ckpt.save_checkpoint(run_dir / "checkpoints", 0, nets, {}, meta, _family_state(family, nets))
    return run_dir


def read_pretrained(source: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """The reader `train --resume-from x.pkl` uses (registered in `ganforge.registry`): the stylegan2 settings of
    the pickle's architecture and its networks' weights {G, G_ema, D: state dict}."""
    nv = read_networks(source)
    arch = architecture(nv)  # refuses what the family cannot run
    state = {k: v.tensors() for k, v in (("G", nv.G or nv.G_ema), ("G_ema", nv.G_ema or nv.G), ("D", nv.D)) if v is not None}
    return arch["family"], state


def pretrained_state(source: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Network weights to start a run from (`train --resume-from`): an NVlabs pickle (G, G_ema, D) or a
    ganforge run folder (its latest checkpoint), as {network: state dict}."""
    from .. import checkpoint as ckpt
    from ..locate import find_run

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
