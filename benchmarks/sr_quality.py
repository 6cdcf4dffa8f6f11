"""x4 super-resolution quality of `srgan` on photographs, against bicubic upscaling and Ledig et al. 2017.

Photographs from scikit-image's `skimage.data` (`pip install scikit-image`): random crops of
TRAIN_IMAGES train the model through ganforge's real loop (`ganforge train --model srgan` on a prepared
archive of 128 px tiles); TEST_IMAGES are held out. The training time is split in half: the PSNR phase
(pixel loss only: SRResNet) and the GAN phase (pixel or VGG content loss + 1e-3 adversarial loss); step
counts come from a short calibration run, so `--minutes` bounds the training time on any machine.

Evaluation as Ledig et al. (sec. 3.1): the held-out HR image (cropped to a multiple of 4), its bicubic
downscaling (antialiased, as MATLAB's imresize; quantised to 8 bits) as the LR input, PSNR and SSIM on
the Y channel (ITU-R BT.601) with `scale` border pixels cropped. Sharpness: the variance of the
Laplacian of Y (no reference; higher = more high-frequency detail; the HR image's is given too).

    python benchmarks/sr_quality.py [--minutes 6] [--quick] [--json PATH] [--threads 2]

The published rows (Set5/Set14, SRResNet trained for 10^6 updates on 350k ImageNet images on a GPU) are
printed beside ours for scale only: other test images, minutes of CPU training on six photographs.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np

SCALE = 4
TRAIN_IMAGES = ["coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle"]
TEST_IMAGES = ["astronaut", "chelsea", "camera"]
TILE = 128  # training tiles (the loop takes random `crop`-pixel crops of them)
# Ledig et al. 2017, Table 2 (x4, PSNR dB / SSIM on Y, border cropped); see ../shared/ANCHORS.md.
PUBLISHED = {
    "Set5": {"bicubic": (28.43, 0.821), "SRResNet": (32.05, 0.902), "SRGAN": (29.40, 0.847)},
    "Set14": {"bicubic": (25.99, 0.749), "SRResNet": (28.49, 0.818), "SRGAN": (26.02, 0.740)},
}


def photo(name: str) -> np.ndarray:
    """An RGB uint8 (H, W, 3) photograph from skimage.data (grayscale ones repeated to 3 channels)."""
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def tiles(img: np.ndarray, size: int = TILE, stride: int = TILE // 2) -> list[np.ndarray]:
    """Overlapping tiles, without the nearly flat ones (e.g. the retina image's black surround)."""
    out = []
    for y in range(0, img.shape[0] - size + 1, stride):
        for x in range(0, img.shape[1] - size + 1, stride):
            t = img[y : y + size, x : x + size]
            if t.std() > 8:
                out.append(t)
    return out


def luma(rgb: np.ndarray) -> np.ndarray:
    """Y of ITU-R BT.601 in [16, 235] from uint8 RGB (H, W, 3), as MATLAB's rgb2ycbcr (the SR papers')."""
    x = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def metrics(sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, float]:
    from scipy.ndimage import laplace
    from skimage.metrics import structural_similarity

    ys, yh = luma(sr), luma(hr)
    ys, yh = ys[border:-border, border:-border], yh[border:-border, border:-border]
    mse = float(np.mean((ys - yh) ** 2))
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-10))
    ssim = structural_similarity(
        ys, yh, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return {"psnr": float(psnr), "ssim": float(ssim), "sharpness": float(laplace(ys).var())}


def to_uint8(x) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> uint8 (H, W, 3), as a PNG would store it."""
    return x[0].permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).byte().numpy()


def lr_input(hr: np.ndarray):
    """The LR input of an HR uint8 image: ganforge's bicubic degradation (antialiased), quantised."""
    import torch

    from ganforge.data.dataset import degrade

    x = torch.from_numpy(hr).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    lr = degrade(x, SCALE)
    return lr.add(1).mul(127.5).round().div(127.5).sub(1)  # 8-bit LR, in [-1, 1]


def bicubic(lr):
    import torch.nn.functional as F

    return F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(-1, 1)


def evaluate(upscale, tests: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean PSNR / SSIM / sharpness of `upscale(lr) -> sr` over the held-out images, and per image."""
    per = {}
    for name, hr in tests.items():
        sr = to_uint8(upscale(lr_input(hr)))
        per[name] = metrics(sr, hr, SCALE)
    mean = {k: float(np.mean([m[k] for m in per.values()])) for k in ("psnr", "ssim", "sharpness")}
    return {**mean, "per_image": per}


def step_times(run_dir: Path) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    t = [x["time_s"] for x in lines if "time_s" in x]
    return list(np.diff([0.0, *t]))


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="1 minute of training and two test images (a smoke run, not a result)")
    ap.add_argument(
        "--minutes", type=float, default=6.0, help="training budget (wall-clock minutes, split PSNR / GAN phase)"
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--width", type=int, default=32, help="generator width (the paper's: 64)")
    ap.add_argument("--blocks", type=int, default=6, help="residual blocks (the paper's: 16)")
    ap.add_argument("--d-width", type=int, default=32, help="discriminator width (the paper's: 64)")
    ap.add_argument("--d-dense", type=int, default=256, help="discriminator dense layer (the paper's: 1024)")
    ap.add_argument("--crop", type=int, default=48, help="HR training crop (the paper's: 96)")
    ap.add_argument("--batch", type=int, default=16, help="batch size (the paper's: 16)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (the paper's: 1e-4)")
    ap.add_argument(
        "--precision", default="fp32", help="training precision (bf16 is far slower on CPUs without native bf16)"
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--samples", type=Path, default=None, help="save HR | bicubic | PSNR model | GAN model crops here")
    args = ap.parse_args(argv)
    import torch

    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.data.archive import ArchiveData, write_archive
    from ganforge.training.loop import train

    torch.set_num_threads(args.threads)
    minutes = 1.0 if args.quick else args.minutes
    test_names = TEST_IMAGES[:2] if args.quick else TEST_IMAGES
    tests = {}
    for n in test_names:
        img = photo(n)
        h, w = (img.shape[0] // SCALE) * SCALE, (img.shape[1] // SCALE) * SCALE
        tests[n] = img[:h, :w]
    train_tiles = [t for n in TRAIN_IMAGES for t in tiles(photo(n))]
    family = {
        "scale": SCALE,
        "crop": args.crop,
        "ngf": args.width,
        "n_blocks": args.blocks,
        "lr": args.lr,
        "ndf": args.d_width,
        "d_dense": args.d_dense,
    }
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganforge-sr-") as tmp:
        data = write_archive(ArchiveData(np.stack(train_tiles)), Path(tmp) / "photos.zip")

        def config(run: str, steps: int, pretrain: int, **kw: Any) -> TrainConfig:
            return TrainConfig(
                data=str(data),
                model="srgan",
                steps=steps,
                batch=args.batch,
                seed=0,
                runs_dir=str(Path(tmp) / "runs"),
                run=run,
                log_every=1,
                sample_every=10**9,
                ckpt_every=max(pretrain, 1),
                keep_ckpts=0,
                xflip=True,
                threads=args.threads,
                device=args.device,
                precision=args.precision,
                family={**family, "pretrain_steps": pretrain},
                **kw,
            )

        # Calibrate: seconds per step of each phase (the first steps of a run are slower: skipped).
        cal = train(config("calibrate", 10, 5), progress=False)
        dt = step_times(cal.run_dir)
        t_psnr, t_gan = float(np.median(dt[2:5])), float(np.median(dt[7:10]))
        budget = minutes * 60
        pretrain = max(int(budget / 2 / t_psnr), 1)
        gan = max(int(budget / 2 / t_gan), 1)
        print(
            f"calibration: {t_psnr:.2f} s/step (PSNR phase), {t_gan:.2f} s/step (GAN phase) -> "
            f"{pretrain} + {gan} steps for {minutes:g} min",
            flush=True,
        )

        t_cpu, t_wall = time.process_time(), time.perf_counter()
        res = train(config("sr", pretrain + gan, pretrain), progress=False)
        train_wall, train_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
        content = json.loads((res.run_dir / "checkpoints" / f"step-{res.step:06d}.json").read_text())
        content_note = content.get("family_state", {}).get("content_loss", "?")
        psnr_model = ganforge.load(res.run_dir, checkpoint=pretrain)
        gan_model = ganforge.load(res.run_dir)

        def run_model(model):
            return lambda lr: model.translate(lr, output="tensor", batch=1)

        with torch.no_grad():
            ev_bicubic = evaluate(bicubic, tests)
            ev_psnr = evaluate(run_model(psnr_model), tests)
            ev_gan = evaluate(run_model(gan_model), tests)
        hr_sharp = float(np.mean([metrics(hr, hr, SCALE)["sharpness"] for hr in tests.values()]))
        if args.samples is not None:
            save_samples(args.samples, tests, [bicubic, run_model(psnr_model), run_model(gan_model)])

    rows = [("bicubic", ev_bicubic), ("srgan PSNR phase (SRResNet)", ev_psnr), ("srgan GAN phase", ev_gan)]
    table = format_table(rows, hr_sharp)
    payload = {
        "benchmark": "sr_quality",
        "quick": args.quick,
        "scale": SCALE,
        "minutes": minutes,
        "train_images": TRAIN_IMAGES,
        "test_images": test_names,
        "train_tiles": len(train_tiles),
        "family": family,
        "batch": args.batch,
        "precision": args.precision,
        "threads": args.threads,
        "pretrain_steps": pretrain,
        "gan_steps": gan,
        "s_per_step": {"psnr_phase": round(t_psnr, 3), "gan_phase": round(t_gan, 3)},
        "content_loss": content_note,
        "psnr_bicubic": round(ev_bicubic["psnr"], 3),
        "psnr_model": round(ev_psnr["psnr"], 3),
        "psnr_gan": round(ev_gan["psnr"], 3),
        "ssim_bicubic": round(ev_bicubic["ssim"], 4),
        "ssim_model": round(ev_psnr["ssim"], 4),
        "ssim_gan": round(ev_gan["ssim"], 4),
        "sharpness_hr": round(hr_sharp, 2),
        "sharpness_bicubic": round(ev_bicubic["sharpness"], 2),
        "sharpness_model": round(ev_psnr["sharpness"], 2),
        "sharpness_gan": round(ev_gan["sharpness"], 2),
        "train_minutes": round(train_wall / 60, 2),
        "train_cpu_minutes": round(train_cpu / 60, 2),
        "per_image": {
            name: ev["per_image"] for name, ev in (("bicubic", ev_bicubic), ("psnr_model", ev_psnr), ("gan", ev_gan))
        },
        "last": {k: v for k, v in res.last.items() if k.startswith(("loss", "D_", "content"))},
        "published": PUBLISHED,
        "table": table,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(table)
    print(f"content loss: {content_note}")
    print(
        f"training: {pretrain} PSNR-phase + {gan} GAN-phase steps, {train_wall / 60:.1f} min wall, "
        f"{train_cpu / 60:.1f} CPU-min ({args.threads} threads, {args.device})"
    )
    _common.write_json(args.json, payload, argv)
    return 0


def format_table(rows: list[tuple[str, dict[str, Any]]], hr_sharp: float) -> str:
    lines = [
        "| x4, held-out photos (Y, border 4)  | PSNR (dB) | SSIM  | sharpness (var. of Laplacian) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, ev in rows:
        lines.append(f"| {name:<34} | {ev['psnr']:>9.2f} | {ev['ssim']:.3f} | {ev['sharpness']:>8.1f} |")
    lines.append(f"| {'HR (reference)':<34} | {'-':>9} | {'-':>5} | {hr_sharp:>8.1f} |")
    lines += [
        "",
        "| Ledig et al. 2017, Table 2 (x4) | Set5 PSNR / SSIM | Set14 PSNR / SSIM |",
        "| --- | ---: | ---: |",
    ]
    for method in ("bicubic", "SRResNet", "SRGAN"):
        s5, s14 = PUBLISHED["Set5"][method], PUBLISHED["Set14"][method]
        lines.append(f"| {method:<31} | {s5[0]:.2f} / {s5[1]:.3f} | {s14[0]:.2f} / {s14[1]:.3f} |")
    lines.append(
        "Protocol differences: our test images are three skimage photographs (astronaut, chelsea, camera), not "
        "Set5/Set14; the model is a smaller SRResNet trained for minutes on one CPU on tiles of six photographs, "
        "against 10^6 + 2x10^5 GPU updates on 350k ImageNet images; the GAN phase uses the pixel loss as content "
        "loss unless VGG19 weights are cached locally; PyTorch's antialiased bicubic stands in for MATLAB's imresize. "
        "Compare the gaps (model - bicubic, GAN - PSNR model), not the absolute numbers."
    )
    return "\n".join(lines)


def save_samples(folder: Path, tests: dict[str, np.ndarray], upscalers: list) -> None:
    """A 128 px crop of each held-out image: HR | bicubic | PSNR model | GAN model."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, hr in tests.items():
        y, x = hr.shape[0] // 2 - 64, hr.shape[1] // 2 - 64
        cols = [hr[y : y + 128, x : x + 128]]
        lr = lr_input(hr)
        for up in upscalers:
            cols.append(to_uint8(up(lr))[y : y + 128, x : x + 128])
        Image.fromarray(np.concatenate(cols, axis=1)).save(folder / f"{name}.png")


if __name__ == "__main__":
    sys.exit(main())
