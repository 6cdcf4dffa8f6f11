"""Text to image on the emoji set: DF-GAN (`--model dfgan`) on captions it never trained on.

Split: the emoji captions (Unicode CLDR names) are grouped by their name with the skin-tone words removed
("waving hand medium skin tone" -> "waving hand"), and whole groups are held out (seeded) until ~10 % of the
images are, so that a skin-tone variant never trains while its base is scored. dfgan trains on the rest for a
fixed budget of images (`--kimg`; the text encoder's pretraining is the first fifth of it), through the real
loop. The baseline `dcgan --cond` trains on the same split for the same budget, conditioned on the 10 emoji
categories.

R-precision (Xu et al. 2018, AttnGAN, sec. 5): for each generated image, 100 candidate captions (its own + 99
other held-out captions, drawn at random with a fixed seed) are ranked by an image-text matching model; the
score is the share of images whose own caption ranks first (chance: 1 %). The judge is a separate matching model
of the encoder's kind (`ganforge.nn.text_encoder.Matcher`, DAMSM's sentence loss) trained on the *training
split only*, with its own seed. Rows, each `--per-caption` images per held-out caption:
  r_precision                dfgan, image from caption c, ranked against c
  r_precision_shuffled       dfgan, image from another held-out caption, ranked against c (captions shuffled)
  r_precision_label_baseline dcgan --cond, image from c's category, ranked against c
  r_precision_real           the real held-out image of c, ranked against c (the judge's ceiling)
FD: the Fréchet distance of the shipped emoji classifier's features (`metrics/classifier.py`) between the
generated images and the held-out real images; `classes`: how many of the 10 categories the generated images
cover (`metrics.classes.class_coverage` against the held-out images' histogram). The published DF-GAN / AttnGAN
rows on CUB (ANCHORS.md) are printed beside, for orientation only: other data, other resolution, other judge.
Floor: r_precision >= 3 x r_precision_shuffled. Grids for "red heart", "face with tears of joy", "flag Japan"
and "green apple" (8 seeds each, one row per prompt) are saved beside the JSON.

    python benchmarks/text_to_image.py [--kimg 96] [--quick] [--json PATH]

JSON keys: r_precision, r_precision_shuffled, r_precision_label_baseline, r_precision_real, fd, fd_label_baseline,
fd_real (held-out reals vs. training reals), classes, classes_label_baseline, num_classes, kimg, steps,
held_out_images, held_out_captions, train_images, floor_met, seconds.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

PROMPTS = ("red heart", "face with tears of joy", "flag Japan", "green apple")
SKIN = re.compile(r"\b(light|medium-light|medium|medium-dark|dark) skin tone\b|[,:]")
CANDIDATES = 100  # 1 true + 99 random held-out captions (AttnGAN's R-precision)
# Published numbers on CUB birds at 256 px (ANCHORS.md "Text-to-image GANs"): orientation only.
PUBLISHED = [
    (
        "AttnGAN (Xu et al. 2018)",
        "CUB 256 px",
        "R-precision 67.82 % under its DAMSM judge (paper's table 3; not in ANCHORS.md)",
    ),
    ("DF-GAN (Tao et al. 2022)", "CUB 256 px", "FID 14.81 (released model 12.10); COCO FID 19.32 (15.41)"),
]


def base_name(caption: str) -> str:
    """The caption without its skin-tone words: the group a skin-tone variant shares with its base."""
    return " ".join(SKIN.sub(" ", caption).split()).lower()


def split(captions: list[str], frac: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices): whole groups (`base_name`) held out, seeded, until >= frac of the images."""
    import numpy as np

    groups: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        groups.setdefault(base_name(c), []).append(i)
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    held: list[int] = []
    for k in order:
        if len(held) >= frac * len(captions):
            break
        held += groups[names[k]]
    held_set = set(held)
    return [i for i in range(len(captions)) if i not in held_set], sorted(held)


def r_precision(matcher: Any, images: Any, true_idx: list[int], captions: list[str], seed: int = 0) -> float:
    """Share of `images` (float, [-1, 1]) whose caption `captions[true_idx[k]]` ranks first among itself and 99
    other captions of `captions` drawn at random (seeded), by the matcher's cosine similarity."""
    import numpy as np
    import torch

    from ganforge.spec import encode_text

    with torch.no_grad():
        sent = torch.nn.functional.normalize(matcher.text(encode_text(captions)), dim=1)  # (C, S)
        img = torch.cat(
            [
                torch.nn.functional.normalize(matcher.image(images[i : i + 256]), dim=1)
                for i in range(0, len(images), 256)
            ]
        )
    rng = np.random.default_rng(seed)
    hits = 0
    for k, t in enumerate(true_idx):
        others = rng.choice(np.delete(np.arange(len(captions)), t), CANDIDATES - 1, replace=False)
        cand = np.concatenate([[t], others])
        sims = (sent[torch.as_tensor(cand)] @ img[k]).numpy()
        hits += int(sims.argmax() == 0)
    return hits / len(true_idx)


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="a few minutes: 12 kimg, a short judge, 1 image per caption")
    ap.add_argument(
        "--kimg", type=float, default=None, help="training budget in thousands of images (default 96; quick 12)"
    )
    ap.add_argument("--per-caption", type=int, default=None, help="generated images per held-out caption (default 4)")
    ap.add_argument(
        "--judge-steps", type=int, default=None, help="training steps of the R-precision judge (default 1500)"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the dcgan --cond baseline")
    ap.add_argument(
        "--runs-dir", type=Path, default=None, help="keep the trained runs here, and reuse finished ones of the same settings"
    )
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="a dfgan setting, as train's --set"
    )
    args = ap.parse_args(argv)
    kimg = args.kimg if args.kimg is not None else (12.0 if args.quick else 96.0)
    per = args.per_caption or (1 if args.quick else 4)
    judge_steps = args.judge_steps or (300 if args.quick else 1500)
    t0 = time.time()

    import numpy as np
    import torch

    from ganforge.config import TrainConfig
    from ganforge.data.archive import ArchiveData, write_archive
    from ganforge.data.dataset import load_dataset
    from ganforge.metrics.classes import class_coverage, class_histogram
    from ganforge.metrics.classifier import ClassifierExtractor
    from ganforge.metrics.frechet import feature_statistics, frechet_distance
    from ganforge.nn.text_encoder import train_matcher
    from ganforge.sample.grid import make_grid, save_png
    from ganforge.sample.latents import latents_for_seeds
    from ganforge.sample.model import Model
    from ganforge.spec import NoiseRequest, encode_text
    from ganforge.training.loop import train

    torch.set_num_threads(max(1, torch.get_num_threads()))
    ds = load_dataset("emoji")
    captions = ds.captions
    train_idx, held_idx = split(captions)
    print(f"emoji: {len(ds)} images, {len(train_idx)} train, {len(held_idx)} held out (skin-tone groups kept together)")
    images = ds.images.float() / 127.5 - 1  # (N, 3, 32, 32)
    labels = ds.labels
    out_dir = (args.json.parent / args.json.stem) if args.json else Path(tempfile.mkdtemp(prefix="t2i-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        arc = tmp_p / "emoji-train.zip"
        ti = np.asarray(train_idx)
        write_archive(
            ArchiveData(ds.images[ti].permute(0, 2, 3, 1).numpy(), labels[ti].numpy(), ds.class_names,
                        captions=[captions[i] for i in train_idx]),
            arc,
        )  # fmt: skip

        def run(name: str, model: str, **kw: Any) -> Model:
            batch = 32
            steps = max(1, round(kimg * 1000 / batch))
            runs = args.runs_dir or (tmp_p / "runs")
            done = runs / name / "config.json"
            if args.runs_dir and done.exists():  # a finished run of an earlier call with the same settings: reuse it
                # (an unfinished one, or one of other settings, is left alone: the script stops and says so)
                saved = json.loads(done.read_text())
                status = runs / name / "status.json"
                finished = status.exists() and json.loads(status.read_text()).get("state") == "done"
                if finished and saved.get("steps") == steps and all(saved.get("family", {}).get(k) == v for k, v in kw.get("family", {}).items()):
                    try:
                        print(f"  reusing {runs / name}")
                        return Model.load(runs / name)
                    except Exception as exc:  # noqa: BLE001 - unfinished or damaged
                        sys.exit(f"{runs / name} cannot be reused ({exc}); move it away or pick another --runs-dir")
                # Never delete what is in a folder the user named: say so and stop.
                sys.exit(f"{runs / name} holds an unfinished run or one of other settings; move it away or pick another --runs-dir")
            cfg = TrainConfig(
                data=str(arc), model=model, steps=steps, batch=batch, runs_dir=str(runs), run=name,
                sample_every=10**9, ckpt_every=10**9, log_every=100, grid_size=16, seed=0, **kw,
            )  # fmt: skip
            t = time.time()
            res = train(cfg, progress=False)
            print(f"  trained {name}: {steps} steps of {batch} in {time.time() - t:.0f} s; last {res.last}")
            return Model.load(res.run_dir)

        from ganforge.config import parse_value
        from ganforge.registry import get_family

        defaults = get_family("dfgan").default_config()
        dfgan_settings = {k: parse_value(v, getattr(defaults, k)) for k, v in (i.split("=", 1) for i in args.sets)}
        dfgan = run("dfgan", "dfgan", family=dfgan_settings)
        dcgan = None if args.no_baseline else run("dcgan-cond", "dcgan", cond=True)

        # The judge: a matching model trained on the training split only, with a seed of its own.
        t = time.time()
        judge = train_matcher(images[ti], encode_text([captions[i] for i in train_idx]), steps=judge_steps, seed=7)
        print(f"  judge: {judge_steps} steps in {time.time() - t:.0f} s")

        held_caps = list(dict.fromkeys(captions[i] for i in held_idx))  # unique held-out captions
        first = {c: i for i in reversed(held_idx) for c in [captions[i]]}  # caption -> its first image
        true = [k for k in range(len(held_caps)) for _ in range(per)]
        seeds = list(range(len(true)))
        rng = np.random.default_rng(3)
        shuffled = rng.permutation(len(held_caps))
        while (shuffled == np.arange(len(held_caps))).any():  # a derangement: every caption gets another's image
            shuffled = rng.permutation(len(held_caps))

        def gen(model: Model, caps: list[str] | None = None, labs: list[int] | None = None) -> torch.Tensor:
            """One image per seed: from captions `caps` (dfgan) or class labels `labs` (dcgan --cond)."""
            z = latents_for_seeds(seeds, model.latent_shape)
            out = []
            for i in range(0, len(seeds), 256):
                req = NoiseRequest(
                    z[i : i + 256], torch.as_tensor(labs[i : i + 256]) if labs is not None else None,
                    text=encode_text(caps[i : i + 256]) if caps is not None else None,
                )  # fmt: skip
                out.append(model.sampler.run(req))
            return torch.cat(out)

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # held-out captions hold unseen words by design
            x = gen(dfgan, [held_caps[k] for k in true])
            x_shuf = gen(dfgan, [held_caps[shuffled[k]] for k in true])
        x_label = gen(dcgan, labs=[int(labels[first[held_caps[k]]]) for k in true]) if dcgan is not None else None
        x_real = images[[first[c] for c in held_caps]]

        r = r_precision(judge, x, true, held_caps)
        r_shuf = r_precision(judge, x_shuf, true, held_caps)
        r_label = r_precision(judge, x_label, true, held_caps) if x_label is not None else None
        r_real = r_precision(judge, x_real, list(range(len(held_caps))), held_caps)

        def u8(xs: torch.Tensor) -> torch.Tensor:  # the classifier reads uint8 images, as they are on disk
            return ((xs + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

        clf = ClassifierExtractor.for_dataset(ds)
        held_t = torch.as_tensor(held_idx)
        real_out = clf(ds.images[held_t])
        mu_r, sig_r = feature_statistics(real_out["features"].numpy())
        real_hist = class_histogram(labels[held_t].numpy(), len(ds.class_names))

        def fd_classes(xs: torch.Tensor) -> tuple[float, int]:
            o = clf(u8(xs))
            mu, sig = feature_statistics(o["features"].numpy())
            covered, _ = class_coverage(o["logits"].argmax(1).numpy(), real_hist)
            return round(float(frechet_distance(mu, sig, mu_r, sig_r)), 3), covered

        fd, classes = fd_classes(x)
        fd_label, classes_label = fd_classes(x_label) if x_label is not None else (None, None)
        some_train = torch.as_tensor(ti[np.random.default_rng(0).permutation(len(ti))[: len(held_idx)]])
        mu_t, sig_t = feature_statistics(clf(ds.images[some_train])["features"].numpy())
        fd_real = round(float(frechet_distance(mu_t, sig_t, mu_r, sig_r)), 3)

        # The prompts the issue names: one row of 8 seeds each.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = [dfgan.generate(list(range(8)), prompt=p, output="tensor") for p in PROMPTS]
        unseen = sorted({str(w.message) for w in caught})
        save_png(make_grid(torch.cat(rows), nrow=8), out_dir / "prompts.png")
        save_png(make_grid(x[: 8 * 8], nrow=8), out_dir / "held_out.png")
        train_caps = [captions[i] for i in train_idx]
        in_train = {p: p in set(train_caps) for p in PROMPTS}

    payload = {
        "r_precision": round(r, 4), "r_precision_shuffled": round(r_shuf, 4),
        "r_precision_label_baseline": None if r_label is None else round(r_label, 4), "r_precision_real": round(r_real, 4),
        "fd": fd, "fd_label_baseline": fd_label, "fd_real": fd_real, "classes": classes,
        "classes_label_baseline": classes_label, "num_classes": len(ds.class_names), "kimg": kimg,
        "steps": max(1, round(kimg * 1000 / 32)), "judge_steps": judge_steps, "per_caption": per,
        "held_out_images": len(held_idx), "held_out_captions": len(held_caps), "train_images": len(train_idx),
        "floor_met": bool(r >= 3 * r_shuf), "prompts_in_training": in_train, "prompt_warnings": unseen,
        "dfgan_settings": dict(item.split("=", 1) for item in args.sets), "grids": str(out_dir), "seconds": round(time.time() - t0, 1), "quick": bool(args.quick),
    }  # fmt: skip
    print()
    print(f"{'row':34} {'R-precision':>12} {'FD (clf)':>9} {'classes':>8}")
    print(f"{'dfgan, own caption':34} {r:12.3f} {fd:9.3f} {classes:8d}")
    print(f"{'dfgan, captions shuffled':34} {r_shuf:12.3f}")
    if r_label is not None:
        print(f"{'dcgan --cond, caption category':34} {r_label:12.3f} {fd_label:9.3f} {classes_label:8d}")
    print(f"{'real held-out image (judge ceiling)':34} {r_real:12.3f} {fd_real:9.3f}")
    print(
        f"chance {1 / CANDIDATES:.3f}; floor r_precision >= 3 x shuffled: {'met' if payload['floor_met'] else 'NOT met'}"
    )
    print("published, for orientation only (CUB birds, 256 px, other judge):")
    for name, data, nums in PUBLISHED:
        print(f"  {name:28} {data:12} {nums}")
    print(f"grids: {out_dir}/prompts.png (rows: {', '.join(PROMPTS)}), {out_dir}/held_out.png")
    _common.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
