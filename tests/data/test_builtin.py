"""Built-in dataset names and local files that share them."""

from __future__ import annotations


def test_a_local_folder_named_like_a_builtin_wins_with_a_note(tmp_path, monkeypatch):
    from PIL import Image

    from ganforge.data.dataset import load_dataset, shadowed_builtin

    monkeypatch.chdir(tmp_path)
    assert shadowed_builtin("digits") is None
    (tmp_path / "digits").mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / "digits" / f"{i}.png")
    note = shadowed_builtin("digits")
    assert note and "builtin:digits" in note and "\n" not in note
    assert len(load_dataset("digits")) == 3  # the user's folder
    ds = load_dataset("builtin:digits")  # the built-in set, explicitly
    assert len(ds) == 1797 and ds.num_classes == 10
