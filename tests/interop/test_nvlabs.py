"""Importing NVlabs StyleGAN2-ADA network pickles as data.

How the layout was established: NVlabs' stylegan2-ada-pytorch pickles each network as
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type: "class", version: 6,
module_src, class_name, state}, state being the torch module's `__dict__` (`_parameters`, `_buffers`,
`_modules`, `_init_kwargs` as a `dnnlib.util.EasyDict`), and the snapshot as a dict {G, D, G_ema,
augment_pipe, training_set_kwargs} (read from its public torch_utils/persistence.py and
training/training_loop.py). ganforge's `nn/stylegan2.py` uses NVlabs' module names, parameter names and
shapes; its outputs were compared with NVlabs' own code on tiny networks (16-64 px, conditional and not,
conv clamp on and off, every D architecture) in a scratch directory outside this repository: max abs
difference 0.0 in fp32 on the CPU. The project cannot ship NVlabs' code, so these tests write pickles in
that layout themselves, from ganforge's modules under NVlabs' class names, with fake `torch_utils` and
`dnnlib` modules present only while pickling.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import DataError
from ganforge.nn.stylegan2 import Discriminator, Generator
from ganforge.sample.model import Model

RES, Z, C = 16, 16, 3
G_KW = {"z_dim": Z, "c_dim": C, "w_dim": Z, "img_resolution": RES, "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 64, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": None}}
D_KW = {"c_dim": C, "img_resolution": RES, "img_channels": 3, "architecture": "resnet", "channel_base": 64, "channel_max": 16,
        "epilogue_kwargs": {"mbstd_group_size": 4}}


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


class _Persistent:
    """Pickles a torch module the way torch_utils.persistence does."""

    def __init__(self, module, kwargs, rebuild, easy, src="# module source, never run\n"):
        self.module, self.kwargs, self.rebuild, self.easy, self.src = module, kwargs, rebuild, easy, src

    def __reduce__(self):
        m = self.module
        state = {
            "training": False,
            "_parameters": OrderedDict(m._parameters), "_buffers": OrderedDict(m._buffers),
            "_modules": OrderedDict((n, _Persistent(c, {}, self.rebuild, self.easy, self.src)) for n, c in m._modules.items()),
            "_init_kwargs": self.easy(self.kwargs),
        }
        meta = {"type": "class", "version": 6, "module_src": self.src, "class_name": type(m).__name__, "state": state}
        return (self.rebuild, (meta,))


def write_snapshot(path: Path, *, src: str = "# source\n", extra: dict | None = None, with_d: bool = True):
    torch.manual_seed(0)
    G = Generator(**G_KW).eval()
    with torch.no_grad():  # a non-zero tracked mean w, so truncation is exercised
        G.mapping.w_avg.copy_(torch.randn(Z) * 0.3)
    D = Discriminator(**D_KW)
    with _fake_nvlabs_modules() as (rebuild, easy):
        snap = {"G": _Persistent(G, G_KW, rebuild, easy, src), "G_ema": _Persistent(G, G_KW, rebuild, easy, src),
                "augment_pipe": None, "training_set_kwargs": easy({"resolution": RES})}
        if with_d:
            snap["D"] = _Persistent(D, D_KW, rebuild, easy, src)
        snap.update(extra or {})
        path.write_bytes(pickle.dumps(snap, protocol=4))
    return G


def test_import_gives_the_same_images_as_the_network(tmp_path):
    pkl = tmp_path / "network-snapshot-000100.pkl"
    G = write_snapshot(pkl)
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


def test_payloads_never_run(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pkl = tmp_path / "evil.pkl"
    write_snapshot(pkl, extra={"bonus": Evil()})
    from ganforge.interop.nvlabs import read_networks

    with pytest.raises(DataError, match=r"disallowed global (posix|os|nt)\.system"):
        read_networks(pkl)
    r = CliRunner().invoke(main, ["import", str(pkl), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "disallowed global" in r.output and "Traceback" not in r.output
    # Embedded module source with side effects is data, never compiled or run.
    pkl2 = tmp_path / "src.pkl"
    write_snapshot(pkl2, src=f"open({str(marker)!r}, 'w').close()\n")
    r = CliRunner().invoke(main, ["import", str(pkl2), "--run", "ok", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    assert not marker.exists(), "a payload ran"


def test_other_pickles_and_architectures_are_refused(tmp_path):
    from ganforge.interop.nvlabs import read_networks

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
