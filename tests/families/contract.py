"""The contract every family passes, as test mixins (imported by each family's test file).

- `FamilyContract`: a tiny config trains through the real loop on the CPU with finite losses; the
  run reloads (generator only, and all networks); an interrupted and resumed run ends with exactly the
  weights of an uninterrupted one.
- `NoiseFamilyContract`: the same seed gives the same sample whatever the batch, different seeds differ,
  shapes and ranges are right, labels change conditional samples, unsupported requests fail clearly.
- `ImageFamilyContract`: input -> output shapes, previews, pairs stay aligned through the dataset's
  augmentation, translation is the same after reloading the run.

A family's test file subclasses them, e.g. `class TestDCGAN(NoiseFamilyContract): model = "dcgan"`,
setting `settings` (tiny widths) and `data` (a fixture name or a built-in set).
`check_family_contract` is the function form, for parametrised one-off configurations.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
import torch

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError
from ganforge.sample.model import Model
from ganforge.training.loop import train
from helpers import tiny_config


def check_family_contract(
    tmp_path, data: str, model: str, family: dict, *, cond: bool = False, resolution=None, expect_shape=None
):
    cfg = tiny_config(tmp_path, data, model=model, family=family, steps=2, cond=cond, resolution=resolution)
    res = train(cfg, progress=False)
    assert res.step == 2
    losses = {k: v for k, v in res.last.items() if k.startswith("loss")}
    assert losses, "train_step must report at least one loss"
    assert all(math.isfinite(v) for v in losses.values()), losses

    m1 = Model.load(res.run_dir)
    m2 = Model.load(res.run_dir)
    x1 = m1.generate([0, 1, 5], output="tensor")
    x2 = m2.generate([0, 1, 5], output="tensor")
    assert torch.equal(x1, x2), "save/load must give identical outputs"
    # Same seed, same sample, whatever the batch it is generated in.
    x3 = m1.generate([5], output="tensor")
    assert torch.allclose(x1[2:3], x3, atol=1e-5)
    assert not torch.allclose(x1[0], x1[1]), "different seeds should give different samples"
    if expect_shape is not None:
        assert tuple(x1.shape[1:]) == expect_shape
    if m1.spec.kind == "image":
        assert x1.min() >= -1 and x1.max() <= 1
        assert x1.shape[1:] == (m1.spec.channels, m1.spec.resolution, m1.spec.resolution)
    # Inference loads only the generator networks; "all" gives every network (D included).
    assert set(m1.nets) == set(m1.family.generator_nets)
    return res, Model.load(res.run_dir, nets="all")


class FamilyContract:
    model: ClassVar[str] = ""
    settings: ClassVar[dict[str, Any]] = {}
    data: ClassVar[str] = "tiny_data"  # a fixture name, or a built-in dataset name
    cond: ClassVar[bool] = False
    loop: ClassVar[dict[str, Any]] = {}  # extra TrainConfig fields

    def _data(self, request) -> str:
        try:
            return request.getfixturevalue(self.data)
        except pytest.FixtureLookupError:
            return self.data

    def config(self, tmp_path, request, **kw):
        base = dict(model=self.model, family=dict(self.settings), cond=self.cond, **self.loop)
        base.update(kw)
        return tiny_config(tmp_path, self._data(request), **base)

    def trained(self, tmp_path, request, steps: int = 2):
        res = train(self.config(tmp_path, request, steps=steps), progress=False)
        return res, Model.load(res.run_dir)

    def test_trains_with_finite_losses(self, tmp_path, request):
        res = train(self.config(tmp_path, request, steps=2), progress=False)
        assert res.step == 2
        losses = {k: v for k, v in res.last.items() if k.startswith("loss")}
        assert losses, "train_step must report at least one loss"
        assert all(math.isfinite(v) for v in losses.values()), losses
        assert (res.run_dir / "samples" / "grid-000002.png").exists()

    def test_loads_generator_only_or_all(self, tmp_path, request):
        res, model = self.trained(tmp_path, request)
        assert set(model.nets) == set(model.family.generator_nets)
        full = Model.load(res.run_dir, nets="all")
        assert set(model.nets) <= set(full.nets)

    def test_resume_is_bit_identical(self, tmp_path, request):
        a = train(self.config(tmp_path, request, steps=4, run="a"), progress=False)
        b1 = train(self.config(tmp_path, request, steps=4, run="b"), progress=False, stop_at=2)
        assert b1.interrupted and b1.step == 2
        b2 = train(self.config(tmp_path, request, steps=4, run="b"), resume=True, progress=False)
        assert b2.step == 4
        ta = ckpt.load_tensors(ckpt.resolve_checkpoint(a.run_dir))
        tb = ckpt.load_tensors(ckpt.resolve_checkpoint(b2.run_dir))
        assert ta.keys() == tb.keys()
        for k in ta:
            if k.startswith(("net/", "opt/", "family/")):
                assert torch.equal(ta[k], tb[k]), k


class NoiseFamilyContract(FamilyContract):
    expect_shape: ClassVar[tuple[int, ...] | None] = None

    def test_seeds_are_deterministic(self, tmp_path, request):
        res, m1 = self.trained(tmp_path, request)
        m2 = Model.load(res.run_dir)
        x1 = m1.generate([0, 1, 5], output="tensor")
        assert torch.equal(x1, m2.generate([0, 1, 5], output="tensor")), "save/load must give identical outputs"
        assert torch.allclose(x1[2:3], m1.generate([5], output="tensor"), atol=1e-5), "same seed, same sample"
        assert not torch.allclose(x1[0], x1[1]), "different seeds should give different samples"
        if self.expect_shape is not None:
            assert tuple(x1.shape[1:]) == self.expect_shape
        if m1.spec.kind == "image":
            assert x1.min() >= -1 and x1.max() <= 1
            assert x1.shape[1:] == (m1.spec.channels, m1.spec.resolution, m1.spec.resolution)
            png = m1.generate([0], output="png")
            assert isinstance(png[0], bytes) and png[0][:4] == b"\x89PNG"

    def test_explicit_latents_match_seeds(self, tmp_path, request):
        from ganforge.sample.latents import labels_for_seeds, latents_for_seeds

        _, model = self.trained(tmp_path, request)
        z = latents_for_seeds([3, 4], model.latent_shape)
        labels = labels_for_seeds([3, 4], model.spec.num_classes)
        assert torch.equal(model.sample_latents(z, labels), model.generate([3, 4], output="tensor"))

    def test_unsupported_requests_fail_clearly(self, tmp_path, request):
        _, model = self.trained(tmp_path, request)
        if not model.capabilities.truncation:
            with pytest.raises(ConfigError, match="truncation"):
                model.generate([0], trunc=0.5)
        with pytest.raises(ConfigError, match="generates from seeds"):
            model.translate(torch.zeros(1, 3, 16, 16))

    def test_labels_change_conditional_samples(self, tmp_path, request):
        if not self.cond:
            pytest.skip("unconditional configuration")
        _, model = self.trained(tmp_path, request)
        a = model.generate([7], label=0, output="tensor")
        b = model.generate([7], label=1, output="tensor")
        assert (a - b).abs().max() > 1e-6, "the class must change the sample"


class ImageFamilyContract(FamilyContract):
    def test_translates_after_reload(self, tmp_path, request):
        res, m1 = self.trained(tmp_path, request)
        spec = m1.spec
        x = torch.rand(3, spec.source_channels, spec.source_resolution, spec.source_resolution) * 2 - 1
        y1 = m1.translate(x, output="tensor")
        assert y1.shape == (3, spec.channels, spec.resolution, spec.resolution)
        assert y1.min() >= -1 and y1.max() <= 1
        y2 = Model.load(res.run_dir).translate(x, output="tensor")
        assert torch.equal(y1, y2), "translation must be the same after reloading the run"
        assert torch.allclose(m1.translate(x[1:2], output="tensor"), y1[1:2], atol=1e-5), "independent of the batch"
        with pytest.raises(ConfigError, match="translates images"):
            m1.generate([0])

    def test_previews_show_input_output_target(self, tmp_path, request):
        from PIL import Image

        res, model = self.trained(tmp_path, request)
        with Image.open(res.run_dir / "samples" / "grid-000002.png") as im:
            w, h = im.size
        side = model.spec.resolution
        cols = round((w - 1) / (side + 1))
        assert cols >= 2, f"a preview row shows at least input | output, got {w}x{h}"

    def test_pairs_stay_aligned_through_augmentation(self, tmp_path, request):
        from ganforge.data.dataset import load_dataset
        from ganforge.registry import get_family

        fam = get_family(self.model)
        ds = load_dataset(
            self._data(request),
            kinds=fam.data_kinds,
            options=fam.data_options(fam.default_config() if not self.settings else _cfg(fam, self.settings)),
        )
        if ds.kind == "unpaired":
            pytest.skip("unpaired data has no alignment")
        torch.manual_seed(0)
        stream = ds.stream(8, 0, xflip=True)
        for _ in range(3):
            b = stream.next()
            check_aligned(b["source"], b["target"])


def _cfg(fam, settings):
    from ganforge.config import family_config_from_dict

    return family_config_from_dict(fam, settings)


def check_aligned(source: torch.Tensor, target: torch.Tensor) -> None:
    """Each source must be the target's degraded (or otherwise derived) view at the same place: after
    resizing both to the source's size, source and target correlate far better than flipped pairs."""
    import torch.nn.functional as F

    t = F.interpolate(target.float(), size=source.shape[-2:], mode="area").mean(1)
    s = source.float().mean(1)
    same = (s - t).abs().mean().item()
    flipped = (s - t.flip(-1)).abs().mean().item()
    assert same < flipped, f"pair misaligned: |s - t| = {same:.4f} >= |s - flip(t)| = {flipped:.4f}"
