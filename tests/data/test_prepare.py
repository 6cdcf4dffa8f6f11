"""The prepare pipeline on images these tests draw themselves: formats, transparency, orientation, bit depth,
fitting, filters, dedupe, labels, sources, and the errors a user can cause."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from ganforge.data import load_dataset
from ganforge.data.prepare import PrepareOptions, prepare
from ganforge.errors import ConfigError, DataError

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def blob(size=(8, 8), colour=RED, mode="RGBA", inner=4):
    """A `colour` square of side `inner` centred on a fully transparent background."""
    w, h = size
    arr = np.zeros((h, w, 4), np.uint8)
    t, left = (h - inner) // 2, (w - inner) // 2
    arr[t : t + inner, left : left + inner] = (*colour, 255)
    return Image.fromarray(arr, "RGBA").convert(mode) if mode != "RGBA" else Image.fromarray(arr, "RGBA")


def solid(path, colour=RED, size=(8, 8), mode="RGB", **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def opts(**kw) -> PrepareOptions:
    kw.setdefault("resolution", 8)
    return PrepareOptions(**kw)


def one(path, **kw) -> np.ndarray:
    data = prepare([path], opts(**kw))
    assert len(data.files) == 1, data.skipped
    return data.images[0]


# ---- transparency, formats, colour modes --------------------------------------------------------------


def test_rgba_composited_on_white_by_default_and_on_black_when_asked(tmp_path):
    p = tmp_path / "a.png"
    blob().save(p)
    img = one(p)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[4, 4]) == RED
    assert tuple(one(p, background="black")[0, 0]) == (0, 0, 0)
    assert tuple(one(p, background="#102030")[0, 0]) == (16, 32, 48)


def test_half_transparent_pixels_blend_with_the_background(tmp_path):
    p = tmp_path / "half.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(p)
    assert tuple(one(p, filter="nearest")[3, 3]) == (127, 127, 127)  # 0 * 128/255 + 255 * 127/255


def test_transparency_is_composited_before_resizing(tmp_path):
    # Transparent pixels are black with alpha 0: resizing before compositing would smear dark fringes.
    p = tmp_path / "big.png"
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[16:48, 16:48] = (*RED, 255)
    Image.fromarray(arr, "RGBA").save(p)
    img = one(p, resolution=16, filter="lanczos").astype(int)
    ring = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3)])
    assert ring.min() >= 250  # no grey fringe near the edges


def test_la_and_palette_transparency(tmp_path):
    la = tmp_path / "la.png"
    blob(mode="LA").save(la)
    img = one(la)
    assert tuple(img[0, 0]) == (255, 255, 255) and img[4, 4, 0] == img[4, 4, 1] == img[4, 4, 2] < 255
    gray = one(la, channels=1)
    assert gray.shape == (8, 8, 1) and gray[0, 0, 0] == 255

    pal = tmp_path / "p.png"
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, *RED] + [0] * 762)
    p.paste(1, (2, 2, 6, 6))
    p.info["transparency"] = 0
    p.save(pal, transparency=0)
    assert Image.open(pal).mode == "P"
    img = one(pal)
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[4, 4]) == RED
    assert tuple(one(pal, background="black")[0, 0]) == (0, 0, 0)


def test_animated_gif_uses_the_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, BLUE, GREEN)]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(p), "n_frames", 1) == 3
    assert tuple(one(p)[4, 4]) == RED


def test_exif_orientation_is_applied(tmp_path):
    # Stored 16 wide x 8 tall, red on top, blue below; orientation 6 means "rotate 90 degrees clockwise to
    # display", so upright it is 8 wide x 16 tall with red on the right.
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:4], arr[4:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(p, quality=95, exif=exif.tobytes())
    img = one(p, resolution=16, fit="stretch").astype(int)
    left, right = img[8, 2], img[8, 13]
    assert left[2] > 200 and left[0] < 60, left  # blue
    assert right[0] > 200 and right[2] < 60, right  # red
    # pad keeps the upright aspect ratio: white bars at the left and right, not at the top and bottom
    padded = one(p, resolution=16)
    assert tuple(padded[8, 0]) == (255, 255, 255) and tuple(padded[0, 8]) != (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = solid(tmp_path / "cmyk.jpg", (0, 255, 255, 0), mode="CMYK", quality=95)
    assert Image.open(p).mode == "CMYK"
    r, g, b = one(p)[4, 4].astype(int)
    assert r > 230 and g < 25 and b < 25


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "deep.png"
    levels = np.array([0, 257, 32896, 65535], np.uint16)  # -> 0, 1, 128, 255
    Image.fromarray(np.tile(levels, (4, 1))).save(p)
    assert Image.open(p).mode in ("I;16", "I")
    img = one(p, resolution=4, filter="nearest")
    assert img[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (img[..., 0] == img[..., 1]).all()
    assert one(p, resolution=4, channels=1)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_32bit_integer_images_are_read_as_16bit(tmp_path):
    p = tmp_path / "int.tif"
    Image.fromarray(np.full((4, 4), 65535, np.int32), "I").save(p)
    assert one(p, resolution=4)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    "name, save",
    [
        ("a.bmp", {}),
        ("a.tif", {}),
        ("a.tiff", {"compression": "tiff_lzw"}),
        ("a.webp", {"lossless": True}),
        ("a.jpeg", {"quality": 100}),
    ],
)
def test_other_formats(tmp_path, name, save):
    p = solid(tmp_path / name, BLUE, **save)
    assert np.abs(one(p)[4, 4].astype(int) - BLUE).max() <= 2


def test_grayscale_input_becomes_rgb_or_stays_single_channel(tmp_path):
    p = solid(tmp_path / "g.png", 77, mode="L")
    assert one(p)[0, 0].tolist() == [77, 77, 77]
    assert one(p, channels=1).shape == (8, 8, 1)
    one_bit = solid(tmp_path / "bw.png", 1, mode="1")
    assert one(one_bit)[0, 0].tolist() == [255, 255, 255]
    rgb = solid(tmp_path / "rgb.png", (255, 0, 0))
    assert one(rgb, channels=1)[0, 0, 0] == 76  # ITU-R BT.601 luma of pure red


# ---- bad files ----------------------------------------------------------------------------------------------


def test_bad_files_are_skipped_with_reasons_and_others_ignored(tmp_path):
    d = tmp_path / "mess"
    solid(d / "good.png")
    (d / "corrupt.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    full = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full, "PNG")
    (d / "truncated.png").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("hello")
    (d / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (d / "Thumbs.db").write_bytes(b"\0" * 10)
    (d / ".hidden").mkdir()
    solid(d / ".hidden" / "secret.png")
    data = prepare([d], opts())
    assert [f.split("/")[-1] for f in data.files] == ["good.png"]
    reasons = {f.split("/")[-1]: r for f, r in data.skipped}
    assert set(reasons) == {"corrupt.png", "truncated.png", "empty.jpg"}
    assert reasons["empty.jpg"].startswith("empty file")
    assert reasons["corrupt.png"].startswith("not a readable image")
    assert reasons["truncated.png"].startswith("truncated")
    assert sorted(f.split("/")[-1] for f in data.ignored) == [".DS_Store", "Thumbs.db", "notes.txt", "secret.png"]
    s = data.summary()
    assert (s["kept"], s["skipped"], s["ignored"], s["duplicates"], s["classes"]) == (1, 3, 4, 0, 0)


def test_decompression_bomb_is_skipped(tmp_path, monkeypatch):
    solid(tmp_path / "d" / "big.png", size=(64, 64))
    solid(tmp_path / "d" / "small.png", size=(8, 8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100 pixels: an error, not a warning
    data = prepare([tmp_path / "d"], opts())
    assert len(data.files) == 1 and data.skipped[0][1].startswith("too large")


# ---- fitting, filters, resolution ---------------------------------------------------------------------------


def wide(tmp_path, colour=RED):
    """16 x 8, red; the left 4 columns green so that crop is distinguishable from stretch."""
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:] = colour
    arr[:, :4] = GREEN
    p = tmp_path / "wide.png"
    Image.fromarray(arr).save(p)
    return p


def test_pad_fills_with_background(tmp_path):
    p = wide(tmp_path)
    img = one(p, resolution=8, filter="nearest")
    assert img.shape == (8, 8, 3)
    assert (img[:2] == 255).all() and (img[6:] == 255).all()  # 16x8 -> 8x4 centred: 2 rows of padding each side
    assert tuple(img[3, 0]) == GREEN and tuple(img[3, 7]) == RED
    assert (one(p, resolution=8, filter="nearest", background="black")[:2] == 0).all()
    gray = one(p, resolution=8, channels=1, background="black")
    assert gray.shape == (8, 8, 1) and (gray[:2] == 0).all()


def test_crop_takes_the_centre_and_stretch_keeps_everything(tmp_path):
    p = wide(tmp_path)
    crop = one(p, resolution=8, fit="crop", filter="nearest")
    assert crop.shape == (8, 8, 3) and (crop == RED).all()  # the green strip is outside the centre square
    stretch = one(p, resolution=8, fit="stretch", filter="nearest")
    assert tuple(stretch[0, 0]) == GREEN and tuple(stretch[7, 7]) == RED and not (stretch == 255).all(axis=2).any()


def test_mixed_sizes_give_one_shape(tmp_path):
    d = tmp_path / "mixed"
    for i, size in enumerate([(8, 8), (30, 10), (10, 30), (100, 64), (5, 5)]):
        solid(d / f"{i}.png", size=size)
    for fit in ("pad", "crop", "stretch"):
        data = prepare([d], opts(resolution=16, fit=fit))
        assert data.images.shape == (5, 16, 16, 3)


def test_nearest_keeps_pixel_art_colours_exactly(tmp_path):
    rng = np.random.default_rng(0)
    art = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    p = tmp_path / "sprite.png"
    Image.fromarray(art).save(p)
    up = one(p, resolution=16, filter="nearest")
    assert (up == np.repeat(np.repeat(art, 4, 0), 4, 1)).all()
    smooth = one(p, resolution=16, filter="lanczos")
    assert len({tuple(c) for c in smooth.reshape(-1, 3)}) > 16


def _outlined_sprite() -> np.ndarray:
    """64x64 pixel art: a red square on white whose 2-px outline is a black/white checkerboard (black where
    x + y is odd), crossed by two 1-px black lines at even positions (column 20, row 30)."""
    art = np.full((64, 64, 3), 255, np.uint8)
    art[8:56, 8:56] = (200, 40, 40)
    yy, xx = np.mgrid[0:64, 0:64]
    ring = ((yy >= 8) & (yy < 56) & (xx >= 8) & (xx < 56)) & ~((yy >= 10) & (yy < 54) & (xx >= 10) & (xx < 54))
    art[ring] = 255
    art[ring & ((xx + yy) % 2 == 1)] = 0
    art[10:54, 20] = 0
    art[30, 10:54] = 0
    return art


def test_nearest_reduces_with_box_so_outlines_survive(tmp_path):
    art = _outlined_sprite()
    p = tmp_path / "sprite.png"
    Image.fromarray(art).save(p)
    data = prepare([p], opts(resolution=32, filter="nearest"))
    small = data.images[0]
    assert (small == one(p, resolution=32, filter="box")).all()  # the area filter did the reduction
    assert data.reduced.tolist() == [True]

    # Plain nearest (the old behaviour) samples every second pixel and loses the outline and the lines whole.
    old = np.asarray(Image.fromarray(art).resize((32, 32), Image.Resampling.NEAREST))
    ring = np.zeros((32, 32), bool)
    ring[4:28, 4:28] = True
    ring[5:27, 5:27] = False  # the 1-px ring of 2x2 checkerboard blocks
    assert (old[ring] == 255).all()  # every outline pixel dropped
    assert not (old[5:27, 10] == 0).any() and not (old[15, 5:27] == 0).any()  # both lines gone

    # Box keeps every outline pixel (each 2x2 checkerboard block is half black: mid grey) and both lines.
    assert ((small[ring] > 100) & (small[ring] < 160)).all()
    assert (small[ring].max(axis=1) - small[ring].min(axis=1) <= 1).all()  # grey, not speckled colours
    fill_r = 200
    assert (small[5:27, 10, 0] < fill_r * 0.6).all() and (small[15, 5:27, 0] < fill_r * 0.6).all()


def test_nearest_enlarges_exactly_and_reduces_per_axis(tmp_path):
    art = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    p = tmp_path / "small.png"
    Image.fromarray(art).save(p)
    data = prepare([p], opts(resolution=64, filter="nearest"))
    assert (data.images[0] == np.repeat(np.repeat(art, 4, 0), 4, 1)).all()  # pixel blocks, no new colours
    assert data.reduced.tolist() == [False] and data.filter_note == ""

    # Stretching 64x16 to 32x32 reduces the width (box) and enlarges the height (nearest: rows repeat).
    wide = np.random.default_rng(2).integers(0, 256, (16, 64, 3), dtype=np.uint8)
    q = tmp_path / "wide.png"
    Image.fromarray(wide).save(q)
    out = one(q, resolution=32, fit="stretch", filter="nearest")
    by_area = np.asarray(Image.fromarray(wide).resize((32, 16), Image.Resampling.BOX))
    assert (out == np.repeat(by_area, 2, 0)).all()


def test_summary_says_how_many_images_box_reduced(tmp_path):
    from click.testing import CliRunner

    from ganforge.cli import main

    d = tmp_path / "art"
    d.mkdir()
    for i in range(2):
        Image.fromarray(_outlined_sprite()).save(d / f"big{i}.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "small.png")
    data = prepare([d], opts(resolution=32, filter="nearest"))
    assert data.reduced.tolist() == [True, True, False]
    assert data.filter_note == "filter: nearest for enlarging, box (area) for 2 images that were reduced"
    assert prepare([d], opts(resolution=32, filter="box")).filter_note == ""  # only nearest is changed

    r = CliRunner().invoke(main, ["prepare", str(d), str(tmp_path / "out.zip"), "--resolution", "32", "--filter", "nearest", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "filter: nearest for enlarging, box (area) for 2 images that were reduced" in r.output
    help_text = CliRunner().invoke(main, ["prepare", "--help"]).output
    assert "reduced with box" in " ".join(help_text.split())


def test_two_sided_summary_counts_reduced_images_on_both_sides(tmp_path):
    from ganforge.data.prepare import prepare_two_sided

    for side, size in (("trainA", 64), ("trainB", 64)):
        (tmp_path / "u" / side).mkdir(parents=True)
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / "u" / side / "0.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "u" / "trainB" / "1.png")
    data = prepare_two_sided(tmp_path / "u", "unpaired", opts(resolution=16, filter="nearest"))
    assert data.filter_note == "filter: nearest for enlarging, box (area) for 2 images that were reduced"


def test_automatic_resolution_is_the_most_common_size(tmp_path):
    d = tmp_path / "auto"
    for i in range(3):
        solid(d / f"a{i}.png", size=(24, 12))
    solid(d / "b.png", size=(64, 64))
    assert prepare([d], PrepareOptions()).images.shape == (4, 24, 24, 3)
    assert prepare([d], PrepareOptions(fit="crop")).resolution == 12


# ---- dedupe -------------------------------------------------------------------------------------------------


def test_dedupe_compares_prepared_pixels_and_keeps_the_first(tmp_path):
    d = tmp_path / "dups"
    art = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    d.mkdir()
    Image.fromarray(art).save(d / "a.png")
    Image.fromarray(art).save(d / "c.png")
    Image.fromarray(np.repeat(np.repeat(art, 2, 0), 2, 1)).save(d / "b.png")  # same after a nearest downscale
    solid(d / "z.png", BLUE)
    data = prepare([d], opts(filter="nearest", dedupe=True))
    assert [f.split("/")[-1] for f in data.files] == ["a.png", "z.png"]
    assert [(x.split("/")[-1], k.split("/")[-1]) for x, k in data.duplicates] == [
        ("b.png", "a.png"),
        ("c.png", "a.png"),
    ]
    assert data.summary()["duplicates"] == 2
    assert len(prepare([d], opts(filter="nearest")).files) == 4  # off by default


# ---- labels -------------------------------------------------------------------------------------------------


def test_labels_from_sub_folders(tmp_path):
    d = tmp_path / "pets"
    solid(d / "dogs" / "d1.png", BLUE)
    solid(d / "cats" / "c1.png")
    solid(d / "cats" / "deeper" / "c2.png")  # the first sub-folder names the class
    solid(d / "loose.png")
    data = prepare([d], opts())
    assert data.class_names == ["cats", "dogs"]
    assert [f.split("pets/")[-1] for f in data.files] == ["cats/c1.png", "cats/deeper/c2.png", "dogs/d1.png"]
    assert data.labels.tolist() == [0, 0, 1] and data.labels.dtype == np.int64
    assert [(f.split("/")[-1], r.split(":")[0]) for f, r in data.skipped] == [("loose.png", "no label")]
    unlabelled = prepare([d], opts(folder_labels=False))
    assert unlabelled.labels is None and len(unlabelled.files) == 4 and unlabelled.summary()["classes"] == 0


def test_one_sub_folder_is_not_a_labelling(tmp_path):
    solid(tmp_path / "root" / "images" / "a.png")
    solid(tmp_path / "root" / "images" / "b.png")
    data = prepare([tmp_path / "root"], opts())
    assert data.labels is None and data.class_names == [] and len(data.files) == 2


def labelled_folder(tmp_path):
    """dataset/images/{a,b,c,d}.png plus dataset/images/sub/e.png: labels files live in dataset/."""
    root = tmp_path / "dataset"
    for name, colour in [("a", RED), ("b", BLUE), ("c", GREEN), ("d", (9, 9, 9))]:
        solid(root / "images" / f"{name}.png", colour)
    solid(root / "images" / "sub" / "e.png", (1, 2, 3))
    return root


def test_labels_from_csv_with_paths_relative_to_the_labels_file_or_the_source_or_bare_names(tmp_path):
    root = labelled_folder(tmp_path)
    (root / "labels.csv").write_text(
        "file,label\nimages/a.png,fruit\nb.png,veg\n./images/c.png,fruit\nsub/e.png,veg\nimages/missing.png,veg\n"
    )
    data = prepare([root / "images"], opts(labels=str(root / "labels.csv")))
    assert data.class_names == ["fruit", "veg"]
    assert [f.split("/")[-1] for f in data.files] == ["a.png", "b.png", "c.png", "e.png"]
    assert data.labels.tolist() == [0, 1, 0, 1]
    assert data.skipped == [(str(root / "images" / "d.png"), "no label in labels.csv")]
    # the labels file wins over sub-folder names
    assert "sub" not in data.class_names


def test_labels_csv_without_header_and_numeric_classes_sort_numerically(tmp_path):
    root = labelled_folder(tmp_path)
    (root / "l.csv").write_text("a.png,10\nb.png,2\nc.png,2\nd.png,1\ne.png,10\n")
    data = prepare([root / "images"], opts(labels=str(root / "l.csv")))
    assert data.class_names == ["1", "2", "10"]
    assert data.labels.tolist() == [2, 1, 1, 0, 2]


def test_labels_from_json_dict_pairs_and_objects(tmp_path):
    root = labelled_folder(tmp_path)
    names = ["a.png", "b.png", "c.png", "d.png", "sub/e.png"]
    (root / "dict.json").write_text(json.dumps({n: ("x" if i % 2 else "y") for i, n in enumerate(names)}))
    (root / "pairs.json").write_text(json.dumps([[f"images/{n}", "x" if i % 2 else "y"] for i, n in enumerate(names)]))
    (root / "objects.json").write_text(
        json.dumps({n: {"name": n, "category": "x" if i % 2 else "y"} for i, n in enumerate(names)})
    )
    for f in ("dict.json", "pairs.json", "objects.json"):
        data = prepare([root / "images"], opts(labels=str(root / f)))
        assert data.class_names == ["x", "y"] and data.labels.tolist() == [1, 0, 1, 0, 1], f
    by_name = prepare([root / "images"], opts(labels=str(root / "objects.json"), label_key="name"))
    assert len(by_name.class_names) == 5
    with pytest.raises(DataError, match="--label-key"):
        prepare([root / "images"], opts(labels=str(root / "objects.json"), label_key="colour"))


def test_ambiguous_bare_names_are_skipped(tmp_path):
    root = tmp_path / "two"
    solid(root / "x" / "same.png")
    solid(root / "y" / "same.png", BLUE)
    (tmp_path / "l.csv").write_text("same.png,a\nx/same.png,b\n")
    data = prepare([root], opts(labels=str(tmp_path / "l.csv")))
    # x/same.png matches its full entry; y/same.png only matches the bare name (fine, unambiguous for it)
    assert data.labels.tolist() == [1, 0] and data.class_names == ["a", "b"]
    (tmp_path / "m.csv").write_text("same.png,a\nsame.png,b\n")
    with pytest.raises(DataError, match="ambiguous"):
        prepare([root], opts(labels=str(tmp_path / "m.csv")))


# ---- sources ------------------------------------------------------------------------------------------------


def test_zip_source_with_a_wrapper_folder(tmp_path):
    z = tmp_path / "pets.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, colour in [("dogs/d.png", BLUE), ("cats/c.png", RED), ("cats/c2.png", GREEN)]:
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), colour).save(buf, "PNG")
            zf.writestr(f"pets/{name}", buf.getvalue())
        zf.writestr("pets/README.txt", "hi")
        zf.writestr("__MACOSX/pets/._c.png", b"junk")
        zf.writestr("pets/broken.png", b"not a png")
    data = prepare([z], opts())
    assert data.class_names == ["cats", "dogs"] and data.labels.tolist() == [0, 0, 1]
    assert data.files[0] == f"{z}:pets/cats/c.png"
    assert len(data.ignored) == 2 and data.skipped[0][0].endswith(":pets/broken.png")
    assert tuple(data.images[2, 4, 4]) == BLUE


def test_list_of_files_and_mixed_sources(tmp_path):
    a = solid(tmp_path / "a.png", RED)
    b = solid(tmp_path / "b.jpg", BLUE, quality=100)
    txt = tmp_path / "c.txt"
    txt.write_text("x")
    folder = tmp_path / "more"
    solid(folder / "m.png", GREEN)
    data = prepare([b, a, txt, folder], opts())
    assert data.files == [str(b), str(a), str(folder / "m.png")]  # sources keep their order
    assert data.labels is None and data.ignored == [str(txt)]
    assert data.images.shape == (3, 8, 8, 3)


def test_workers_give_the_same_result(tmp_path):
    d = tmp_path / "many"
    rng = np.random.default_rng(0)
    d.mkdir()
    for i in range(70):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    (d / "bad.png").write_bytes(b"\x89PNG garbage")
    one_proc = prepare([d], opts(workers=1))
    two = prepare([d], opts(workers=2))
    assert (one_proc.images == two.images).all() and one_proc.files == two.files and one_proc.skipped == two.skipped


def test_load_dataset_prepares_a_raw_folder(tmp_path):
    solid(tmp_path / "raw" / "x" / "a.png")
    solid(tmp_path / "raw" / "y" / "b.png", BLUE, size=(16, 16))
    ds = load_dataset(str(tmp_path / "raw"))
    assert tuple(ds.images.shape) == (2, 3, 16, 16) and ds.class_names == ["x", "y"]


# ---- errors a user can cause --------------------------------------------------------------------------------


def test_user_errors_name_the_problem_and_the_fix(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        prepare([tmp_path / "nope"], opts())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        prepare([tmp_path / "empty"], opts())
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"no image files .* looked at 1 file \(a\.txt\)"):
        prepare([tmp_path / "texts"], opts())
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"nope")
    (bad / "z.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"looked at 4 image files .*3 not a readable image, 1 empty file") as e:
        prepare([bad], opts())
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="labels file .* does not exist"):
        prepare([tmp_path / "texts"], opts(labels=str(tmp_path / "missing.csv")))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"resolution": 2}, "use 4 or more"),
        ({"resolution": 64.5}, "whole number"),
        ({"fit": "zoom"}, "unknown --fit 'zoom': use one of pad, crop, stretch"),
        ({"filter": "sinc"}, "unknown --filter"),
        ({"background": "not-a-colour"}, "unknown --background"),
        ({"channels": 4}, "--channels"),
    ],
)
def test_bad_options(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        prepare([tmp_path / "does-not-matter"], PrepareOptions(**kw))


def test_non_power_of_two_resolution_is_allowed(tmp_path):
    assert prepare([solid(tmp_path / "a.png")], opts(resolution=48)).images.shape == (1, 48, 48, 3)


# ---- earlier outputs inside a source -------------------------------------------------------------------


def test_datasets_ganforge_wrote_inside_a_source_are_not_read_again(tmp_path):
    """The reliability issue: a second dataset written from a folder holding the first reported 80 images, not 40."""
    from ganforge.data.prepare import prepare_to

    src = tmp_path / "faces"
    for i in range(40):
        solid(src / f"{i:02d}.png", colour=(i * 6, 0, 0), size=(4, 4))
    assert len(prepare_to([src], tmp_path / "first", opts(resolution=4)).files) == 40
    shutil.copytree(tmp_path / "first", src / "with-marker")  # what this version writes
    shutil.copytree(tmp_path / "first", src / "old", ignore=shutil.ignore_patterns(".ganforge-dataset"))
    shutil.copytree(tmp_path / "first", src / "deeper" / ".out.k3j_9xq2.tmp")  # a killed run's temporary folder
    solid(src / "deeper" / "40.png", colour=BLUE, size=(4, 4))
    data = prepare([src], opts(resolution=4))
    assert len(data.files) == 41 and data.ignored == []
    assert [folder for folder, _ in data.in_datasets] == [
        str(src / "old"), str(src / "with-marker"), str(src / "deeper" / ".out.k3j_9xq2.tmp")
    ]  # fmt: skip
    assert data.summary()["in_datasets"] == 41 + 42 + 42  # 40 images, dataset.json and (not in "old") the marker

    # A folder that merely has a dataset.json, or images named like ours without one, is a user's: read it.
    solid(src / "mine" / "00000" / "img00000000.png", colour=GREEN, size=(4, 4))
    (src / "notes").mkdir()
    (src / "notes" / "dataset.json").write_text("{}")
    solid(src / "notes" / "a.png", colour=GREEN, size=(4, 4))
    assert len(prepare([src], opts(resolution=4, folder_labels=False)).files) == 43

    # A source that is itself a dataset is read as usual (re-preparing at another size).
    again = prepare([tmp_path / "first"], opts(resolution=8))
    assert len(again.files) == 40 and again.in_datasets == []


def test_a_source_holding_only_an_earlier_dataset_says_so(tmp_path):
    from helpers import make_archive

    make_archive(tmp_path / "src" / "old", n=3, res=4)
    with pytest.raises(DataError, match=r"outside the ganforge datasets inside it \(.*old\); point at the folder"):
        prepare([tmp_path / "src"], opts())
