"""Image-input families through the seams: a paired translator and a 2x super-resolution family that
live only in the tests train through the real `ganforge train`, write input | output | target
previews, pass the image-input contract and translate real image files after reloading the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from contract import ImageFamilyContract, check_aligned
from PIL import Image

import ganforge
from ganforge import registry
from ganforge.cli import main
from ganforge.data.dataset import PairedDataset, SuperResDataset, UnpairedDataset, load_dataset
from helpers import blob_pair, make_paired_folder


@pytest.fixture(autouse=True)
def _toy_families(monkeypatch):
    monkeypatch.setitem(registry._FAMILY_PATHS, "toy-pix", "toy_families:ToyTranslator")
    monkeypatch.setitem(registry._FAMILY_PATHS, "toy-sr", "toy_families:ToySuperRes")


@pytest.fixture
def paired_folder(tmp_path):
    root = make_paired_folder(tmp_path / "edges2blobs")
    Image.open(root / "B" / "011.png").save(root / "B" / "extra-without-partner.png")
    return str(root)


@pytest.fixture
def side_by_side_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "facades"
    root.mkdir()
    for i in range(6):
        edge, fill = blob_pair(rng, 16)
        Image.fromarray(np.concatenate([edge, fill], axis=1)).save(root / f"{i}.jpg", quality=95)
    return str(root)


class TestPairedTranslatorContract(ImageFamilyContract):
    model = "toy-pix"
    data = "paired_folder"


class TestSuperResContract(ImageFamilyContract):
    model = "toy-sr"
    data = "tiny_data"


def test_paired_folders_are_matched_by_name_and_side_by_side_split(paired_folder, side_by_side_folder):
    ds = load_dataset(paired_folder, kinds=("paired",))
    assert isinstance(ds, PairedDataset) and len(ds) == 12  # the file without a partner is left out
    assert ds.spec().kind == "paired" and ds.spec().domains == ["A", "B"]
    sbs = load_dataset(side_by_side_folder, kinds=("paired",))
    assert isinstance(sbs, PairedDataset) and len(sbs) == 6 and sbs.source.shape[-1] == 16


def test_domain_folders_are_domains_not_labels(tmp_path, paired_folder):
    import shutil

    root = tmp_path / "horse2zebra"
    shutil.copytree(f"{paired_folder}/A", root / "trainA")
    shutil.copytree(f"{paired_folder}/B", root / "trainB")
    ds = load_dataset(root, kinds=("unpaired",))
    assert isinstance(ds, UnpairedDataset) and ds.domains == ["trainA", "trainB"]
    assert ds.a.shape[0] == 12 and ds.b.shape[0] == 13
    b = ds.stream(4, 0).next()
    assert set(b) == {"A", "B"} and b["A"].shape == (4, 3, 16, 16)
    # The same folder read for an image family is labelled by sub-folder, as before.
    assert load_dataset(root).num_classes == 2


def test_paired_crops_and_flips_stay_aligned(paired_folder):
    ds = load_dataset(paired_folder, kinds=("paired",), options={"crop": 12})
    ds = PairedDataset(ds.source, ds.target, crop=12)
    torch.manual_seed(0)
    stream = ds.stream(8, 0, xflip=True)
    for _ in range(5):
        b = stream.next()
        assert b["source"].shape == (8, 3, 12, 12)
        # The outline is where the filled disc's edge is: compare edge maps of the target with the source.
        t = b["target"].mean(1, keepdim=True)
        gx = (t[..., :, 1:] - t[..., :, :-1]).abs()
        edges = torch.nn.functional.pad(gx, (0, 1)) > 0.05
        dark = b["source"].mean(1, keepdim=True) < 0
        hit = (edges & dark).sum() / dark.sum().clamp_min(1)
        miss = (edges.flip(-1) & dark).sum() / dark.sum().clamp_min(1)
        assert hit > miss


def test_superres_pairs_are_degraded_targets(tiny_data):
    ds = load_dataset(tiny_data, kinds=("superres",), options={"scale": 2, "crop": 8})
    assert isinstance(ds, SuperResDataset)
    spec = ds.spec()
    assert (spec.kind, spec.resolution, spec.in_resolution) == ("superres", 8, 4)
    b = ds.stream(6, 0, xflip=True).next()
    assert b["source"].shape == (6, 3, 4, 4) and b["target"].shape == (6, 3, 8, 8)
    check_aligned(b["source"], b["target"])


@pytest.mark.parametrize("model,data_fixture", [("toy-pix", "paired_folder"), ("toy-sr", "tiny_data")])
def test_cli_train_then_translate_real_files(tmp_path, request, model, data_fixture):
    data = request.getfixturevalue(data_fixture)
    runs = tmp_path / "runs"
    r = CliRunner().invoke(
        main,
        ["train", "--model", model, "--data", data, "--steps", "30", "--batch", "8", "--runs-dir", str(runs), "--run", "t",
         "--precision", "fp32", "--sample-every", "30", "--quiet"],
    )
    assert r.exit_code == 0, r.output
    run = runs / "t"
    side = ganforge.load(run).spec.resolution
    with Image.open(run / "samples" / "grid-000030.png") as im:
        assert im.size[0] == 3 * (side + 1) + 1  # each row: input | output | target
    # Real image files of another size through the Python API and the CLI.
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    edge, _ = blob_pair(rng, 24)
    Image.fromarray(edge).save(src / "a.png")
    Image.fromarray(edge[:20]).convert("RGBA").save(src / "b.png")
    model_ = ganforge.load(run)
    outs = model_.translate([str(src / "a.png"), (src / "b.png").read_bytes()])
    scale = 2 if model == "toy-sr" else 1
    assert [o.size for o in outs] == [(24 * scale, 24 * scale), (24 * scale, 20 * scale)]
    r = CliRunner().invoke(main, ["translate", str(run), str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    # A noise request to an image model is one clear error.
    r = CliRunner().invoke(main, ["generate", str(run), "--seeds", "0-1"])
    assert r.exit_code == 2 and "translates images" in r.output
    # A FIFO among the inputs is refused unread (a plain Image.open of it would block forever).
    import os
    import threading

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    done: dict = {}
    t = threading.Thread(
        target=lambda: done.setdefault("r", CliRunner().invoke(main, ["translate", str(run), str(fifo), "--out", str(tmp_path / "o2")])),
        daemon=True,
    )
    t.start()
    t.join(60)
    if t.is_alive():  # release the blocked reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("translate blocked on a FIFO")
    r = done["r"]
    assert r.exit_code == 2 and "FIFO" in r.output, r.output


def test_translation_learns(tmp_path, paired_folder):
    """30 steps of L1 bring the toy translator's output closer to the targets than its first step."""
    from ganforge.training.loop import train
    from helpers import tiny_config

    res = train(tiny_config(tmp_path, paired_folder, model="toy-pix", family={}, steps=40, batch=8, log_every=1), progress=False)
    lines = [__import__("json").loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    l1 = [x["loss_L1"] for x in lines if "loss_L1" in x]
    assert np.mean(l1[-5:]) < 0.7 * np.mean(l1[:5])
