"""TensorBoard events: scalars, sample grids as images and the config as text, read back with tensorboard."""

from __future__ import annotations

import json

import pytest

from ganforge.training.loop import train
from ganforge.training.tensorboard import TensorBoard
from helpers import tiny_config

pytest.importorskip("tensorboard", reason="pip install 'ganforge[tensorboard]'")


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_training_writes_scalars_grids_and_config(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, steps=4, sample_every=2), progress=False)
    acc = _events(res.run_dir)
    assert [e.step for e in acc.Scalars("loss_D")] == [1, 2, 3, 4]
    logged = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert acc.Scalars("loss_G")[-1].value == pytest.approx(logged[-1]["loss_G"], rel=1e-6)
    images = acc.Images("samples")
    assert [e.step for e in images] == [2, 4]
    assert (images[0].width, images[0].height) == (35, 35)  # the 2x2 grid of 16 px images with gutters
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"model": "dcgan"' in text


def test_disabled_writes_nothing(tmp_path):
    tb = TensorBoard(tmp_path, enabled=False, config={"a": 1})
    tb.log(1, {"loss": 1.0})
    tb.grid(1, tmp_path / "missing.png")
    tb.close()
    assert not tb.active and not list(tmp_path.iterdir())


def test_missing_grid_is_skipped(tmp_path):
    tb = TensorBoard(tmp_path)
    tb.grid(3, tmp_path / "nope.png")
    tb.log(3, {"x": 2.0, "step": 3, "note": "text", "flag": True})
    tb.close()
    acc = _events(tmp_path)
    assert acc.Tags()["images"] == [] and acc.Tags()["scalars"] == ["x"]
