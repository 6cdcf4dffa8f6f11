"""`ganforge prepare`, in-process: the summary it prints, the files it writes, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.archive import read_archive


def run(args):
    return CliRunner().invoke(main, ["prepare", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def folder(tmp_path):
    """shapes/{round,square}/*.png of mixed sizes and modes, one corrupt file and a stray text file."""
    root = tmp_path / "shapes"
    for cls, n in (("round", 3), ("square", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGBA", (10 + i, 8), (40 * i, 100, 200, 255 if i else 0)).save(root / cls / f"{i}.png")
    (root / "square" / "bad.png").write_bytes(b"garbage")
    (root / "README.txt").write_text("hi")
    return root


def assert_one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_prepare_writes_a_dataset_and_prints_a_summary(tmp_path, folder):
    dest = tmp_path / "shapes.zip"
    r = run([folder, dest, "--resolution", "16", "--quiet"])
    assert r.exit_code == 0, r.output
    assert f"wrote {dest}: 5 images, 16x16 RGB" in r.stdout
    assert "kept 5, skipped 1, duplicates 0, ignored 1, classes 2 (round, square)" in r.stdout
    assert "skipped " in r.stdout and "bad.png: not a readable image" in r.stdout
    assert f"report: {tmp_path / 'shapes-report.csv'}" in r.stdout
    arc = read_archive(dest)
    assert arc.images.shape == (5, 16, 16, 3) and arc.class_names == ["round", "square"]
    assert tuple(arc.images[0, 0, 0]) == (255, 255, 255)  # transparent -> white

    r = run([folder, dest, "--resolution", "16", "--quiet"])
    assert_one_line_error(r, "already exists", "--overwrite")
    r = run([folder, dest, "--overwrite", "--resolution", "8", "--background", "black", "--channels", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    arc = read_archive(dest)
    assert arc.images.shape == (5, 8, 8, 1) and arc.images[0, 0, 0, 0] == 0


def test_no_progress_bar_off_a_terminal(tmp_path, folder):
    # CliRunner's streams are not terminals: a log gets the summary, not bar redraws.
    r = run([folder, tmp_path / "out", "--resolution", "8"])
    assert r.exit_code == 0, r.output
    assert "reading" not in r.stdout and "\r" not in r.stderr
    assert (tmp_path / "out" / "dataset.json").exists()


def test_progress_bar_on_a_terminal_goes_to_stderr(tmp_path, folder, monkeypatch, capsys):
    import io
    import sys

    from ganforge.data.prepare import PrepareOptions, prepare

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    prepare([folder], PrepareOptions(resolution=8), progress=True)
    assert "reading" in err.getvalue()
    assert "reading" not in capsys.readouterr().out


def test_files_as_sources_with_options(tmp_path):
    art = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    a, b = tmp_path / "a.png", tmp_path / "b.bmp"
    Image.fromarray(art).save(a)
    Image.fromarray(art).save(b)
    r = run([a, b, tmp_path / "art", "--resolution", "12", "--filter", "nearest", "--dedupe", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "kept 1, skipped 0, duplicates 1" in r.stdout and "classes 0 (unlabelled)" in r.stdout
    assert "note:" in r.stderr and "power of two" in r.stderr
    img = read_archive(tmp_path / "art").images[0]
    assert (img == np.repeat(np.repeat(art, 3, 0), 3, 1)).all()


def test_labels_file(tmp_path, folder):
    (tmp_path / "labels.csv").write_text("file,label\nshapes/round/0.png,a\nround/1.png,b\n2.png,b\n")
    dest = tmp_path / "l.zip"
    r = run([folder, dest, "--resolution", "8", "--labels", tmp_path / "labels.csv", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "kept 3" in r.stdout and "classes 2 (a, b)" in r.stdout and "no label in labels.csv" in r.stdout
    assert read_archive(dest).labels.tolist() == [0, 1, 1]


def test_help_shows_defaults_and_the_power_of_two_advice():
    r = CliRunner().invoke(main, ["prepare", "--help"])
    assert r.exit_code == 0
    for text in ("SOURCE... DEST", "[default: pad]", "[default: lanczos]", "[default: white]", "power of two"):
        assert text in " ".join(r.output.split()), text


@pytest.mark.parametrize(
    "args, needles",
    [
        (["{tmp}/missing", "{tmp}/o.zip"], ["no such file or folder", "missing"]),
        (["{tmp}/empty", "{tmp}/o.zip"], ["empty folder"]),
        (["{tmp}/junk", "{tmp}/o.zip"], ["no usable image", "looked at 2 image files", "2 not a readable image"]),
        (["{tmp}/empty"], ["at least one SOURCE and a DEST"]),
        (["{shapes}", "{tmp}/o.zip", "--resolution", "2"], ["--resolution 2", "4 or more"]),
        (["{shapes}", "{tmp}/o.zip", "--background", "nope"], ["--background", "#rrggbb"]),
        (["{shapes}", "{tmp}/o.zip", "--labels", "{tmp}/none.csv"], ["labels file", "does not exist"]),
        (["{shapes}", "{tmp}/o.png"], ["looks like an image file"]),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, folder, args, needles):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"nope")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"nope")
    r = run([*(a.format(tmp=tmp_path, shapes=folder) for a in args), "--quiet"])
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o.zip").exists()


def test_unknown_choice_is_a_usage_error(tmp_path, folder):
    r = CliRunner().invoke(main, ["prepare", str(folder), str(tmp_path / "o.zip"), "--fit", "zoom"])
    assert r.exit_code == 2 and "Invalid value for '--fit'" in r.output and "Traceback" not in r.output


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "parent", "child", "dotdot"])
def test_overwrite_never_destroys_the_source(tmp_path, folder, where):
    """The reliability issue: `prepare SRC SRC --overwrite` (or SRC's parent) deleted the images and exited 0."""
    (tmp_path / "unrelated.txt").write_text("mine")
    dest = {
        "same": folder,
        "parent": tmp_path,
        "child": folder / "round",
        "dotdot": folder / "round" / ".." / ".." / "shapes",
    }[where]
    before = tree(tmp_path)
    r = run([folder, dest, "--overwrite", "--resolution", "8", "--quiet"])
    assert_one_line_error(r, str(dest), str(folder), "choose a destination outside")
    assert tree(tmp_path) == before


def test_overwrite_of_something_ganforge_did_not_write_is_refused(tmp_path, folder):
    mine = tmp_path / "mywork"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    r = run([folder, mine, "--overwrite", "--quiet"])
    assert_one_line_error(r, f"{mine} is not a dataset ganforge wrote", "remove it yourself or choose another")
    assert tree(mine) == {"thesis.tex": b"x"}
    out = tmp_path / "out"
    assert run([folder, out, "--resolution", "8", "--quiet"]).exit_code == 0
    assert (out / ".ganforge-dataset").is_file()
    r = run([folder, out, "--overwrite", "--resolution", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    assert read_archive(out).images.shape[1] == 4


def test_an_earlier_dataset_inside_the_source_is_skipped_with_a_note(tmp_path, folder):
    assert run([folder, tmp_path / "first", "--resolution", "8", "--quiet"]).exit_code == 0
    (tmp_path / "first").rename(folder / "first")  # e.g. written there before DEST inside SRC was refused
    r = run([folder, tmp_path / "second", "--resolution", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "kept 5, skipped 1, duplicates 0, ignored 1, classes 2 (round, square)" in r.stdout
    assert f"skipped 7 files in ganforge datasets inside the source ({folder / 'first'})" in r.stdout
    assert "in-dataset" in (tmp_path / "second-report.csv").read_text()


# ---------------------------------------------------------------------------------------------------
# --paired / --unpaired


def _edge_and_fill(rng, side=12):
    fill = np.full((side, side, 3), 255, np.uint8)
    y, x = rng.integers(0, side // 2, 2)
    fill[y : y + side // 2, x : x + side // 2] = rng.integers(0, 200, 3)
    edge = np.where((fill == 255).all(-1, keepdims=True), 255, 0).astype(np.uint8).repeat(3, -1)
    return edge, fill


@pytest.fixture
def two_folders(tmp_path):
    """e2p/edges/*.png + e2p/photos/*.png (5 matched pairs) and one photo without a partner."""
    rng = np.random.default_rng(0)
    root = tmp_path / "e2p"
    (root / "edges").mkdir(parents=True)
    (root / "photos").mkdir()
    for i in range(5):
        edge, fill = _edge_and_fill(rng)
        Image.fromarray(edge).save(root / "edges" / f"{i:03d}.png")
        Image.fromarray(fill).save(root / "photos" / f"{i:03d}.png")
    Image.fromarray(fill).save(root / "photos" / "unmatched.png")
    return root


def test_prepare_paired_from_two_sub_folders(tmp_path, two_folders):
    from ganforge.data.archive import read_paired_archive

    dest = tmp_path / "e2p.zip"
    r = run([two_folders, dest, "--paired", "--resolution", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    assert f"wrote {dest}: paired dataset, 8x8 RGB" in r.stdout
    assert "paired: 5 pairs (edges -> photos), 1 skipped" in r.stdout
    assert "unmatched.png: no partner in edges/" in r.stdout and "report:" in r.stdout
    sides = read_paired_archive(dest)
    assert sides.a.shape == sides.b.shape == (5, 8, 8, 3) and sides.domains == ["edges", "photos"]
    assert "no partner in edges/" in (tmp_path / "e2p-report.csv").read_text()


def test_prepare_paired_from_side_by_side_images(tmp_path):
    from ganforge.data.dataset import load_dataset

    rng = np.random.default_rng(1)
    root = tmp_path / "facades"
    root.mkdir()
    pairs = [_edge_and_fill(rng, 16) for _ in range(3)]
    for i, (edge, fill) in enumerate(pairs):
        Image.fromarray(np.concatenate([edge, fill], axis=1)).save(root / f"{i}.png")
    Image.fromarray(pairs[0][0]).save(root / "square.png")
    r = run([root, tmp_path / "facades.zip", "--paired", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "16x16 RGB" in r.stdout and "paired: 3 pairs (A -> B), 1 skipped" in r.stdout
    assert "square.png: not side by side" in r.stdout
    ds = load_dataset(tmp_path / "facades.zip", kinds=("paired",))
    assert (ds.source.permute(0, 2, 3, 1).numpy() == np.stack([p[0] for p in pairs])).all()
    assert (ds.target.permute(0, 2, 3, 1).numpy() == np.stack([p[1] for p in pairs])).all()


def test_prepare_unpaired_from_train_a_and_train_b(tmp_path, two_folders):
    from ganforge.data.archive import read_unpaired_archive

    (two_folders / "edges").rename(two_folders / "trainA")
    (two_folders / "photos").rename(two_folders / "trainB")
    dest = tmp_path / "u"
    r = run([two_folders, dest, "--unpaired", "--resolution", "8", "--channels", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "8x8 grayscale" in r.stdout and "unpaired: 5 images in trainA, 6 images in trainB, 0 skipped" in r.stdout
    sides = read_unpaired_archive(dest)
    assert sides.a.shape == (5, 8, 8, 1) and sides.b.shape == (6, 8, 8, 1)
    assert (dest / ".ganforge-dataset").is_file()
    r = run([two_folders, dest, "--unpaired", "--resolution", "4", "--overwrite", "--quiet"])
    assert r.exit_code == 0, r.output
    assert read_unpaired_archive(dest).a.shape == (5, 4, 4, 3)


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--paired", "--unpaired"], ["--paired or --unpaired, not both"]),
        (["--paired", "--labels", "{tmp}/l.csv"], ["--labels does not apply to --paired data"]),
        (["--unpaired", "{tmp}/e2p/edges"], ["--unpaired takes one SOURCE folder"]),
    ],
)
def test_two_sided_errors_are_one_line(tmp_path, two_folders, extra, needles):
    args = [two_folders, *(a.format(tmp=tmp_path) for a in extra), tmp_path / "o.zip", "--quiet"]
    assert_one_line_error(run(args), *needles)
    assert_one_line_error(run([two_folders / "edges", tmp_path / "o.zip", "--unpaired", "--quiet"]), "two sub-folders")
    assert not (tmp_path / "o.zip").exists()


# Issue 24: a destination named `.` (or `..`, or ending in them) had no name to put a report beside:
# `prepare src/sub . --overwrite` was a traceback ("PosixPath('.') has an empty name").
@pytest.mark.parametrize("dest", [".", "./", "..", "sub/.."])
@pytest.mark.parametrize("overwrite", [False, True])
def test_dot_destination_holding_the_source_is_one_line(tmp_path, folder, monkeypatch, dest, overwrite):
    monkeypatch.chdir(folder)
    before = sorted(p.name for p in folder.rglob("*"))
    (folder / "sub").mkdir(exist_ok=True)
    r = run(["round", dest, "--quiet"] + (["--overwrite"] if overwrite else []))
    assert_one_line_error(r, "contains the source round", "choose a destination outside")
    assert sorted(p.name for p in folder.rglob("*") if p.name != "sub") == before


@pytest.mark.parametrize("dest", [".", "./", "ds/.."])
def test_the_current_folder_is_never_a_destination(tmp_path, folder, monkeypatch, dest):
    """The cwd (not holding the source) is refused too: a dataset replaces its destination."""
    here = tmp_path / "elsewhere"
    (here / "ds").mkdir(parents=True)
    monkeypatch.chdir(here)
    r = run([folder, dest, "--quiet", "--overwrite"])
    assert_one_line_error(r, "is the current folder", str(here), "dataset.zip")
    assert sorted(p.name for p in here.iterdir()) == ["ds"]
    monkeypatch.chdir(here / "ds")
    assert_one_line_error(run([folder, "..", "--quiet"]), "holds the current folder", str(here))


def test_a_dataset_folder_that_is_the_cwd_is_not_replaced(tmp_path, folder, monkeypatch):
    ds = tmp_path / "ds"
    r = run([folder, ds, "--resolution", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(ds)
    r = run([folder, ".", "--resolution", "8", "--quiet", "--overwrite"])
    assert_one_line_error(r, "is the current folder", str(ds))
    assert read_archive(ds).images.shape == (5, 8, 8, 3)


def test_dot_dot_destination_gets_a_named_report(tmp_path, folder, monkeypatch):
    """`out/..`-style paths are resolved before naming things: the report lands next to the real folder."""
    work = tmp_path / "w"
    (work / "a").mkdir(parents=True)
    monkeypatch.chdir(work / "a")
    r = run([folder, "../new/../ds", "--resolution", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    assert (work / "ds").is_dir() and (work / "ds-report.csv").is_file()
