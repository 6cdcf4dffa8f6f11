"""Curation (`ganforge curate`, `ganforge.curate`), its scorers, and the training-time constraints (--constraint,
--topk). References: scipy's Laplacian for sharpness, scikit-learn's logistic regression for DRS's recalibration."""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge import checkpoint as ckpt
from ganforge.cli import main
from ganforge.config import TrainConfig, parse_constraints
from ganforge.curate import check_counts, curate, drs_acceptance, fit_logistic, parse_min, rank_select
from ganforge.curate.constraints import check, term_families, topk_schedule
from ganforge.curate.scorers import (
    ScoringContext,
    get_scorer,
    laplacian_variance,
    piqe,
    realism_score,
)
from ganforge.errors import ConfigError, MissingDependencyError
from ganforge.families.adversarial import GeneratorTerms, adversarial_step, standard
from ganforge.families.base import StepContext
from ganforge.registry import get_family
from ganforge.training.loop import train
from helpers import make_archive, tiny_config


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (reflected borders) of images (N, C, H, W)."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, g, groups=x.shape[1])
    return torch.nn.functional.conv2d(x, g.transpose(2, 3), groups=x.shape[1])


def _textured(n: int = 4, res: int = 64, seed: int = 0, noise: float = 0.0) -> torch.Tensor:
    """Images with edges at every scale: random rectangles of random colours on grey (plus Gaussian noise of std
    `noise`: PIQE, like people, finds perfectly flat patches suspicious), in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, res, res), 0.5)
    for i in range(n):
        for _ in range(40):
            y0, x0 = torch.randint(0, res - 4, (2,), generator=g).tolist()
            h, w = torch.randint(2, res // 3, (2,), generator=g).tolist()
            x[i, :, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=g)
    return (x + noise * torch.randn(x.shape, generator=g)).clamp(0, 1)


# ---- scorers --------------------------------------------------------------------------------------------------


def test_sharpness_is_the_variance_of_scipys_laplacian():
    from scipy import ndimage

    x = _textured(2, 32)
    gray = (x.double() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(1).numpy()
    # scipy's "mirror" border is OpenCV's default BORDER_REFLECT_101.
    want = [ndimage.laplace(im, mode="mirror").var() for im in gray]
    got = laplacian_variance(x.double()).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("name", ["sharpness", "iqa"])
def test_scores_fall_as_a_gaussian_blur_grows(name):
    scorer = get_scorer(name)
    x = _textured(4, 64, noise=0.03)
    sigmas = [0.0, 0.7, 1.5, 3.0]
    means = [float(scorer(_blur(x, s)).mean()) for s in sigmas]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert float(scorer(_blur(x, 6.0)).mean()) <= means[-1]
    per_image = torch.stack([scorer(_blur(x, s)) for s in (0.0, 3.0)])
    assert (per_image[0] > per_image[1]).all()


def test_piqe_is_100_for_a_flat_image_and_low_for_a_textured_one():
    flat = torch.full((1, 1, 32, 32), 0.3)
    assert piqe(flat).item() == pytest.approx(100.0)
    assert piqe(_textured(1, 64, noise=0.03)).item() < 60.0
    assert piqe(_textured(1, 40, noise=0.03)).shape == (1,)  # sides that are not a multiple of 16 are padded


def test_sharpness_is_differentiable_and_iqa_is_not():
    s, q = get_scorer("sharpness"), get_scorer("iqa")
    assert s.differentiable and not q.differentiable
    x = _textured(2, 16).requires_grad_(True)
    s(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_realism_is_above_one_inside_the_real_manifold_and_below_far_away():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=g)
    from ganforge.metrics.prdc import knn_radii

    radii = knn_radii(real, (3,))[3]
    inside = real[radii.argmin()] + 1e-3  # next to the real sample with the smallest ball
    far = torch.full((8,), 50.0)
    r = realism_score(torch.stack([inside, far]), real, radii)
    assert r[0] > 1 and r[1] < 0.2


def test_unknown_scorer_face_pose_and_arguments_say_why_in_one_line():
    with pytest.raises(ConfigError, match="unknown scorer 'sharpnes'; scorers: sharpness, iqa"):
        get_scorer("sharpnes")
    with pytest.raises(MissingDependencyError, match="face-pose scorer needs a face detector"):
        get_scorer("face-pose")
    with pytest.raises(ConfigError, match="takes no argument"):
        get_scorer("sharpness:3")
    with pytest.raises(ConfigError, match="needs the run's discriminator"):
        get_scorer("realness", ScoringContext())


def test_a_users_scorer_from_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_scores.py").write_text(
        "def brightness(images):\n    return images.mean(dim=(1, 2, 3))\nbrightness.differentiable = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sc = get_scorer("brightness", extra={"brightness": "my_scores:brightness"})
    assert sc.differentiable
    torch.testing.assert_close(sc(torch.ones(3, 1, 4, 4) * 0.25), torch.full((3,), 0.25))
    with pytest.raises(ConfigError, match="has no 'nothing'"):
        get_scorer("x", extra={"x": "my_scores:nothing"})
    sys.modules.pop("my_scores", None)


# ---- selection and DRS ---------------------------------------------------------------------------------------


def test_rank_selection_combines_ranks_and_respects_thresholds():
    scores = {"a": torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]), "b": torch.tensor([1.0, 5.0, 4.0, 3.0, 2.0])}
    # mean ranks: [2, 0.5, 1.5, 2.5, 3.5] -> the best two are images 1 and 2.
    assert rank_select(scores, ["a", "b"], 2).tolist() == [False, True, True, False, False]
    allowed = scores["b"] >= 3.5
    assert rank_select(scores, ["a", "b"], 2, allowed).tolist() == [False, True, True, False, False]
    allowed = scores["b"] >= 4.5
    assert rank_select(scores, ["a", "b"], 2, allowed).tolist() == [False, True, False, False, False]
    assert parse_min(["sharpness=0.5", "classifier:cat=0.9"]) == {"sharpness": 0.5, "classifier:cat": 0.9}
    with pytest.raises(ConfigError, match="SCORER=VALUE"):
        parse_min(["sharpness"])


def test_drs_recalibration_is_sklearns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(300, generator=g) * 2 + 1.5, torch.randn(500, generator=g) * 1.5 - 1
    a, b = fit_logistic(pos, neg)
    x = torch.cat([pos, neg]).double().numpy()[:, None]
    y = np.r_[np.ones(300), np.zeros(500)]
    ref = LogisticRegression(C=1e12, class_weight="balanced", tol=1e-12, max_iter=10000).fit(x, y)
    assert a == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert b == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-5)


def test_drs_acceptance_follows_the_papers_formula():
    L = torch.linspace(-6, 2, 101).double()
    prob, info = drs_acceptance(L, percentile=95.0, eps=1e-6)
    L_M = 2.0
    F = L - L_M - torch.log(1 - torch.exp(L - L_M - 1e-6))
    gamma = float(np.percentile(F.numpy(), 95.0))
    torch.testing.assert_close(prob.double(), torch.sigmoid(F - gamma), rtol=1e-5, atol=1e-6)
    assert info["gamma"] == pytest.approx(gamma) and info["max_logit"] == L_M
    # The more real D finds a sample, the likelier it is accepted; 95 % of samples are below one half.
    assert (prob[1:] >= prob[:-1]).all() and float((prob <= 0.5).double().mean()) >= 0.94


def test_check_counts():
    with pytest.raises(ConfigError, match="--keep 20 is more than --num 10"):
        check_counts(10, 20)


# ---- end to end on a tiny trained run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_labelled(tmp_path_factory):
    return str(make_archive(tmp_path_factory.mktemp("data") / "tiny-labelled.zip", classes=3))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_labelled):
    """One tiny trained run (labelled data, unconditional DCGAN) shared by the curation tests, which only read it."""
    res = train(tiny_config(tmp_path_factory.mktemp("run"), tiny_labelled, steps=4, ckpt_every=4), progress=False)
    return res.run_dir


def _cli(*args):
    return CliRunner().invoke(main, ["curate", *map(str, args)])


def test_curate_cli_writes_images_scores_and_histograms(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curated"
    r = _cli(tiny_run, "--num", 40, "--keep", 10, "--by", "sharpness,iqa,realness", "--out", out, "--batch", 16)
    assert r.exit_code == 0, r.output
    assert "kept 10 of 40" in r.output
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == 10 and all(n.startswith("seed") and n.endswith(".png") for n in images)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and set(rows[0]) == {"seed", "sharpness", "iqa", "realness", "kept"}
    kept = {int(r["seed"]) for r in rows if r["kept"] == "1"}
    assert {f"seed{s:04d}.png" for s in kept} == set(images)
    for name in ("sharpness", "iqa", "realness"):
        assert (out / f"hist-{name}.png").stat().st_size > 1000
        before = np.mean([float(r[name]) for r in rows])
        summary = json.loads((out / "curate.json").read_text())
        assert summary["scorers"][name]["before_mean"] == pytest.approx(before, rel=1e-4)
    # A kept image reproduces from its seed.
    from PIL import Image

    import ganforge

    seed = min(kept)
    again = ganforge.load(tiny_run).generate([seed])[0]
    assert np.array_equal(np.asarray(again), np.asarray(Image.open(out / "images" / f"seed{seed:04d}.png")))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num", "10", "--keep", "20"], "--keep 20 is more than --num 10"),
        (["--num", "10", "--keep", "5", "--by", "nosuch"], "unknown scorer 'nosuch'"),
        (["--num", "10", "--keep", "5", "--by", "drs,sharpness"], "drop sharpness"),
        (["--num", "10", "--keep", "5", "--min", "sharpness"], "SCORER=VALUE"),
    ],
)
def test_curate_cli_errors_are_one_line(tiny_run, args, message):
    r = _cli(tiny_run, *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_drs_keeps_the_fraction_it_states(tiny_run):
    res = curate(tiny_run, num=300, keep=300, by="drs", batch=100, histograms=False)
    accepted = res.drs["accepted"]
    assert res.accepted_fraction == pytest.approx(accepted / 300)
    assert int(res.kept.sum()) == accepted and 0 < accepted < 300
    # The draw follows the stated probabilities: the accepted count is within 4 sigma of their sum.
    p = res.drs["probability"].double()
    assert abs(accepted - p.sum().item()) < 4 * math.sqrt((p * (1 - p)).sum().item()) + 1
    again = curate(tiny_run, num=300, keep=300, by="drs", batch=64, histograms=False)
    assert torch.equal(again.kept, res.kept)  # same seeds, same draw, whatever the batch


def _quick_classifier(data: str) -> None:
    """Put a classifier trained for a few steps in the cache, where `get_classifier` finds it (the default, 300
    steps and a 500-step head refit, is a test's minute on a busy 2-core machine)."""
    from ganforge.data.dataset import load_dataset
    from ganforge.metrics.cache import dataset_sha256
    from ganforge.metrics.classifier import classifier_path, save_classifier, train_classifier

    ds = load_dataset(data)
    digest = dataset_sha256(ds.images, ds.labels)
    save_classifier(classifier_path(digest, None, ds.name), train_classifier(ds, steps=20, head_steps=20))


def test_classifier_and_realism_scorers_and_thresholds(tiny_run, tiny_labelled):
    _quick_classifier(tiny_labelled)
    res = curate(
        tiny_run, num=30, keep=30, by="realism", min={"classifier:c0": 0.2}, data=tiny_labelled, histograms=False
    )
    conf = res.scores["classifier:c0"]
    assert ((conf >= 0) & (conf <= 1)).all()
    assert torch.equal(res.kept, conf >= 0.2)  # every image over the threshold, since keep = num
    assert (res.scores["realism"] > 0).all()
    with pytest.raises(ConfigError, match="classifier:nope: unknown class; classes: c0, c1, c2"):
        curate(tiny_run, num=4, keep=2, by="classifier:nope", histograms=False)


# ---- training-time constraints and top-k ---------------------------------------------------------------------


def test_constraint_settings_are_checked():
    assert parse_constraints("sharpness:0.1, classifier:cat:2") == [("sharpness", 0.1), ("classifier:cat", 2.0)]
    with pytest.raises(ConfigError, match="SCORER:WEIGHT"):
        TrainConfig(constraint="sharpness").validate()
    with pytest.raises(ConfigError, match="not differentiable"):
        check(TrainConfig(constraint="iqa:1"))
    with pytest.raises(ConfigError, match=r"apply to (\w[\w-]*, )*dcgan, .*not 'vae'; drop them"):
        check(TrainConfig(model="vae", topk=0.5))
    with pytest.raises(ConfigError, match="topk"):
        TrainConfig(topk=1.5).validate()


def test_every_family_that_declares_generator_terms_applies_them(tmp_path, tiny_data):
    """The capability is a promise about the step: each image family that declares it logs top-k's k (the
    refusal in `check` trusts the declaration, so a family that declared it and ignored the terms would train
    silently without them)."""
    declared = term_families()
    assert {"gan", "dcgan", "sngan", "wgan-gp", "gan3d"} <= set(declared)
    assert not {"vae", "stylegan2", "fastgan", "dfgan", "pix2pix"} & set(declared)
    for name in declared:
        if "image" not in get_family(name).data_kinds:
            continue
        res = train(tiny_config(tmp_path, tiny_data, model=name, run=f"k-{name}", steps=2, topk=0.5), progress=False)
        lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert lines and all("topk" in r for r in lines), name


def test_a_constraint_appears_in_the_loss_log(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, run="c", steps=3, constraint="sharpness:0.5"), progress=False)
    lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_G_sharpness" in r for r in lines)
    assert all(r["loss_G_sharpness"] < 0 and math.isfinite(r["loss_G_sharpness"]) for r in lines)
    assert json.loads((res.run_dir / "config.json").read_text())["constraint"] == "sharpness:0.5"


def test_constraint_cli_option_repeats(tmp_path, tiny_data):
    r = CliRunner().invoke(
        main,
        ["train", "--data", tiny_data, "--constraint", "sharpness:0.1", "--constraint", "sharpness:0.2", "--dry-run"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["constraint"] == "sharpness:0.1,sharpness:0.2"


class _RowG(torch.nn.Module):
    """A 'generator' whose fakes are its parameter rows, so each fake's gradient is visible."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(rows.clone())

    def forward(self, z: torch.Tensor, labels=None) -> torch.Tensor:  # noqa: ANN001
        return self.p[: z.shape[0]]


class _MeanD(torch.nn.Module):
    """A fixed 'discriminator': the mean pixel (plus a parameter that takes no step)."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:  # noqa: ANN001
        return x.flatten(1).mean(1) + self.b


def test_topk_only_the_best_scored_fakes_update_g():
    fakes = torch.linspace(-0.9, 0.9, 8).view(8, 1, 1, 1).expand(8, 1, 4, 4).contiguous()
    fakes = fakes[torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    G, D = _RowG(fakes), _MeanD()
    opts = {"G": torch.optim.SGD(G.parameters(), lr=0.0), "D": torch.optim.SGD(D.parameters(), lr=0.0)}
    real = torch.zeros(8, 1, 4, 4)
    ctx = StepContext()
    step = [1000]  # well past the annealing: k = floor * batch
    ctx.generator_terms = GeneratorTerms(topk_floor=0.5, topk_gamma=0.99, epoch_steps=1.0, step=lambda: step[0])
    logs = adversarial_step(G, D, opts, ctx, [(real, None)], 4, standard("nonsaturating"))
    assert logs["topk"] == 4
    updated = G.p.grad.flatten(1).abs().sum(1) > 0
    best = fakes.flatten(1).mean(1).topk(4).indices
    assert updated.nonzero().flatten().sort().values.tolist() == best.sort().values.tolist()
    # At step 0, k is the whole batch: every fake updates G.
    step[0] = 0
    G.p.grad = None
    logs = adversarial_step(G, D, opts, ctx, [(real, None)], 4, standard("nonsaturating"))
    assert logs["topk"] == 8 and (G.p.grad.flatten(1).abs().sum(1) > 0).all()


def test_topk_anneals_from_the_batch_to_the_floor():
    ks = topk_schedule(64, 0.5, 0.9, epoch_steps=10, steps=200)
    assert ks[0] == 64 and ks[9] == 64 and ks[10] == math.ceil(0.9 * 64)
    assert ks == sorted(ks, reverse=True) and ks[-1] == 32


def _final_tensors(run_dir):
    from safetensors.torch import load_file

    return load_file(str(ckpt.resolve_checkpoint(run_dir, "latest").with_suffix(".safetensors")))


def test_resume_stays_bit_identical_with_a_constraint_and_topk(tmp_path, tiny_data):
    kw = dict(steps=6, constraint="sharpness:0.5", topk=0.5, topk_gamma=0.5)
    a = train(tiny_config(tmp_path, tiny_data, run="a", **kw), progress=False)
    b1 = train(tiny_config(tmp_path, tiny_data, run="b", **kw), progress=False, stop_at=3)
    assert b1.interrupted and b1.step == 3
    b2 = train(tiny_config(tmp_path, tiny_data, run="b", **kw), resume=True, explicit=set(), progress=False)
    ta, tb = _final_tensors(a.run_dir), _final_tensors(b2.run_dir)
    assert ta.keys() == tb.keys()
    for k in ta:
        if k.startswith(("net/", "opt/")):
            assert torch.equal(ta[k], tb[k]), k
    plain = train(tiny_config(tmp_path, tiny_data, run="p", steps=6), progress=False)
    tp = _final_tensors(plain.run_dir)
    assert any(not torch.equal(ta[k], tp[k]) for k in ta if k.startswith("net/G/"))  # the terms changed training
