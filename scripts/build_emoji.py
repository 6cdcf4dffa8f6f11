"""Rebuild the built-in `emoji` dataset from ../shared/datasets/twemoji-64 (run from the repo root).

Each RGBA 64x64 Twemoji image is composited onto white at full size, then reduced to 32x32 with a
Lanczos filter; the 10 emoji categories of labels.csv become class labels. The images are stored as
one lossless WebP sprite sheet (62 tiles a row; 3.9 MB, against 6.4 MB as a zip of PNGs) plus
emoji.json with the labels, class names, short names and the attribution.
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/twemoji-64")
out = Path("src/ganforge/builtin")
rows = list(csv.DictReader(open(src / "labels.csv")))
classes = sorted({r["label"] for r in rows})
tile, cols = 32, 62
sheet = np.full((((len(rows) + cols - 1) // cols) * tile, cols * tile, 3), 255, np.uint8)
labels = []
for i, r in enumerate(rows):
    im = Image.open(src / r["file"]).convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im).convert("RGB").resize((tile, tile), Image.LANCZOS)
    y, x = divmod(i, cols)
    sheet[y * tile : (y + 1) * tile, x * tile : (x + 1) * tile] = np.asarray(im)
    labels.append(classes.index(r["label"]))
Image.fromarray(sheet).save(out / "emoji.webp", format="WEBP", lossless=True, quality=100, method=6)
meta = {
    "count": len(rows),
    "tile": tile,
    "columns": cols,
    "class_names": classes,
    "labels": labels,
    "files": [Path(r["file"]).name for r in rows],
    "attribution": "Twemoji, Copyright Twitter, Inc. and other contributors, CC-BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/); resized to 32x32 on white by ganforge.",
}
(out / "emoji.json").write_text(json.dumps(meta))
print((out / "emoji.webp").stat().st_size + (out / "emoji.json").stat().st_size, "bytes,", len(rows), "images")
