"""Writing images: the row-by-row PNG writer for very large outputs."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_written_row_by_row_reads_back_exactly(tmp_path, channels):
    import numpy as np
    from PIL import Image

    from ganforge.sample.grid import save_png_array

    arr = np.random.default_rng(channels).integers(0, 256, (37, 53, channels), dtype=np.uint8)
    save_png_array(arr, tmp_path / "a.png", level=1)
    with Image.open(tmp_path / "a.png") as im:
        back = np.asarray(im)
    assert np.array_equal(back.reshape(arr.shape), arr)
    assert not list(tmp_path.glob(".*.tmp"))
