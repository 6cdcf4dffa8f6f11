"""Importing NVlabs StyleGAN2-ADA network pickles as data.

How the layout was established: NVlabs' stylegan2-ada-pytorch pickles each network as
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type: "class", version: 6,
module_src, class_name, state}, state being the torch module's whole `__dict__` (`_parameters`,
`_buffers`, `_modules`, `_init_kwargs` with `dnnlib.util.EasyDict` values, hook dicts, a `set`, and plain
attributes), and the snapshot as a dict {training_set_kwargs, G, D, G_ema, augment_pipe} (read from its
public torch_utils/persistence.py and training/training_loop.py). The stylegan3 repository writes its
`--cfg=stylegan2` networks (module `training.networks_stylegan2`: same class and parameter names, only
`module_src` differs in the meta) with the synthesis arguments at the top level of `_init_kwargs` and
other defaults (num_fp16_res 4, conv_clamp 256).

The quirks of real files are built here deliberately, because pickles made from ganforge's own modules
alone hold Python floats and ganforge would pass its tests while refusing every real file:
- numpy float64 scalars in module state (NVlabs' `weight_gain = lr_multiplier / np.sqrt(in_features)`,
  `act_gain`), pickled by real numpy so the stream holds `<numpy core>.multiarray.scalar` and `numpy.dtype`,
  in both spellings: `numpy.core` (numpy 1, NVlabs' published files) and `numpy._core` (numpy 2);
- `training_set_kwargs` (a plain dict) and `augment_pipe` (a persistent `AugmentPipe` with buffers and
  float attributes) entries; protocol 3 (Python 3.7, sets as `builtins.set`) as well as 4;
- the stylegan3 repository's layout, and its alias-free generators (numpy arrays and numpy bools in state),
  which are refused with one line saying what is supported;
- hostile files: payload globals, numpy globals other than the few allowed, object dtypes, a storage
  blob torch refuses, and a 14-byte file declaring 2**40 bytes.

ganforge's `nn/stylegan2.py` was compared with NVlabs' own code out of tree (stylegan2-ada-pytorch and
stylegan3 at their latest public commits, run from a scratch directory, never copied here): tiny random
networks (64 px unconditional with num_fp16_res 4 / conv_clamp 256, 32 px conditional with c_dim 3, and the
stylegan3 repository's stylegan2 networks with its default and --fp32 settings) were pickled by NVlabs'
training-loop code, imported with `ganforge import`, and G_ema's outputs for seeds 0-3 at psi 1.0 and 0.7
(noise_mode 'const') and D's outputs compared: max |diff| 0.0 in fp32 on the CPU for every network
(stylegan2-ada-pytorch itself computes its fp16 blocks in fp16 even on a CPU, 0.009 away from both; with
its force_fp32=True the difference is 0.0).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import DataError
from ganforge.interop.nvlabs import pretrained_state, read_networks
from ganforge.nn.stylegan2 import Discriminator, Generator
from ganforge.sample.model import Model

RES, Z, C = 16, 16, 3
SYN_KW = {"channel_base": 64, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": None}
G_KW = {"z_dim": Z, "c_dim": C, "w_dim": Z, "img_resolution": RES, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": SYN_KW}
D_KW = {"c_dim": C, "img_resolution": RES, "img_channels": 3, "architecture": "resnet", "channel_base": 64, "channel_max": 16,
        "block_kwargs": {}, "mapping_kwargs": {}, "epilogue_kwargs": {"mbstd_group_size": 4}}
# The stylegan3 repository's train.py for --cfg=stylegan2 --fp32: synthesis arguments at the top level.
G_KW_SG3REPO = {"z_dim": Z, "w_dim": Z, "mapping_kwargs": {"num_layers": 2}, "channel_base": 64, "channel_max": 16,
                "fused_modconv_default": "inference_only", "num_fp16_res": 0, "conv_clamp": None,
                "c_dim": C, "img_resolution": RES, "img_channels": 3}
SRC = {"ada": "# training/networks.py of stylegan2-ada-pytorch: never run\n",
       "sg3repo": "# training/networks_stylegan2.py of stylegan3: never run\n"}
NUMPY_CORES = ("numpy.core", "numpy._core")
_NP_SCALAR = np.float64(1.0).__reduce__()[0]  # numpy's own reconstructors, whichever module this numpy keeps them in
_NP_RECONSTRUCT = np.zeros(1).__reduce__()[0]


@contextlib.contextmanager
def _fake_nvlabs_modules():
    """`torch_utils.persistence` and `dnnlib.util` as pickle sees them when NVlabs writes a snapshot."""
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called by ganforge
        raise AssertionError("ganforge must not call NVlabs' reconstructor")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    easy = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    util.EasyDict = easy
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
    try:
        yield _reconstruct_persistent_obj, easy
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _NVPickler(pickle._Pickler):
    """The standard pickler, spelling numpy's reconstructors as numpy 1 (`numpy.core.multiarray`) or numpy 2
    (`numpy._core.multiarray`) writes them, whichever numpy runs the tests."""

    def __init__(self, file, protocol: int, numpy_core: str) -> None:
        super().__init__(file, protocol)
        self.respell = {id(_NP_SCALAR): f"{numpy_core}.multiarray", id(_NP_RECONSTRUCT): f"{numpy_core}.multiarray"}

    def save_global(self, obj, name=None):
        module = self.respell.get(id(obj))
        if module is None:
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save(module)
            self.save(obj.__name__)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{obj.__name__}\n".encode())
        self.memoize(obj)


def _dumps(obj, *, numpy_core: str = "numpy.core", protocol: int = 4) -> bytes:
    buf = io.BytesIO()
    _NVPickler(buf, protocol, numpy_core).dump(obj)
    return buf.getvalue()


class _Persistent:
    """Pickles a torch module the way torch_utils.persistence does: its whole `__dict__` as state, the
    sub-modules persistent too, with NVlabs' numpy float64 gains."""

    def __init__(self, module, kwargs, rebuild, easy, src, extra_state=None, class_name=None):
        self.module, self.kwargs, self.rebuild, self.easy, self.src = module, kwargs, rebuild, easy, src
        self.extra_state, self.class_name = extra_state or {}, class_name

    def __reduce__(self):
        m = self.module
        state = {}
        for k, v in vars(m).items():
            if k == "_modules":
                v = OrderedDict((n, _Persistent(c, {}, self.rebuild, self.easy, self.src, self.extra_state))
                                for n, c in v.items() if c is not None)
            elif k in ("weight_gain", "act_gain") and isinstance(v, float):
                v = np.float64(v)  # NVlabs: lr_multiplier / np.sqrt(in_features), np.sqrt(2)
            state[k] = v
        state.update(self.extra_state.get(type(m).__name__, {}))
        state["_init_args"] = ()
        state["_init_kwargs"] = self.easy({k: self.easy(v) if isinstance(v, dict) else v for k, v in self.kwargs.items()})
        meta = {"type": "class", "version": 6, "module_src": self.src, "class_name": self.class_name or type(m).__name__,
                "state": state}
        return (self.rebuild, (meta,))


class AugmentPipe(torch.nn.Module):
    """What NVlabs' AugmentPipe holds in a snapshot: buffers (`p` the ADA probability, filters), floats, a list."""

    def __init__(self):
        super().__init__()
        self.register_buffer("p", torch.tensor(0.37))
        self.register_buffer("Hz_geom", torch.randn(12))
        self.register_buffer("Hz_fbank", torch.randn(4, 19))
        self.xflip = self.rotate90 = self.xint = self.scale = self.brightness = 1.0
        self.xint_max, self.scale_std, self.rotate_max = 0.125, 0.2, 1.0
        self.imgfilter_bands = [1, 1, 1, 1]


TRAINING_SET_KWARGS = {"class_name": "training.dataset.ImageFolderDataset", "path": "/data/ffhq16.zip", "use_labels": True,
                       "max_size": 70000, "xflip": False, "resolution": RES, "random_seed": 0}


def write_snapshot(path: Path, *, src: str | None = None, extra: dict | None = None, with_d: bool = True,
                   layout: str = "ada", numpy_core: str = "numpy.core", protocol: int = 4, g_kwargs: dict | None = None):
    """A snapshot as NVlabs' training loop writes it (layout "ada": stylegan2-ada-pytorch; "sg3repo": the
    stylegan3 repository's --cfg=stylegan2). Returns the generator."""
    torch.manual_seed(0)
    G = Generator(**G_KW).eval()
    with torch.no_grad():  # a non-zero tracked mean w, so truncation is exercised
        G.mapping.w_avg.copy_(torch.randn(Z) * 0.3)
    D = Discriminator(**{k: v for k, v in D_KW.items() if k not in ("block_kwargs", "mapping_kwargs")})
    g_kw = g_kwargs or (G_KW_SG3REPO if layout == "sg3repo" else G_KW)
    extra_state = {"SynthesisBlock": {"fused_modconv_default": "inference_only"}} if layout == "sg3repo" else {}
    src = SRC[layout] if src is None else src
    with _fake_nvlabs_modules() as (rebuild, easy):
        def persistent(m, kw):
            return _Persistent(m, kw, rebuild, easy, src, extra_state)

        snap = {"training_set_kwargs": dict(TRAINING_SET_KWARGS), "G": persistent(G, g_kw)}
        if with_d:
            snap["D"] = persistent(D, D_KW)
        snap["G_ema"] = persistent(G, g_kw)
        snap["augment_pipe"] = _Persistent(AugmentPipe(), {"xflip": 1, "rotate90": 1, "xint": 1, "scale": 1, "brightness": 1},
                                           rebuild, easy, "# training/augment.py: never run\n")
        snap.update(extra or {})
        path.write_bytes(_dumps(snap, numpy_core=numpy_core, protocol=protocol))
    return G


def _globals_in(data: bytes) -> set[str]:
    """The globals a pickle names: GLOBAL's argument, or the two strings (pushed or fetched from the memo)
    before a STACK_GLOBAL."""
    import pickletools

    out, strings, memo, last = set(), [], [], None
    for op, arg, _ in pickletools.genops(data):
        top = None
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            top = arg
        elif op.name in ("BINGET", "LONG_BINGET") and arg < len(memo):
            top = memo[arg]
        elif op.name == "MEMOIZE":
            memo.append(last)
            continue
        elif op.name == "STACK_GLOBAL":
            out.add(f"{strings[-2]}.{strings[-1]}")
        elif op.name == "GLOBAL":
            out.add(arg.replace(" ", "."))
        if isinstance(top, str):
            strings.append(top)
        last = top
    return out


def _one_line_refusal(r):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output


@pytest.mark.parametrize(
    "layout,numpy_core,protocol",
    [("ada", "numpy.core", 4), ("ada", "numpy._core", 4), ("sg3repo", "numpy._core", 4), ("ada", "numpy.core", 3)],
)
def test_import_gives_the_same_images_as_the_network(tmp_path, layout, numpy_core, protocol):
    pkl = tmp_path / "network-snapshot-000100.pkl"
    G = write_snapshot(pkl, layout=layout, numpy_core=numpy_core, protocol=protocol)
    names = _globals_in(pkl.read_bytes()) if protocol >= 4 else set()
    if protocol >= 4:  # the real files' numpy globals are there, spelled as asked
        assert {f"{numpy_core}.multiarray.scalar", "numpy.dtype"} <= names, names
    else:
        assert f"{numpy_core}.multiarray\nscalar".encode() in pkl.read_bytes() and b"builtins\nset" in pkl.read_bytes()
    r = CliRunner().invoke(main, ["import", str(pkl), "--run", "nv", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    model = Model.load(tmp_path / "runs" / "nv")
    assert (model.spec.resolution, model.spec.num_classes, model.latent_shape) == (RES, C, (Z,))
    z = torch.randn(5, Z, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1])
    for psi in (1.0, 0.7):
        ours = model.sample_latents(z, labels, trunc=psi, noise_mode="const")
        with torch.no_grad():
            ref = G(z, torch.nn.functional.one_hot(labels, C).float(), truncation_psi=psi, noise_mode="const").clamp(-1, 1)
        assert (ours - ref).abs().max() < 1e-4
    full = Model.load(tmp_path / "runs" / "nv", nets="all")
    assert set(full.nets) == {"G", "G_ema", "D"}
    assert full.config.family["num_fp16_res"] == 0 and full.config.family["conv_clamp"] == 0.0
    extra = full.meta["imported_from"]["extra"]
    assert extra["training_set_kwargs"] == TRAINING_SET_KWARGS and extra["augment_pipe"] == "<AugmentPipe>"


def test_read_networks_keeps_nvlabs_state_as_data(tmp_path):
    pkl = tmp_path / "net.pkl"
    write_snapshot(pkl, numpy_core="numpy.core")
    nv = read_networks(pkl)
    fc = nv.G_ema.child("mapping", "fc0")
    assert isinstance(fc.state["weight_gain"], np.float64) and math.isclose(fc.state["weight_gain"], 0.01 / math.sqrt(2 * Z))
    assert nv.G_ema.init_kwargs()["synthesis_kwargs"] == SYN_KW
    assert nv.G_ema.module_src == SRC["ada"]  # kept as an inert string


def test_stylegan3_repo_defaults_come_from_the_networks_state(tmp_path):
    """The stylegan3 repository's train.py leaves num_fp16_res and conv_clamp out of G's arguments unless
    --fp32, and its networks_stylegan2 defaults them to 4 and 256: the layers' state says what was used."""
    pkl = tmp_path / "sg3repo.pkl"
    kw = {k: v for k, v in G_KW_SG3REPO.items() if k not in ("num_fp16_res", "conv_clamp")}
    write_snapshot(pkl, layout="sg3repo", g_kwargs=kw)
    r = CliRunner().invoke(main, ["import", str(pkl), "--run", "nv", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    fam = Model.load(tmp_path / "runs" / "nv").config.family
    assert fam["num_fp16_res"] == 0 and fam["conv_clamp"] == 0.0  # the layers hold no clamp and fp32 blocks


def test_options_ganforge_does_not_have_are_refused(tmp_path, monkeypatch):
    """A network built with an option the constructor arguments do not carry to ganforge (here the mapping
    network's learning-rate multiplier) would give other images: the layers' gains show it."""
    pkl = tmp_path / "lr.pkl"
    write_snapshot(pkl)
    nv = read_networks(pkl)
    fc = nv.G_ema.child("mapping", "fc1")
    fc.state["weight_gain"] = np.float64(fc.state["weight_gain"] * 10)
    from ganforge.interop import nvlabs

    monkeypatch.setattr(nvlabs, "read_networks", lambda p: nv)
    with pytest.raises(DataError, match=r"G_ema\.mapping\.fc1\.weight_gain .* in the pickle but .* in ganforge's stylegan2"):
        nvlabs.import_network(pkl, tmp_path / "runs" / "lr")


def _write_stylegan3(path: Path, *, numpy_core: str, protocol: int) -> None:
    """An alias-free generator as the stylegan3 repository pickles it: synthesis = input + L0..L<n> layers,
    with numpy arrays (sizes), numpy floats (cutoffs) and numpy bools (use_fp16) in their state."""

    def module(name, **children):
        m = type(name, (torch.nn.Module,), {})()
        for k, v in children.items():
            setattr(m, k, v)
        return m

    inp = module("SynthesisInput")
    inp.register_buffer("freqs", torch.randn(16, 2))
    inp.size, inp.sampling_rate, inp.bandwidth = np.broadcast_to(np.asarray(36), [2]), np.float64(16.0), np.float64(2.0)
    layers = {}
    for i in range(3):
        lay = module("SynthesisLayer", affine=module("FullyConnectedLayer"))
        lay.weight = torch.nn.Parameter(torch.randn(8, 8, 3, 3))
        lay.in_size, lay.out_size = np.broadcast_to(np.asarray(36), [2]), np.broadcast_to(np.asarray(36), [2])
        lay.use_fp16, lay.in_cutoff = np.bool_(i > 1), np.float64(2.0 * (i + 1))
        layers[f"L{i}_36_8"] = lay
    syn = module("SynthesisNetwork", input=inp, **layers)
    G = module("Generator", synthesis=syn, mapping=module("MappingNetwork", fc0=module("FullyConnectedLayer")))
    kw = {"z_dim": Z, "w_dim": Z, "mapping_kwargs": {"num_layers": 2}, "channel_base": 512, "channel_max": 16,
          "magnitude_ema_beta": 0.999, "c_dim": 0, "img_resolution": RES, "img_channels": 3}
    with _fake_nvlabs_modules() as (rebuild, easy):
        g = _Persistent(G, kw, rebuild, easy, "# training/networks_stylegan3.py: never run\n")
        snap = {"G": g, "G_ema": g, "augment_pipe": None, "training_set_kwargs": dict(TRAINING_SET_KWARGS)}
        path.write_bytes(_dumps(snap, numpy_core=numpy_core, protocol=protocol))


@pytest.mark.parametrize("numpy_core,protocol", [("numpy.core", 4), ("numpy._core", 4), ("numpy._core", 5)])
def test_stylegan3_generators_are_refused_with_one_line(tmp_path, numpy_core, protocol):
    pkl = tmp_path / "stylegan3-t.pkl"
    _write_stylegan3(pkl, numpy_core=numpy_core, protocol=protocol)
    if protocol == 4:
        assert f"{numpy_core}.multiarray._reconstruct" in _globals_in(pkl.read_bytes())
    nv = read_networks(pkl)  # numpy arrays in state are read, as data
    arr = nv.G_ema.child("synthesis", "input").state["size"]
    assert isinstance(arr, np.ndarray) and arr.tolist() == [36, 36] and arr.dtype == np.int64
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(r)
    assert "StyleGAN3" in r.output and "ganforge imports StyleGAN2 and StyleGAN2-ADA generators" in r.output
    with pytest.raises(DataError, match="StyleGAN3"):
        pretrained_state(pkl)


class _Call:
    """Unpickling this calls `func(*args)` (pickle's classic __reduce__ exploit)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_payloads_never_run(tmp_path):
    marker = tmp_path / "PWNED"
    pkl = tmp_path / "evil.pkl"
    write_snapshot(pkl, extra={"bonus": _Call(os.system, f"touch {marker}")})
    with pytest.raises(DataError, match=r"disallowed global (posix|os|nt)\.system"):
        read_networks(pkl)
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(r)
    assert "disallowed global" in r.output
    # Embedded module source with side effects is data, never compiled or run, in either repository's layout.
    for layout in ("ada", "sg3repo"):
        pkl2 = tmp_path / f"src-{layout}.pkl"
        write_snapshot(pkl2, src=f"open({str(marker)!r}, 'w').close()\n", layout=layout)
        r = CliRunner().invoke(main, ["import", str(pkl2), "--run", layout, "--runs-dir", str(tmp_path / "runs")])
        assert r.exit_code == 0, r.output
    assert not marker.exists(), "a payload ran"


_HOSTILE = [
    ("builtins.eval", b"cbuiltins\neval\n(VMARK\ntR.", r"disallowed global builtins\.eval"),
    ("numpy.load", b"cnumpy\nload\n(VMARK\ntR.", r"disallowed global numpy\.load"),
    ("numpy.testing", b"cnumpy.testing._private.utils\nrunstring\n(VMARK\n(dtR.", r"disallowed global numpy\.testing"),
    ("reconstruct-payload-class", b"cnumpy.core.multiarray\n_reconstruct\n(cposix\nsystem\n(I0\ntVb\ntR.",
     r"disallowed global posix\.system"),
    ("reconstruct-other-class", b"cnumpy.core.multiarray\n_reconstruct\n(ccollections\nOrderedDict\n(I0\ntVb\ntR.",
     r"array reconstructor"),
    ("object-dtype", b"cnumpy\ndtype\n(VO8\nI0\nI1\ntR.", r"numpy dtype 'O8'"),
    ("structured-dtype", b"cnumpy\ndtype\n(Vf8\nI0\nI1\ntR(I3\nV<\nN(Va\nt(dI-1\nI-1\nI0\ntb.", r"structured numpy dtype"),
    ("object-scalar", b"cnumpy._core.multiarray\nscalar\n(cnumpy\ndtype\n(VO\nI0\nI1\ntR(VMARK\nttR.", r"numpy dtype 'O'"),
    ("scalar-wrong-size",
     b"cnumpy.core.multiarray\nscalar\n(cnumpy\ndtype\n(Vf8\nI0\nI1\ntR(I3\nV<\nNNNI-1\nI-1\nI0\ntbC\x04abcdtR.",
     r"scalar without its 8 bytes"),
]


@pytest.mark.parametrize("data,refused", [pytest.param(d, r, id=n) for n, d, r in _HOSTILE])
def test_other_globals_are_refused_and_never_run(tmp_path, data, refused):
    """Hand-written pickles naming globals NVlabs' files never hold, or numpy values ganforge does not build."""
    pkl = tmp_path / "hostile.pkl"
    pkl.write_bytes(data)
    with pytest.raises(DataError, match=refused):
        read_networks(pkl)
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(r)
    assert "nothing in it was run" in r.output


def test_numpy_objects_pickled_by_numpy_are_refused(tmp_path):
    marker = tmp_path / "PWNED"
    for obj in (np.array([_Call(os.system, f"touch {marker}")], dtype=object), np.array(["text"]),
                np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])):
        pkl = tmp_path / "np.pkl"
        pkl.write_bytes(pickle.dumps({"G": obj}, protocol=4))
        with pytest.raises(DataError, match="numpy dtype|disallowed global"):
            read_networks(pkl)
    assert not marker.exists()


def test_a_storage_torch_refuses_is_one_line(tmp_path):
    """A tensor storage blob (`torch.storage._load_from_bytes`) that torch's weights-only loader refuses:
    ganforge's own line, not torch's note suggesting weights_only=False."""
    marker = tmp_path / "PWNED"
    blob = io.BytesIO()
    torch.save(_Call(os.system, f"touch {marker}"), blob)
    pkl = tmp_path / "storage.pkl"
    pkl.write_bytes(pickle.dumps({"G": _Call(torch.storage._load_from_bytes, blob.getvalue())}, protocol=4))
    with pytest.raises(DataError, match=r"^storage\.pkl holds a storage ganforge cannot read safely; nothing in it was run$"):
        read_networks(pkl)
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(r)
    assert "weights_only" not in r.output and not marker.exists()


TB = (2**40).to_bytes(8, "little")


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04\x8d" + TB + b"xy.",  # BINUNICODE8 declaring 2**40 bytes: 14 bytes in all
        b"\x80\x04\x8e" + TB + b"xy.",  # BINBYTES8
        b"\x80\x05\x96" + TB + b"xy.",  # BYTEARRAY8
        b"\x80\x04\x95" + TB + b"xy.",  # a FRAME of 2**40 bytes
        b"\x80\x02\x8b\xff\xff\xff\x7f.",  # LONG4 of 2 GiB
        b"\x80\x02Nr\xff\xff\xff\x7f.",  # LONG_BINPUT: a memo index of 2**31 would size the memo at 32 GiB
    ],
    ids=["BINUNICODE8", "BINBYTES8", "BYTEARRAY8", "FRAME", "LONG4", "LONG_BINPUT"],
)
def test_declared_sizes_past_the_end_are_refused_before_reading(tmp_path, data):
    pkl = tmp_path / "huge.pkl"
    pkl.write_bytes(data)
    with pytest.raises(DataError, match=r"^huge\.pkl is damaged or not a pickle: .*; nothing in it was run; download it again$"):
        read_networks(pkl)
    with pytest.raises(DataError, match="damaged or not a pickle"):  # train --resume-from x.pkl
        pretrained_state(pkl)
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(r)
    assert "MemoryError" not in r.output


def test_truncated_and_garbage_files_are_one_line(tmp_path):
    good = tmp_path / "good.pkl"
    write_snapshot(good)
    data = good.read_bytes()
    for name, blob in (("cut.pkl", data[: len(data) // 2]), ("garbage.pkl", b"\xff" * 64), ("empty.pkl", b"")):
        p = tmp_path / name
        p.write_bytes(blob)
        r = CliRunner().invoke(main, ["import", str(p), "--runs-dir", str(tmp_path / "runs")])
        _one_line_refusal(r)


def test_looping_or_absurdly_nested_pickles_are_one_line(tmp_path):
    import struct

    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    # A network whose sub-module dict is filled, after the network is built, with the network itself.
    loop = (b"\x80\x02}q\x00ctorch_utils.persistence\n_reconstruct_persistent_obj\n}(" + text("class_name") + text("Generator")
            + text("state") + b"}(" + text("_modules") + b"h\x00uu\x85Rq\x01h\x00" + text("synthesis") + b"h\x01s0}"
            + text("G") + b"h\x01s.")
    deep = b"\x80\x02}" + text("G_ema") + b"ctorch_utils.persistence\n_reconstruct_persistent_obj\n}\x85Rs" + text("x") + b"]" * 500
    deep += b"a" * 499 + b"s."
    for name, data, refused in (("loop.pkl", loop, "loop or nest"), ("deep.pkl", deep, "absurdly nested")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DataError, match=refused):
            read_networks(p)
        _one_line_refusal(CliRunner().invoke(main, ["import", str(p), "--runs-dir", str(tmp_path / "runs")]))


def test_other_pickles_and_architectures_are_refused(tmp_path):
    p = tmp_path / "plain.pkl"
    p.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(DataError, match="holds no generator"):
        read_networks(p)
    t = tmp_path / "torchsave.pt"
    torch.save({"w": torch.zeros(2)}, t)
    with pytest.raises(DataError):
        read_networks(t)


def test_fine_tune_from_an_imported_network_and_resume(tmp_path, tiny_data):
    import json

    from ganforge.training.loop import train
    from helpers import tiny_config

    pkl = tmp_path / "net.pkl"
    write_snapshot(pkl)
    fam = {"z_dim": Z, "map_layers": 2, "channel_base": 64, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 0.0, "cfg": "auto"}
    cfg = tiny_config(tmp_path, tiny_data, model="stylegan2", family=fam, steps=12, resume_from=str(pkl), run="ft", batch=8)
    res = train(cfg, progress=False, stop_at=6)
    assert res.interrupted and res.step == 6
    res = train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=fam, steps=12, run="ft", batch=8), resume=True, progress=False)
    assert res.step == 12
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    d = [r["loss_D"] for r in recs if "loss_D" in r]
    assert len(d) == 12 and sum(d[-3:]) / 3 < sum(d[:3]) / 3, d
    bad = tiny_config(tmp_path, tiny_data, model="stylegan2", family=fam, steps=2, resume_from=str(pkl), run="bad", resolution=32)
    with pytest.raises(Exception, match="does not fit"):
        train(bad, progress=False)


def test_train_resume_on_an_imported_run_fine_tunes_it(tmp_path, tiny_data):
    """`ganforge import` then `ganforge train --run NAME --resume --data ...`: training starts from the
    imported weights (nothing was trained there yet); without --data, one clear line says what to give."""
    pkl = tmp_path / "net.pkl"
    write_snapshot(pkl)
    runs = str(tmp_path / "runs")
    assert CliRunner().invoke(main, ["import", str(pkl), "--run", "nv", "--runs-dir", runs]).exit_code == 0
    before = Model.load(tmp_path / "runs" / "nv", nets="all").nets["D"].state_dict()
    r = CliRunner().invoke(main, ["train", "--run", "nv", "--runs-dir", runs, "--resume", "--steps", "2", "--quiet"])
    assert r.exit_code == 2 and "no training data yet; give --data" in r.output
    r = CliRunner().invoke(
        main, ["train", "--run", "nv", "--runs-dir", runs, "--resume", "--data", str(tiny_data), "--steps", "2",
               "--batch", "8", "--quiet"]
    )
    assert r.exit_code == 0, r.output
    assert "fine-tuning the network imported from net.pkl" in r.output
    after = Model.load(tmp_path / "runs" / "nv", nets="all")
    assert after.step == 2
    d = after.nets["D"].state_dict()
    assert any(not torch.equal(before[k], d[k]) for k in before)  # trained, from the imported D
    # From now on it is an ordinary run: --resume continues it.
    r = CliRunner().invoke(main, ["train", "--run", "nv", "--runs-dir", runs, "--resume", "--steps", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    assert Model.load(tmp_path / "runs" / "nv").step == 3


@pytest.mark.network
@pytest.mark.parametrize("name", ["ffhq.pkl", "metfaces.pkl"])
def test_published_networks_import_and_generate(tmp_path, name):
    """NVlabs' published StyleGAN2-ADA networks, when downloaded: put `ffhq.pkl` and/or `metfaces.pkl`
    (https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/) in `<cache>/pretrained/`, where
    <cache> is $GANFORGE_CACHE or ~/.cache/ganforge, and run `pytest -m network tests/interop`."""
    from ganforge.metrics.weights import cache_dir

    pkl = cache_dir() / "pretrained" / name
    if not pkl.is_file():
        pytest.skip(f"{pkl} is not there (download it to run this test)")
    r = CliRunner().invoke(main, ["import", str(pkl), "--run", "pub", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    model = Model.load(tmp_path / "runs" / "pub")
    assert (model.spec.resolution, model.spec.channels, model.spec.num_classes) == (1024, 3, 0)
    for psi in (1.0, 0.7):
        x = model.generate([0, 1, 2], trunc=psi, output="tensor")
        assert x.shape == (3, 3, 1024, 1024) and torch.isfinite(x).all()
        assert 0.15 < float(x.std()) < 0.8 and abs(float(x.mean())) < 0.6
        assert float((x[0] - x[1]).abs().mean()) > 0.05  # different seeds, different faces
