"""The README stays true: its ```bash / ```sh / ```console blocks run, in order, in one empty folder, as a
user with only the package would run them (in-process through click's CliRunner, `ganforge X` being
`python -m ganforge X`), with step counts cut to a few steps. A block that must not run here (an install,
a download, a GPU, a long benchmark, data only the user has) is marked just before it with
`<!-- readme-test: skip (why) -->`; an unmarked block that fails fails this test. Also: the export of the
built-in emoji set that tutorial step 1 starts from."""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganforge.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(\w+)([^>]*)-->\s*\n)?```(bash|sh|console)\n(.*?)```", re.DOTALL)
STEPS_PER_README_STEP = 1000  # --steps N runs N // 1000 steps here (at least 1): 3000 -> 3, 6000 -> 6 (resume)

# Files the tutorial and the latent-walk recipes must leave behind (the "expected outputs").
EXPECTED = [
    "twemoji/images/1f600.png", "twemoji/labels.csv", "twemoji/ATTRIBUTION.md", "sprites.zip", "sprites-report.csv",
    "runs/sprites/checkpoints/latest.json", "runs/sprites-cond/checkpoints/latest.json", "grid.png",
    "runs/sg-sprites/checkpoints/latest.json", "walk.gif", "runs/vae-digits/checkpoints/latest.json", "walk-vae.png",
]  # fmt: skip


@dataclass
class Block:
    index: int
    line: int  # where it starts in README.md
    marker: str  # "" or the marker's verb ("skip")
    why: str
    commands: list[list[str]] = field(default_factory=list)  # argv of each command

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def _commands(lang: str, body: str) -> list[list[str]]:
    text = re.sub(r"\\\n\s*", " ", body)  # continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if lang == "console":
            if not line.startswith("$ "):
                continue  # output shown in the block
            line = line[2:]
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1 :]
    return [c for c in out if c]


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for i, m in enumerate(_BLOCK.finditer(text)):
        line = text.count("\n", 0, m.start(3)) + 1
        blocks.append(
            Block(i, line, m.group(1) or "", (m.group(2) or "").strip(" ()"), _commands(m.group(3), m.group(4)))
        )
    return blocks


def tiny(argv: list[str]) -> list[str]:
    """A README command with its work cut down: --steps N -> N // 1000, --kimg -> a few steps, and for
    training a small batch and no progress bar."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("--steps", "--kimg") and i + 1 < len(argv):
            n = int(float(argv[i + 1]) * (1000 if a == "--kimg" else 1))
            out += ["--steps", str(max(1, n // STEPS_PER_README_STEP))]
            i += 2
            continue
        out.append(a)
        i += 1
    if out[1:2] == ["train"]:
        if "--steps" not in out and "--resume" not in out:
            out += ["--steps", "2"]
        out += ["--batch", "8", "--quiet"]
    return out


BLOCKS = readme_blocks()
RUNNABLE = [b for b in BLOCKS if b.marker != "skip"]


def test_the_readme_has_runnable_blocks_and_every_skip_says_why():
    assert len(RUNNABLE) >= 5, [b.name for b in RUNNABLE]
    for b in BLOCKS:
        assert b.marker in ("", "skip"), f"{b.name}: unknown marker '{b.marker}'"
        assert b.marker == "" or b.why, f"{b.name}: say why the block is skipped"


def test_unmarked_blocks_run_only_ganforge():
    """Anything else (pip, python, torchrun, curl) needs a skip marker: this test runs `ganforge` only."""
    for b in RUNNABLE:
        for argv in b.commands:
            assert argv[0] == "ganforge", f"{b.name}: `{shlex.join(argv)}` is not a ganforge command; mark the block"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """Every runnable block, in README order, in one empty folder: {block index: [(argv, exit code, output)]}."""
    import os

    cwd = tmp_path_factory.mktemp("readme")
    old = os.getcwd()
    os.chdir(cwd)
    results: dict[int, list[tuple[list[str], int, str]]] = {}
    try:
        for b in RUNNABLE:
            results[b.index] = []
            for argv in b.commands:
                args = tiny(argv)[1:]
                r = CliRunner().invoke(main, args)
                results[b.index].append((args, r.exit_code, r.output + (repr(r.exception) if r.exception else "")))
                if r.exit_code != 0:
                    break
    finally:
        os.chdir(old)
    return cwd, results


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(tutorial, block):
    _, results = tutorial
    for args, code, output in results[block.index]:
        assert code == 0, f"{block.name}: `ganforge {shlex.join(args)}` exited {code}:\n{output[-2000:]}"
        assert "Traceback" not in output, output


def test_the_tutorial_leaves_what_it_promises(tutorial):
    cwd, _ = tutorial
    missing = [f for f in EXPECTED if not (cwd / f).exists()]
    assert not missing, missing


# ---------------------------------------------------------------------------------------------------
# The export tutorial step 1 starts from.


def test_export_emoji_writes_pngs_labels_and_the_attribution(tmp_path):
    from PIL import Image

    r = CliRunner().invoke(main, ["datasets", "export", "emoji", str(tmp_path / "tw")])
    assert r.exit_code == 0, r.output
    assert "wrote 3,786 images" in r.output and "labels.csv (10 classes)" in r.output
    images = sorted((tmp_path / "tw" / "images").iterdir())
    assert len(images) == 3786
    with Image.open(images[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    with open(tmp_path / "tw" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "label"] and len(rows) == 3787
    assert {r[1] for r in rows[1:]} >= {"Flags", "Smileys & Emotion"}
    assert all((tmp_path / "tw" / r[0]).is_file() for r in rows[1:20])
    attribution = (tmp_path / "tw" / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC-BY 4.0" in attribution and "Twitter, Inc." in attribution
    r = CliRunner().invoke(main, ["datasets", "export", "emoji", str(tmp_path / "tw")])  # never over a folder
    assert r.exit_code == 2 and "already exists" in r.output


def test_export_two_sided_and_errors(tmp_path):
    r = CliRunner().invoke(main, ["datasets", "export", "edges2shapes", str(tmp_path / "e2s")])
    assert r.exit_code == 0, r.output
    a, b = sorted((tmp_path / "e2s" / "A").iterdir()), sorted((tmp_path / "e2s" / "B").iterdir())
    assert len(a) == len(b) == 1000 and [p.name for p in a] == [p.name for p in b]
    for args, message in ((["ring8"], "points, not images"), (["nope"], "datasets list")):
        r = CliRunner().invoke(main, ["datasets", "export", *args, str(tmp_path / "x")])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x").exists()


def test_datasets_list_names_the_builtins():
    r = CliRunner().invoke(main, ["datasets", "list"])
    assert r.exit_code == 0
    assert [line.split()[0] for line in r.output.splitlines()][:1] == ["emoji"] and "digits" in r.output
