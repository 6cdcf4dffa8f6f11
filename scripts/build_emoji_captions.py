"""Add a caption to every built-in emoji: its Unicode CLDR short name (run from the repo root).

The name of each emoji sequence in the file name's code points ("1f469-1f3fc-200d-1f9b3.png") is looked up in
the `emoji` package's table of CLDR names (BSD licence; the names are Unicode CLDR data, Unicode licence), which
names skin-tone variants, ZWJ sequences and flags as CLDR does: ":woman_medium-light_skin_tone_white_hair:",
":flag_Japan:", ":keycap_#:". Colons go, underscores become spaces: "woman medium-light skin tone white hair",
"flag Japan", "keycap #". A build-time tool: ganforge reads the captions from emoji.json and needs no package.

    pip install emoji && python scripts/build_emoji_captions.py
"""

import json
from pathlib import Path

import emoji

path = Path("src/ganforge/builtin/emoji.json")
meta = json.loads(path.read_text())
captions = []
for name in meta["files"]:
    seq = "".join(chr(int(cp, 16)) for cp in Path(name).stem.split("-"))
    info = emoji.EMOJI_DATA.get(seq) or emoji.EMOJI_DATA.get(seq.replace("\ufe0f", ""))
    if info is None:
        raise SystemExit(f"no CLDR name for {name}")
    text = info["en"].strip(":").replace("_", " ")
    flag = all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in seq) or seq.startswith("\U0001F3F4\U000E0067")
    if flag and not text.startswith("flag"):  # the package names country flags by the country alone; CLDR says "flag: X"
        text = "flag " + text
    captions.append(text)
meta["captions"] = captions
meta["captions_source"] = f"Unicode CLDR short names, via the emoji package {emoji.__version__} (BSD)"
path.write_text(json.dumps(meta))
print(len(captions), "captions, e.g.", captions[::700])
