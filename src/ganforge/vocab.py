"""Every option vocabulary, defined once: the CLI's choices, config validation, the studio's parameter checks
and the docs read these tuples (tests/test_vocab.py compares them, and finds any other spelling of one in src/).
No imports, so the CLI's --help stays fast."""

from __future__ import annotations

AUGMENTATIONS = ("none", "ada", "fixed", "diffaugment")  # what D sees is augmented: --aug / TrainConfig.aug
LOSSES = ("nonsaturating", "hinge", "lsgan", "wgan-gp")  # adversarial losses (--loss; losses.d_loss / g_loss)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # --precision / TrainConfig.precision
EXTRACTORS = ("inception", "classifier", "dinov2", "efficientnet-lite0")  # feature spaces of `eval` / --eval-extractor
NOISE_MODES = ("const", "random", "none")  # per-pixel noise of style-based generators (generate, mix, the studio)
CONDITIONING = ("none", "class", "text", "image")  # what a generator can be conditioned on (Capabilities.conditioning)
ON_NAN = ("stop", "rollback")  # what training does when a loss turns NaN/Inf: --on-nan / TrainConfig.on_nan
DIRECTIONS = ("AtoB", "BtoA")  # ways a two-way image-to-image model translates (translate, export, the studio)
FITS = ("pad", "crop", "stretch")  # how `prepare` makes non-square images square (--fit / PrepareOptions.fit)
RESAMPLE_FILTERS = ("nearest", "box", "bilinear", "bicubic", "lanczos")  # `prepare --filter` / PrepareOptions.filter
ATTACK_METHODS = (
    "fgsm",
    "pgd",
    "cw",
    "latent",
)  # `ganforge attack --method` (ganforge.attack; the studio offers fgsm, pgd)
ATTACK_NORMS = ("linf", "l2")  # the perturbation budget's norm: `attack --norm` and the studio's attack page
