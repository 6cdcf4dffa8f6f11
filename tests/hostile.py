"""A corpus of hostile and broken image inputs, built by the tests themselves (no committed binaries), and
the checks every command must pass on it: each input is used or skipped with its reason, the run goes
on, nothing is written outside the destination, and what is written is a valid dataset.

Used by tests/test_hostile.py and benchmarks/hostile_inputs.py (which imports this file by path).

`build_corpus(root)` writes:

- `root/raw/`: a few good 16x16 images (so that every command has something to work with) beside one
  file per hostile case of `FOLDER_CASES` (truncated PNG/JPEG, zero bytes, text named .png, a PNG whose
  header claims 100,000 x 100,000 pixels, CMYK JPEG, 16-bit PNG, LA and palette-transparency PNGs,
  animated GIF/APNG, an EXIF-rotated JPEG, 1x10,000 strips, chmod 000, a symlink loop, a FIFO, ...);
- `root/hostile.zip`: good members beside the zip cases of `ZIP_CASES` (`../` and absolute member
  names, a duplicate name, a zip bomb, a member whose header lies about its size, an encrypted member).

Expectations are data (`Case.expect`, `Case.reason`): "kept" (used as an image), "skipped" (left out
with a reason in the report that contains `reason`) or "ignored" (not an image file; listed as such).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GOOD = 8  # good 16x16 images in each source: the most common size, so automatic resolution is 16
RES = 16
ABSOLUTE_MEMBER = "/tmp/ganforge-hostile-absolute.png"  # a zip member name that must never become a file
BOMB_BYTES = 64 * 2**20  # zip bomb member: 64 MiB of zeros, deflated about 1000:1 (64 KiB in the zip)


@dataclass(frozen=True)
class Case:
    """One hostile input and what ganforge must do with it."""

    name: str  # file name in raw/ (or member name in hostile.zip)
    what: str  # one line for reports
    expect: str  # "kept" | "skipped" | "ignored"
    reason: str = ""  # for "skipped": text the report's reason must contain (case-insensitive)
    unavailable: str = ""  # why this case could not be made here (e.g. permissions do not bite as root)
    also_kept: int = 0  # images it brings that are kept all the same (the later of two same-named members)


@dataclass
class Corpus:
    root: Path
    folder: Path  # raw/: good images + FOLDER_CASES
    zip: Path  # hostile.zip: good members + ZIP_CASES
    folder_cases: list[Case] = field(default_factory=list)
    zip_cases: list[Case] = field(default_factory=list)
    good_names: list[str] = field(default_factory=list)

    @property
    def cases(self) -> list[Case]:
        return self.folder_cases + self.zip_cases


# ---------------------------------------------------------------------------------------------------
# Small image makers (bytes, so that the zip can hold the same files).


def good_image(i: int, res: int = RES) -> np.ndarray:
    """A distinct uint8 (res, res, 3) image: a coloured square on white."""
    rng = np.random.default_rng(1000 + i)
    img = np.full((res, res, 3), 255, np.uint8)
    a, b = sorted(rng.integers(1, res - 1, 2).tolist())
    img[a : b + 1, a : b + 1] = rng.integers(0, 200, 3)
    return img


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height RGB pixels: a decompression bomb's header (PNG spec, 11.2.2)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, no filter, no interlace
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    )


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(good_image(50 + k)) for k in range(3)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _exif_rotated() -> bytes:
    im = Image.fromarray(np.concatenate([good_image(60), good_image(61)], axis=1))  # 32x16
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view (EXIF 2.3, tag 274)
    return _save(im, "JPEG", exif=exif.tobytes(), quality=95)


def _palette_transparent() -> bytes:
    im = Image.fromarray(good_image(70)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _save(im, "PNG", transparency=0)


def _la() -> bytes:
    g = good_image(71)[:, :, 0]
    alpha = np.where(g < 255, 255, 0).astype(np.uint8)
    return _save(Image.fromarray(np.stack([g, alpha], -1), "LA"), "PNG")


def _sixteen_bit() -> bytes:
    ramp = (np.arange(RES * RES, dtype=np.uint16).reshape(RES, RES) * 257).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")  # PIL picks mode I;16


def _float_tiff_with_nan() -> bytes:
    arr = np.linspace(0, 1, RES * RES, dtype=np.float32).reshape(RES, RES)
    arr[0, 0], arr[1, 1] = np.nan, np.inf
    return _save(Image.fromarray(arr), "TIFF")  # mode F


def _truncated(fmt: str) -> bytes:
    data = _save(Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)), fmt)
    return data[: len(data) // 2]


# name -> (bytes maker, what, expect, reason): the plain files of the corpus, in raw/ and in hostile.zip.
_FILES: list[tuple[str, object, str, str, str]] = [
    ("truncated.png", lambda: _truncated("PNG"), "PNG cut in half", "skipped", "truncated"),
    ("truncated.jpg", lambda: _truncated("JPEG"), "JPEG cut in half", "skipped", "truncated"),
    ("empty.png", lambda: b"", "zero-byte .png", "skipped", "empty file"),
    ("empty.jpg", lambda: b"", "zero-byte .jpg", "skipped", "empty file"),
    (
        "text.png",
        lambda: b"just some text, not a PNG\n" * 20,
        "text file named .png",
        "skipped",
        "not a readable image",
    ),
    (
        "html.jpg",
        lambda: b"<html><body>404 Not Found</body></html>",
        "an error page saved as .jpg",
        "skipped",
        "not a readable image",
    ),
    (
        "bomb-100000x100000.png",
        lambda: png_claiming(100_000, 100_000),
        "PNG header claiming 100,000 x 100,000 pixels",
        "skipped",
        "pixel limit",
    ),
    (
        "bomb-10000x10000.png",
        lambda: png_claiming(10_000, 10_000),
        "PNG header claiming 10,000 x 10,000 pixels (under PIL's hard limit)",
        "skipped",
        "pixel limit",
    ),
    (
        "zero-width.png",
        lambda: png_claiming(0, 16),
        "PNG header claiming 0 x 16 pixels",
        "skipped",
        "not a readable image",
    ),
    ("cmyk.jpg", lambda: _save(Image.fromarray(good_image(80)).convert("CMYK"), "JPEG"), "CMYK JPEG", "kept", ""),
    ("gray16.png", _sixteen_bit, "16-bit grayscale PNG", "kept", ""),
    ("la.png", _la, "LA (gray + alpha) PNG", "kept", ""),
    ("palette-transparent.png", _palette_transparent, "palette PNG with a transparent index", "kept", ""),
    ("animated.gif", lambda: _animated("GIF"), "animated GIF (3 frames)", "kept", ""),
    ("animated.png", lambda: _animated("PNG"), "animated PNG (APNG, 3 frames)", "kept", ""),
    ("exif-rotated.jpg", _exif_rotated, "JPEG with EXIF orientation 6", "kept", ""),
    (
        "strip-1x10000.png",
        lambda: _save(Image.new("RGB", (1, 10_000), (200, 30, 30)), "PNG"),
        "1 x 10,000 px strip",
        "kept",
        "",
    ),
    (
        "strip-10000x1.png",
        lambda: _save(Image.new("RGB", (10_000, 1), (30, 30, 200)), "PNG"),
        "10,000 x 1 px strip",
        "kept",
        "",
    ),
    ("float-nan.tif", _float_tiff_with_nan, "float TIFF holding NaN and infinity", "kept", ""),
    ("png-named.webp", lambda: _save(Image.fromarray(good_image(90)), "PNG"), "PNG with a .webp name", "kept", ""),
    ("UPPER.PNG", lambda: _save(Image.fromarray(good_image(91)), "PNG"), "upper-case extension", "kept", ""),
    ("notes.txt", lambda: b"not an image", "a text file", "ignored", ""),
    (".hidden.png", lambda: _save(Image.fromarray(good_image(92)), "PNG"), "hidden file", "ignored", ""),
    (
        "nested.zip",
        lambda: _zip_bytes({"inner.png": _save(Image.fromarray(good_image(93)), "PNG")}),
        "a zip inside the source",
        "ignored",
        "",
    ),
]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _folder_only(folder: Path) -> list[Case]:
    """Cases that need a file system: permissions, symlinks, a FIFO, a name that is not UTF-8."""
    cases = []
    unreadable = folder / "unreadable.png"
    unreadable.write_bytes(_save(Image.fromarray(good_image(100)), "PNG"))
    os.chmod(unreadable, 0)
    root_note = ""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        root_note = "running as root: file permissions do not stop root from reading, so chmod 000 cannot be tested"
    cases.append(Case("unreadable.png", "chmod 000", "skipped", "permission denied", root_note))
    try:
        os.symlink("loop-b.png", folder / "loop-a.png")
        os.symlink("loop-a.png", folder / "loop-b.png")
        os.symlink("does-not-exist.png", folder / "dangling.png")
        os.symlink(".", folder / "self-loop")  # a folder symlink to its own folder
        cases += [
            Case("loop-a.png", "symlink loop (a -> b -> a)", "skipped", "symbolic links"),
            Case("loop-b.png", "symlink loop (b -> a -> b)", "skipped", "symbolic links"),
            Case("dangling.png", "symlink to a missing file", "skipped", "no such file"),
        ]
        if os.path.exists("/dev/zero"):
            os.symlink("/dev/zero", folder / "dev-zero.png")
            cases.append(Case("dev-zero.png", "symlink to /dev/zero", "skipped", "not a regular file"))
    except (OSError, NotImplementedError):
        cases.append(Case("loop-a.png", "symlink loop", "skipped", "", "symlinks cannot be made here"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.png")  # opening it for reading would wait forever for a writer
        cases.append(Case("pipe.png", "FIFO named .png", "skipped", "not a regular file"))
    if sys.platform.startswith("linux"):
        raw = os.path.join(os.fsencode(folder), b"latin1-\xe9t\xe9.png")  # not valid UTF-8
        try:
            with open(raw, "wb") as f:
                f.write(_save(Image.fromarray(good_image(101)), "PNG"))
            cases.append(Case(os.fsdecode(b"latin1-\xe9t\xe9.png"), "file name that is not UTF-8", "kept", ""))
        except OSError:
            pass
    return cases


# ---------------------------------------------------------------------------------------------------
# Zip members.


def _patch_central(zip_path: Path, member: str, *, file_size: int | None = None, flag_bits: int | None = None) -> None:
    """Rewrite one member's central-directory entry (APPNOTE 4.3.12): what zip readers trust for sizes and flags."""
    data = bytearray(zip_path.read_bytes())
    name = member.encode()
    pos = 0
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + name_len]) == name:
            break
        pos += 4
    if flag_bits is not None:
        struct.pack_into("<H", data, pos + 8, flag_bits)
        local = struct.unpack_from("<I", data, pos + 42)[0]
        struct.pack_into("<H", data, local + 6, flag_bits)  # the local header's copy, which zipfile also checks
    if file_size is not None:
        struct.pack_into("<I", data, pos + 24, file_size)
    zip_path.write_bytes(bytes(data))


def _write_zip(path: Path, files: dict[str, bytes]) -> list[Case]:
    """hostile.zip: the good images, the plain-file cases, and the cases only a zip can hold."""
    cases: list[Case] = []
    good = _save(Image.fromarray(good_image(200)), "PNG")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("../../escape.png", _save(Image.fromarray(good_image(201)), "PNG"))
        cases.append(Case("../../escape.png", "member named ../../escape.png", "skipped", "unsafe name"))
        zf.writestr("a/../../../deep-escape.png", _save(Image.fromarray(good_image(202)), "PNG"))
        cases.append(
            Case("a/../../../deep-escape.png", "member named a/../../../deep-escape.png", "skipped", "unsafe name")
        )
        zf.writestr("..\\windows-escape.png", _save(Image.fromarray(good_image(203)), "PNG"))
        cases.append(Case("..\\windows-escape.png", "member named ..\\windows-escape.png", "skipped", "unsafe name"))
        info = zipfile.ZipInfo(ABSOLUTE_MEMBER)  # zipfile would strip the leading '/' from a plain name
        info.filename = ABSOLUTE_MEMBER
        zf.writestr(info, _save(Image.fromarray(good_image(204)), "PNG"))
        cases.append(Case(ABSOLUTE_MEMBER, "member with an absolute path", "skipped", "unsafe name"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
            zf.writestr("dup.png", good)
            zf.writestr("dup.png", _save(Image.fromarray(good_image(205)), "PNG"))
        cases.append(
            Case("dup.png", "two members named dup.png (the later one is read)", "skipped", "same name", also_kept=1)
        )
        bomb = zipfile.ZipInfo("bomb.png")
        bomb.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(bomb, "w", force_zip64=True) as f:
            zero = bytes(2**20)
            for _ in range(BOMB_BYTES // 2**20):
                f.write(zero)
        cases.append(
            Case("bomb.png", f"zip bomb: {BOMB_BYTES // 2**20} MiB of zeros in about 64 KiB", "skipped", "zip bomb")
        )
        zf.writestr("huge.png", good)
        cases.append(Case("huge.png", "member whose header declares 3 GiB", "skipped", "limit"))
        zf.writestr("lying.png", _save(Image.fromarray(good_image(206)), "PNG"))
        cases.append(
            Case("lying.png", "member whose header declares fewer bytes than it holds", "skipped", "cannot extract")
        )
        zf.writestr("encrypted.png", good)
        cases.append(Case("encrypted.png", "member flagged as encrypted", "skipped", "password"))
        zf.writestr("__MACOSX/._good.png", b"\0\5\26\7 resource fork")
        cases.append(Case("__MACOSX/._good.png", "macOS resource-fork debris", "ignored", ""))
    _patch_central(path, "huge.png", file_size=3 * 2**30)
    _patch_central(path, "lying.png", file_size=40)
    _patch_central(path, "encrypted.png", flag_bits=0x1)
    return cases


# ---------------------------------------------------------------------------------------------------


def build_corpus(root: str | os.PathLike) -> Corpus:
    """Write raw/ and hostile.zip under `root` (see the module docstring); about 0.5 s."""
    root = Path(root)
    folder = root / "raw"
    folder.mkdir(parents=True)
    corpus = Corpus(root, folder, root / "hostile.zip")
    zip_files: dict[str, bytes] = {}
    for i in range(GOOD):
        name = f"good-{i}.png"
        data = _save(Image.fromarray(good_image(i)), "PNG")
        (folder / name).write_bytes(data)
        zip_files[name] = data
        corpus.good_names.append(name)
    for name, make, what, expect, reason in _FILES:
        data = make()  # type: ignore[operator]
        (folder / name).write_bytes(data)
        zip_files[name] = data
        corpus.folder_cases.append(Case(name, what, expect, reason))
        if name != "nested.zip":
            corpus.zip_cases.append(Case(name, what + " (zip member)", expect, reason))
    corpus.folder_cases += _folder_only(folder)
    corpus.zip_cases += _write_zip(corpus.zip, zip_files)
    return corpus


def remove_corpus(corpus: Corpus) -> None:
    """Give permissions back so that the temporary folder can be deleted (chmod 000 file)."""
    p = corpus.folder / "unreadable.png"
    if p.exists() and not p.is_symlink():
        os.chmod(p, 0o644)


# ---------------------------------------------------------------------------------------------------
# Checks shared by the tests and the benchmark.


def snapshot(top: str | os.PathLike, skip: Iterable[str | os.PathLike] = ()) -> dict[str, tuple[int, int, int]]:
    """{path: (mode, size, mtime_ns)} of everything under `top` (symlinks not followed), leaving out the
    paths in `skip` and whatever lies inside them: compare two to find writes outside a destination."""
    skipped = {os.path.abspath(s) for s in skip}
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            if p in skipped:
                continue
            st = os.lstat(p)
            out[p] = (
                st.st_mode,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
            )
    return out


def changes(before: dict, after: dict) -> list[str]:
    """Paths created, deleted or modified between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def escaped_files(cwd: str | os.PathLike) -> list[str]:
    """Files a zip member's name would have created had it been extracted: must never exist."""
    cwd = Path(cwd)
    candidates = [Path(ABSOLUTE_MEMBER), cwd.parent.parent / "escape.png", cwd.parent.parent / "deep-escape.png"]
    candidates += [cwd.parent / "windows-escape.png", cwd / "..\\windows-escape.png"]
    return [str(p) for p in candidates if p.exists()]


def read_report(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """The prepare report as {file: (status, reason)}."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "status", "reason"], rows[0]
    return {r[0]: (r[1], r[2]) for r in rows[1:]}


def display_name(corpus: Corpus, case: Case, source: str) -> str:
    """How the report names a case's file: a path for raw/, "zip:member" for hostile.zip."""
    if source == "zip":
        return f"{corpus.zip}:{case.name}"
    shown = os.path.join(str(corpus.folder), case.name)
    return os.fsencode(shown).decode("utf-8", "backslashreplace")


def outcome(corpus: Corpus, case: Case, source: str, report: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(status, reason) of a case in a report: "kept" when the report does not list it."""
    name = display_name(corpus, case, source)
    if name in report:
        status, reason = report[name]
        return ("ignored" if status in ("ignored", "in-dataset") else status), reason
    return "kept", ""


def check_archive(path: str | os.PathLike, expected_images: int | None = None) -> list[str]:
    """Problems with a written dataset (an empty list when it is valid): it opens, its dataset.json
    parses and lists exactly the images it holds, all images share one size."""
    from ganforge.data.archive import read_archive, read_dataset_json

    problems = []
    try:
        meta = read_dataset_json(Path(path))
        data = read_archive(path)
    except Exception as exc:  # noqa: BLE001 - any failure is a finding
        return [f"cannot read {path}: {type(exc).__name__}: {exc}"]
    if meta is None:
        problems.append("no dataset.json")
    elif meta.get("labels") is not None and len(meta["labels"]) != len(data.images):
        problems.append(f"dataset.json lists {len(meta['labels'])} labels for {len(data.images)} images")
    if expected_images is not None and len(data.images) != expected_images:
        problems.append(f"{len(data.images)} images, expected {expected_images}")
    return problems


# ---------------------------------------------------------------------------------------------------
# Running the corpus through the commands. Each returns a Tally; tests assert on it, the benchmark adds up.


@dataclass
class Tally:
    """What one command did with the corpus."""

    command: str
    inputs: int = 0  # hostile inputs given to it
    handled: int = 0  # used, or refused/skipped as expected
    skipped_with_reason: int = 0  # skipped (or refused) with a reason that says why
    crashes: int = 0  # tracebacks, exit codes other than 0/2, exceptions other than GanforgeError, hangs
    silently_wrong: int = 0  # went on (exit 0) where it must refuse, or said nothing where it must say why
    data_lost: int = 0  # an input or a checkpoint changed or deleted, or an output missing (one overwrote another)
    writes_outside: list[str] = field(default_factory=list)  # paths created/changed outside the destination
    problems: list[str] = field(default_factory=list)  # every finding, one line each
    output: str = ""

    def add(self, other: Tally) -> None:
        self.inputs += other.inputs
        self.handled += other.handled
        self.skipped_with_reason += other.skipped_with_reason
        self.crashes += other.crashes
        self.silently_wrong += other.silently_wrong
        self.data_lost += other.data_lost
        self.writes_outside += other.writes_outside
        self.problems += other.problems


def _invoke(args: list[str], cwd: Path) -> tuple[int, str, BaseException | None]:
    """`ganforge ARGS` in-process (click's CliRunner) from `cwd`: (exit code, output, unexpected exception)."""
    from click.testing import CliRunner

    from ganforge.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        os.chdir(old)
    exc = r.exception if r.exception is not None and not isinstance(r.exception, SystemExit) else None
    return r.exit_code, r.output, exc


def _crashed(code: int, output: str, exc: BaseException | None, tally: Tally) -> bool:
    if exc is not None or code not in (0, 2) or "Traceback" in output:
        tally.crashes += 1
        tally.problems.append(f"{tally.command}: crashed (exit {code}): {exc!r} {output[-300:]}")
        return True
    return False


def available(cases: list[Case]) -> list[Case]:
    return [c for c in cases if not c.unavailable]


def workdir(corpus: Corpus) -> Path:
    """A cwd two levels below the corpus root, so that a `../../x` member extracted by mistake would land
    inside the snapshot."""
    cwd = corpus.root / "work" / "a" / "b"
    cwd.mkdir(parents=True, exist_ok=True)
    return cwd


def expected_kept(corpus: Corpus, source: str) -> int:
    cases = corpus.folder_cases if source == "folder" else corpus.zip_cases
    unavailable_but_read = [c for c in cases if c.unavailable and c.expect == "skipped" and c.name == "unreadable.png"]
    kept = sum((c.expect == "kept") + c.also_kept for c in available(cases))
    return GOOD + kept + len(unavailable_but_read)


def run_prepare(corpus: Corpus, source: str, out: Path) -> Tally:
    """`ganforge prepare` on raw/ ("folder") or hostile.zip ("zip"): every case as expected, the report
    names each skipped file with its reason, nothing written outside DEST and its report, DEST valid."""
    tally = Tally(f"prepare ({source})")
    src = corpus.folder if source == "folder" else corpus.zip
    dest, report_path = out / f"{source}.zip", out / f"{source}-report.csv"
    cwd = workdir(corpus)
    before = snapshot(corpus.root, [dest, report_path])
    code, output, exc = _invoke(["prepare", str(src), str(dest), "--quiet"], cwd)
    tally.output = output
    tally.writes_outside = changes(before, snapshot(corpus.root, [dest, report_path])) + escaped_files(cwd)
    cases = available(corpus.folder_cases if source == "folder" else corpus.zip_cases)
    tally.inputs = len(cases)
    if _crashed(code, output, exc, tally):
        return tally
    if code != 0:
        tally.problems.append(f"prepare ({source}) stopped: {output.strip()}")
        return tally
    report = read_report(report_path)
    for case in cases:
        status, reason = outcome(corpus, case, source, report)
        if status != case.expect or case.reason.lower() not in reason.lower():
            tally.problems.append(
                f"{case.name} ({case.what}): {status} '{reason}', expected {case.expect} '{case.reason}'"
            )
            continue
        tally.handled += 1
        tally.skipped_with_reason += status == "skipped" and bool(reason)
    tally.problems += [f"{dest}: {p}" for p in check_archive(dest, expected_kept(corpus, source))]
    return tally


_TINY = ["--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"]


def run_train(corpus: Corpus, out: Path, steps: int = 1) -> Tally:
    """`ganforge train --data raw/` for `steps` steps: it runs, trains on exactly the usable images, and
    writes nothing outside its run folder."""
    tally = Tally("train --data raw/")
    runs = out / "runs"
    cwd = workdir(corpus)
    before = snapshot(corpus.root, [runs])
    args = ["train", "--data", str(corpus.folder), "--steps", str(steps), "--runs-dir", str(runs), "--run", "hostile"]
    code, output, exc = _invoke(args + _TINY, cwd)
    tally.output = output
    tally.writes_outside = changes(before, snapshot(corpus.root, [runs])) + escaped_files(cwd)
    cases = available(corpus.folder_cases)
    tally.inputs = len(cases)
    if _crashed(code, output, exc, tally):
        return tally
    want = expected_kept(corpus, "folder")
    if code != 0 or f"({want} images at {RES}px)" not in output:
        tally.problems.append(f"train: exit {code}, expected a run on {want} images: {output.strip()[-300:]}")
        return tally
    tally.handled = len(cases)  # used or left out, and the run went on
    if "left out" in output:  # train names what it left out only when the loop says so
        tally.skipped_with_reason = sum(c.expect == "skipped" for c in cases)
    return tally


def run_eval(corpus: Corpus, out: Path) -> Tally:
    """`ganforge eval --real raw/ --fake hostile.zip` (the offline efficientnet-lite0 extractor): numbers,
    and a note for each source saying how many files were left out."""
    tally = Tally("eval --real raw/ --fake hostile.zip")
    result = out / "eval.json"
    cache = out / "cache"
    cwd = workdir(corpus)
    before = snapshot(corpus.root, [result, cache])
    old = os.environ.get("GANFORGE_CACHE")
    os.environ["GANFORGE_CACHE"] = str(cache)
    try:
        args = ["eval", "--real", str(corpus.folder), "--fake", str(corpus.zip), "--extractor", "efficientnet-lite0"]
        code, output, exc = _invoke(args + ["--metrics", "fid,kid", "--json", str(result), "--quiet"], cwd)
    finally:
        if old is None:
            os.environ.pop("GANFORGE_CACHE", None)
        else:
            os.environ["GANFORGE_CACHE"] = old
    tally.output = output
    tally.writes_outside = changes(before, snapshot(corpus.root, [result, cache])) + escaped_files(cwd)
    cases = available(corpus.folder_cases) + available(corpus.zip_cases)
    tally.inputs = len(cases)
    if _crashed(code, output, exc, tally):
        return tally
    if code != 0:
        tally.problems.append(f"eval: exit {code}: {output.strip()[-300:]}")
        return tally
    for source, src in (("folder", corpus.folder), ("zip", corpus.zip)):
        n = sum(
            c.expect == "skipped" for c in available(corpus.folder_cases if source == "folder" else corpus.zip_cases)
        )
        if f"note: {n} file(s) in {src} were left out" not in output:
            tally.problems.append(f"eval: no note that {n} files of {src} were left out: {output.strip()[-400:]}")
    want = (expected_kept(corpus, "folder"), expected_kept(corpus, "zip"))
    if f"{want[0]} real / {want[1]} generated images" not in output:
        tally.problems.append(f"eval: expected {want[0]} real / {want[1]} generated images: {output.strip()[-300:]}")
    if not tally.problems:
        tally.handled = len(cases)
        tally.skipped_with_reason = sum(c.expect == "skipped" for c in cases)
    return tally


def translate_inputs(corpus: Corpus, *, strips: bool = True) -> list[tuple[Case, str, str | bytes]]:
    """(case, "path" | "bytes", input) for Model.translate: each file of raw/ as a path and, where it can
    be read, as uploaded bytes (what the web server passes). `strips=False` leaves out the 10,000 px strips
    (seconds each to translate on a CPU)."""
    out: list[tuple[Case, str, str | bytes]] = []
    for case in available(corpus.folder_cases):
        if not strips and case.name.startswith("strip-"):
            continue
        path = os.path.join(corpus.folder, case.name)
        out.append((case, "path", path))
        if os.path.isfile(path) and os.access(path, os.R_OK) and not stat.S_ISFIFO(os.stat(path).st_mode):
            with open(path, "rb") as f:
                out.append((case, "bytes", f.read()))
    return out


def run_translate(corpus: Corpus, model, *, strips: bool = True) -> Tally:  # noqa: ANN001 - a ganforge Model
    """Model.translate (what `ganforge translate` and the web server's uploads use) on each input: an image
    for the usable ones, a DataError naming the reason for the others, never another exception."""
    from ganforge.errors import DataError

    tally = Tally("Model.translate")
    before = snapshot(corpus.root)
    for case, how, item in translate_inputs(corpus, strips=strips):
        tally.inputs += 1
        label = f"translate {case.name} ({how})"
        try:
            images = model.translate(item)
        except DataError as exc:
            if case.expect == "kept" or case.reason.lower() not in str(exc).lower():
                tally.problems.append(f"{label}: refused ({exc}), expected {case.expect} '{case.reason}'")
            else:
                tally.handled += 1
                tally.skipped_with_reason += 1
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is a crash
            tally.crashes += 1
            tally.problems.append(f"{label}: crashed: {type(exc).__name__}: {exc}")
            continue
        if case.expect == "skipped":
            tally.problems.append(f"{label}: translated, expected refused '{case.reason}'")
        elif len(images) != 1 or min(images[0].size) < 1:
            tally.problems.append(f"{label}: got {images!r}")
        else:
            tally.handled += 1
    tally.writes_outside = changes(before, snapshot(corpus.root))
    return tally


def train_translator(root: Path):  # noqa: ANN201 - a ganforge Model
    """A pix2pix model trained for one step on 8 tiny pairs (about a second), loaded for translation."""
    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.training.loop import train

    pairs = root / "pairs"
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (pairs / side).mkdir(parents=True, exist_ok=True)
    for i in range(8):
        img = good_image(300 + i)
        Image.fromarray(img).save(pairs / "B" / f"{i}.png")
        Image.fromarray(
            np.where(img < 255, 0, 255).astype(np.uint8) ^ rng.integers(0, 2, img.shape, dtype=np.uint8)
        ).save(pairs / "A" / f"{i}.png")
    cfg = TrainConfig(
        data=str(pairs), model="pix2pix", steps=1, batch=4, runs_dir=str(root / "runs"), run="p2p", sample_every=1000,
        ckpt_every=1000, log_every=1, grid_size=4, precision="fp32", family={"ngf": 4, "ndf": 4},
    )  # fmt: skip
    train(cfg, progress=False)
    return ganforge.load(root / "runs" / "p2p", device="cpu")


# ---------------------------------------------------------------------------------------------------
# Issue 24: what the last fixes made safe. Each case through the CLI in-process (CliRunner): an output
# folder that is its input folder, two inputs with one stem, a second writer on a locked run, pickles that
# declare 2**40 bytes, absurd counts. A refusal must be exit 2 with one "error:" line that says why; going
# on instead is "silently wrong", and a changed input/checkpoint or a missing output is "data lost".

HUGE = 2**40  # what the crafted pickles declare (1 TiB)
NUM_ABSURD = 100_000_000
BATCH_ABSURD = 100_000
TWELVE = 12


@dataclass
class Issue24:
    """The inputs of the issue-24 cases, under `root` (see `build_issue24`)."""

    root: Path
    src: Path  # x.png and sub/x.png (distinct images): translate must write two outputs, never over src
    twelve: Path  # 12 good 16x16 images: --batch 100000 is capped to 12
    pickles: dict[str, Path] = field(default_factory=dict)  # opcode name -> 14-byte pickle declaring HUGE bytes


def huge_pickle(opcode: str) -> bytes:
    """14 bytes: PROTO 4, then BINUNICODE8 or BINBYTES8 whose 8-byte length declares 2**40 bytes, then 3 bytes.
    A plain unpickler allocates the declared length before reading it (a MemoryError, or a terabyte)."""
    code = {"BINUNICODE8": b"\x8d", "BINBYTES8": b"\x8e"}[opcode]
    data = b"\x80\x04" + code + struct.pack("<Q", HUGE) + b"abc"
    assert len(data) == 14
    return data


def build_issue24(root: str | os.PathLike) -> Issue24:
    root = Path(root)
    inputs = Issue24(root, root / "src", root / "twelve")
    (inputs.src / "sub").mkdir(parents=True)
    Image.fromarray(good_image(400)).save(inputs.src / "x.png")
    Image.fromarray(good_image(401)).save(inputs.src / "sub" / "x.png")
    inputs.twelve.mkdir()
    for i in range(TWELVE):
        Image.fromarray(good_image(500 + i)).save(inputs.twelve / f"{i}.png")
    for opcode in ("BINUNICODE8", "BINBYTES8"):
        path = root / f"{opcode.lower()}-2e40.pkl"
        path.write_bytes(huge_pickle(opcode))
        inputs.pickles[opcode] = path
    return inputs


def contents(top: str | os.PathLike, skip: Iterable[str] = ()) -> dict[str, bytes]:
    """{relative path: bytes} of the files under `top` (names in `skip` left out): byte-identical or not."""
    out = {}
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            if name in skip:
                continue
            p = Path(dirpath, name)
            out[str(p.relative_to(top))] = p.read_bytes()
    return out


def _lost(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Files of `before` changed or deleted in `after`."""
    return sorted(k for k in before if after.get(k) != before[k])


def _refused(
    tally: Tally, label: str, args: list[str], cwd: Path, needs: Iterable[str], *, one_line: bool = True
) -> bool:
    """Run `ganforge ARGS`, which must be refused: exit 2, one "error:" line containing each of `needs` (and,
    with `one_line`, nothing else printed), no traceback, no MemoryError. Counts a crash (traceback, another
    exit code, an exception) or a run that went on (silently wrong); returns whether it was refused cleanly."""
    tally.inputs += 1
    code, output, exc = _invoke(args, cwd)
    tally.output += output
    if exc is not None or code not in (0, 2) or "Traceback" in output:
        tally.crashes += 1
        tally.problems.append(f"{label}: crashed (exit {code}): {exc!r} {output[-300:]}")
        return False
    if code == 0:
        tally.silently_wrong += 1
        tally.problems.append(f"{label}: went on (exit 0), expected a refusal naming {list(needs)}: {output[-300:]}")
        return False
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    lines = output.strip().splitlines()
    if len(errors) != 1 or (one_line and len(lines) != 1):
        tally.problems.append(f"{label}: expected one error line, got {len(lines)} line(s): {output[-400:]}")
        return False
    missing = [n for n in needs if n.lower() not in errors[0].lower()]
    if missing or "MemoryError" in output:
        tally.problems.append(f"{label}: the error does not say {missing or 'without MemoryError'}: {errors[0]}")
        return False
    return True


def _settle(tally: Tally, ok: bool) -> None:
    tally.handled += ok
    tally.skipped_with_reason += ok


def run_translate_outputs(inputs: Issue24, run_dir: Path) -> Tally:
    """`ganforge translate RUN src/ --out src/` (and --out src/sub/, and two files with one stem) refused in
    one line with src/ byte-identical after; `translate RUN src/ --out OUT` writes OUT/x.png and
    OUT/sub/x.png, two distinct images (one missing: data lost)."""
    tally = Tally("translate: --out vs inputs (issue 24)")
    src = inputs.src
    before = contents(src)
    refusals = [
        ("--out src/", [str(src)], src, [f"output folder {src} is the input folder"]),
        ("--out src/sub/", [str(src)], src / "sub", ["is inside the input folder"]),
        ("x.png sub/x.png --out one/", [str(src / "x.png"), str(src / "sub" / "x.png")], inputs.root / "one",
         ["would both be written to"]),
    ]  # fmt: skip
    for label, items, out, needs in refusals:
        ok = _refused(
            tally, f"translate {label}", ["translate", str(run_dir), *items, "--out", str(out)], inputs.root, needs
        )
        after = contents(src)
        lost = _lost(before, after)
        if lost:
            tally.data_lost += 1
            tally.problems.append(f"translate {label}: inputs changed or deleted: {lost}")
        new = sorted(set(after) - set(before))
        if new:
            tally.writes_outside += [str(src / n) for n in new]
        if label.endswith("one/") and out.exists() and any(out.iterdir()):
            tally.writes_outside.append(str(out))  # refused before anything is written
        _settle(tally, ok and not lost and not new)
    # A folder with x.png and sub/x.png: two outputs, the layout kept.
    tally.inputs += 1
    out = inputs.root / "translated"
    code, output, exc = _invoke(["translate", str(run_dir), str(src), "--out", str(out)], inputs.root)
    tally.output += output
    if exc is not None or code not in (0, 2) or "Traceback" in output:
        tally.crashes += 1
        tally.problems.append(f"translate src/ --out OUT: crashed (exit {code}): {exc!r} {output[-300:]}")
        return tally
    if code != 0:
        tally.problems.append(f"translate src/ --out OUT: refused a valid translation: {output.strip()[-300:]}")
        return tally
    written = contents(out) if out.is_dir() else {}
    want = ["x.png", os.path.join("sub", "x.png")]
    missing = [w for w in want if w not in written]
    if missing or len(written) != 2 or written.get(want[0]) == written.get(want[1]):
        tally.data_lost += 1
        tally.problems.append(
            f"translate src/ --out OUT: wrote {sorted(written)}, expected {want} (two distinct images)"
        )
    elif _lost(before, contents(src)):
        tally.data_lost += 1
        tally.problems.append("translate src/ --out OUT: changed its inputs")
    else:
        tally.handled += 1
    return tally


# A child that holds the run's lock as a running `ganforge train` does (RunLock), until its stdin closes.
_LOCK_HOLDER = (
    "import sys\nfrom pathlib import Path\nfrom ganforge.training.run import RunLock\n"
    "lock = RunLock(Path(sys.argv[1]))\nlock.acquire()\nprint('locked', flush=True)\nsys.stdin.read()\n"
)


def run_second_writer(run_dir: Path) -> Tally:
    """Another process holds RUN's lock (as `ganforge train` does): `ganforge train --run RUN --resume` must
    exit 2 in one line naming that process's pid, and the run's files (checkpoints, config, metrics) must
    be byte-identical after (a resume that wrote anyway: data lost)."""
    import subprocess

    tally = Tally("train --resume on a locked run (issue 24)")
    tally.inputs = 1
    run_dir = Path(run_dir)
    args = ["train", "--runs-dir", str(run_dir.parent), "--run", run_dir.name, "--resume", "--steps", "2", "--quiet"]
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(run_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if holder.stdout.readline().strip() != "locked":
            tally.problems.append(
                f"the lock holder did not start: {holder.stderr.read()[-300:] if holder.poll() is not None else ''}"
            )
            return tally
        before = contents(run_dir, skip=[".lock"])
        tally.inputs = 0  # _refused counts it
        ok = _refused(
            tally, "train --resume (locked)", args, run_dir.parent, [f"process {holder.pid}", "is being trained"]
        )
        lost = _lost(before, contents(run_dir, skip=[".lock"]))
        if lost:
            tally.data_lost += 1
            tally.problems.append(f"train --resume (locked): the run's files changed under the lock: {lost}")
        _settle(tally, ok and not lost)
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
    return tally


def run_huge_pickles(inputs: Issue24) -> Tally:
    """14-byte pickles declaring 2**40 bytes through `ganforge import` and `ganforge train --resume-from
    x.pkl --model stylegan2`: one error line (exit 2) saying what the file declares; no MemoryError."""
    tally = Tally("import / --resume-from huge pickles (issue 24)")
    runs = inputs.root / "pickle-runs"
    for opcode, pkl in inputs.pickles.items():
        needs = [opcode, f"declares {HUGE}"]
        ok = _refused(tally, f"import {pkl.name}", ["import", str(pkl), "--runs-dir", str(runs)], inputs.root, needs)
        _settle(tally, ok)
        args = ["train", "--resume-from", str(pkl), "--model", "stylegan2", "--data", str(inputs.twelve), "--resolution",
                str(RES), "--steps", "1", "--runs-dir", str(runs), "--run", f"resume-{opcode.lower()}", "--quiet"]  # fmt: skip
        ok = _refused(tally, f"train --resume-from {pkl.name}", args, inputs.root, needs, one_line=False)
        _settle(tally, ok)
    return tally


def run_absurd_counts(inputs: Issue24) -> Tally:
    """`ganforge eval --num 100000000` refused before any work (one line, nothing written, under a few
    seconds); `ganforge train --batch 100000` on 12 images capped at 12 with a note, and 1 step done."""
    import json
    import time

    tally = Tally("absurd --num / --batch (issue 24)")
    twelve = inputs.twelve
    result = inputs.root / "eval.json"
    t0 = time.perf_counter()
    args = ["eval", "--real", str(twelve), "--fake", str(twelve), "--num", str(NUM_ABSURD), "--json", str(result)]
    ok = _refused(tally, f"eval --num {NUM_ABSURD}", args, inputs.root, [f"--num {NUM_ABSURD:,}", "use --num"])
    seconds = time.perf_counter() - t0
    if ok and (result.exists() or seconds > 10):
        tally.problems.append(
            f"eval --num {NUM_ABSURD}: refused only after work ({seconds:.1f} s, {result} written: {result.exists()})"
        )
        ok = False
    _settle(tally, ok)
    # --batch 100000 on 12 images: capped with a note, the step runs.
    tally.inputs += 1
    runs = inputs.root / "batch-runs"
    args = ["train", "--data", str(twelve), "--model", "dcgan", "--resolution", str(RES), "--steps", "1", "--set", "ngf=4",
            "--set", "ndf=4", "--set", "nz=8", "--batch", str(BATCH_ABSURD), "--precision", "fp32", "--runs-dir", str(runs),
            "--run", "capped", "--quiet"]  # fmt: skip
    code, output, exc = _invoke(args, inputs.root)
    tally.output += output
    label = f"train --batch {BATCH_ABSURD} on {TWELVE} images"
    if exc is not None or code not in (0, 2) or "Traceback" in output:
        tally.crashes += 1
        tally.problems.append(f"{label}: crashed (exit {code}): {exc!r} {output[-300:]}")
        return tally
    note = f"note: --batch {BATCH_ABSURD} is more than the {TWELVE} examples"
    latest = runs / "capped" / "checkpoints" / "latest.json"
    step = None
    if latest.exists():
        try:
            step = json.loads(latest.read_text()).get("step")
        except (ValueError, AttributeError):
            step = None
    if code != 0:
        tally.problems.append(f"{label}: exit {code}, expected a capped run: {output.strip()[-300:]}")
    elif note not in output or f"training with --batch {TWELVE}" not in output:
        tally.silently_wrong += 1  # ran with a batch it did not say it changed (or built the 100,000 batch)
        tally.problems.append(f"{label}: no note that --batch was capped to {TWELVE}: {output.strip()[-300:]}")
    elif step != 1:
        tally.problems.append(f"{label}: checkpoint at step {step}, expected 1")
    else:
        tally.handled += 1  # capped, and the note says so
    return tally
