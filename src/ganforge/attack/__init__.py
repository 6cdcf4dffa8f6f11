"""Adversarial examples: images that look unchanged to people but change a classifier's answer.

    from ganforge import attack
    model = attack.load_model("digits")                 # or "emoji", a labelled dataset, a run folder, a .safetensors
    res = attack.attack_images(model, x, y, method="pgd", eps=8/255)   # x: float (B, C, H, W) in [0, 1]
    res.rows()                                          # per image: predictions, confidences, success, norms

Conventions of the maintained libraries (ART, foolbox, torchattacks): pixels in [0, 1], ε in that space (8/255
for L∞, 0.5 for L2), normalisation inside the model. Methods: `fgsm` (L∞ sign step, or the L2 fast gradient
method), `pgd` (random start, 20 steps), `cw` (Carlini-Wagner L2) and, for a trained conditional generator,
`latent_attack` (generative adversarial examples, Song et al. 2018). `train_robust` is PGD adversarial training
(Madry et al. 2018). The attacks are ganforge's own, tested against torchattacks' on the same model and inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from .methods import (
    DEFAULT_EPS,
    DEFAULT_STEPS,
    METHODS,
    NORMS,
    check_eps,
    cw,
    default_step_size,
    fgsm,
    latent,
    loss_fn,
    parse_eps,
    pgd,
    quantize_toward,
)
from .models import (
    DiscriminatorClassifier,
    PixelClassifier,
    heldout_split,
    load_classifier_file,
    load_model,
    robust_path,
    save_robust,
    train_robust,
)


@dataclass
class AttackResult:
    """What an attack did to each image. Images are float (B, C, H, W) in [0, 1]; the rest (B,) tensors.
    `labels` are the classes the attack moves away from: the true ones where they were given
    (`label_known`), else the clean predictions. Success: the adversarial prediction is not the label."""

    clean: torch.Tensor
    adv: torch.Tensor
    labels: torch.Tensor
    label_known: torch.Tensor  # bool: labels[i] is a true label, not the clean prediction
    clean_pred: torch.Tensor
    clean_conf: torch.Tensor  # softmax probability of clean_pred
    adv_pred: torch.Tensor
    adv_conf: torch.Tensor
    success: torch.Tensor  # bool
    linf: torch.Tensor  # max |adv - clean| per image
    l2: torch.Tensor  # ||adv - clean||_2 per image
    class_names: list[str]
    method: str
    norm: str
    eps: float | None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # latent: z_dist (L2 from z0), z

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    @property
    def clean_accuracy(self) -> float:
        """Share of images whose clean prediction is their label (1 where labels are the clean predictions)."""
        return float((self.clean_pred == self.labels).double().mean())

    @property
    def adv_accuracy(self) -> float:
        return float((self.adv_pred == self.labels).double().mean())

    @property
    def success_rate(self) -> float:
        return float(self.success.double().mean())

    def name(self, k: int) -> str:
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(k)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image (the CSV's columns, and what a web page shows)."""
        out = []
        known = "requested class" if self.method == "latent" else "true"
        for i in range(len(self)):
            row: dict[str, Any] = {
                "label": self.name(int(self.labels[i])),
                "label_source": known if bool(self.label_known[i]) else "clean prediction",
                "clean_pred": self.name(int(self.clean_pred[i])),
                "clean_conf": round(float(self.clean_conf[i]), 6),
                "adv_pred": self.name(int(self.adv_pred[i])),
                "adv_conf": round(float(self.adv_conf[i]), 6),
                "success": bool(self.success[i]),
                "linf": float(self.linf[i]),
                "l2": float(self.l2[i]),
            }
            if "z_dist" in self.extra:
                row["z_dist"] = float(self.extra["z_dist"][i])
            out.append(row)
        return out


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, its softmax probability) per image, on the CPU."""
    dev = _device(model)
    preds, confs = [], []
    for i in range(0, x.shape[0], batch):
        p = torch.softmax(model(x[i : i + batch].to(dev)).float(), 1)
        conf, pred = p.max(1)
        preds.append(pred.cpu())
        confs.append(conf.cpu())
    return torch.cat(preds), torch.cat(confs)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def summarise(
    model: nn.Module,
    clean: torch.Tensor,
    adv: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    method: str,
    norm: str,
    eps: float | None,
    clean_pred: tuple[torch.Tensor, torch.Tensor] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> AttackResult:
    """The per-image table of an attack: predictions on both images, success and the perturbation's norms."""
    cp, cc = clean_pred or predict(model, clean)
    ap, ac = predict(model, adv)
    known = torch.zeros(len(cp), dtype=torch.bool) if labels is None else labels.cpu() >= 0
    lab = cp.clone() if labels is None else torch.where(known, labels.cpu(), cp)
    delta = (adv.cpu() - clean.cpu()).flatten(1)
    return AttackResult(
        clean=clean.cpu(),
        adv=adv.cpu(),
        labels=lab,
        label_known=known,
        clean_pred=cp,
        clean_conf=cc,
        adv_pred=ap,
        adv_conf=ac,
        success=ap != lab,
        linf=delta.abs().amax(1),
        l2=delta.norm(dim=1),
        class_names=list(model.class_names),
        method=method,
        norm=norm,
        eps=eps,
        extra=extra or {},
    )


def attack_images(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    method: str = "pgd",
    eps: float | None = None,
    norm: str | None = None,
    steps: int | None = None,
    step_size: float | None = None,
    random_start: bool = True,
    c: float = 1.0,
    seed: int = 0,
    batch: int = 64,
    quantize: bool = False,
) -> AttackResult:
    """Attack a batch: `images` float (B, C, H, W) in [0, 1] (any size: the model resizes), `labels` (B,) int
    (-1 or None: use the clean prediction). `method` fgsm | pgd | cw; `norm` linf | l2 (default: l2 for cw,
    else linf); `eps` in [0, 1] pixels (default 8/255 for L∞, 0.5 for L2); `steps` for pgd (20) and cw (100).
    `quantize`: round the adversarial images to the 8-bit grid (inside the ε-ball, `quantize_toward`) and
    report on those, as the PNGs written from them will behave. Deterministic for a given `seed`."""
    if method not in METHODS or method == "latent":
        raise ConfigError(
            f"unknown attack method {method!r} for images; use fgsm, pgd or cw (latent searches a generator: "
            "`latent_attack`)"
        )
    norm = norm or ("l2" if method == "cw" else "linf")
    if method == "cw" and norm != "l2":
        raise ConfigError("Carlini-Wagner is an L2 attack: use --norm l2 (or --method pgd for L∞)")
    eps = DEFAULT_EPS[norm] if eps is None else check_eps(float(eps), norm)
    check_eps(eps, norm)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ConfigError(f"expected a batch of images (B, C, H, W), got shape {tuple(images.shape)}")
    x = images.detach().float()
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ConfigError("images must be floats in [0, 1] (the attack libraries' pixel convention)")
    n_steps = DEFAULT_STEPS.get(method, 1) if steps is None else int(steps)
    if n_steps < 1:
        raise ConfigError(f"--steps {n_steps}: an attack needs at least one step")
    dev = _device(model)
    model.eval()
    cp = predict(model, x)
    y = cp[0] if labels is None else torch.where(labels.cpu() >= 0, labels.cpu().long(), cp[0])
    g = torch.Generator().manual_seed(seed)
    advs = []
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i : i + batch].to(dev), y[i : i + batch].to(dev)
        if method == "fgsm":
            adv = fgsm(model, xb, yb, eps=eps, norm=norm)
        elif method == "pgd":
            adv = pgd(
                model,
                xb,
                yb,
                eps=eps,
                norm=norm,
                steps=n_steps,
                step_size=step_size,
                random_start=random_start,
                generator=g,
            )
        else:
            adv = cw(model, xb, yb, eps=eps, c=c, steps=n_steps)
        advs.append(adv.cpu())
    adv = torch.cat(advs)
    if quantize:
        adv = quantize_toward(x, adv, eps, norm)
    return summarise(model, x, adv, labels, method=method, norm=norm, eps=eps, clean_pred=cp)


def latent_attack(
    generator: Any,
    classifier: nn.Module,
    *,
    seeds: list[int],
    label: int | None = None,
    steps: int = DEFAULT_STEPS["latent"],
    lr: float = 0.05,
    radius: float = 0.1,
    weight: float = 1.0,
    quantize: bool = False,
) -> AttackResult:
    """Generative adversarial examples from a trained class-conditional `generator` (a `ganforge.load`ed Model):
    for each seed, its latent z0 and class (`label`, else seed % classes), search z near z0 for an image of that
    class that `classifier` mislabels (`methods.latent`). Clean = G(z0, y), adversarial = G(z, y); success: the
    classifier's prediction on G(z, y) is not y. The generator's classes must be the classifier's (same names)."""
    from ..sample.latents import labels_for_seeds, latents_for_seeds
    from ..spec import NoiseRequest

    spec = generator.spec
    if not spec.num_classes:
        raise ConfigError(
            f"{generator.run_dir} is not class-conditional: the latent attack keeps the generator's class fixed "
            "and needs a conditional model (train with --cond)"
        )
    names = list(getattr(classifier, "class_names", []))
    if list(spec.class_names) and names and list(spec.class_names) != names:
        raise ConfigError(
            f"the generator's classes ({', '.join(spec.class_names[:5])}...) are not the classifier's "
            f"({', '.join(names[:5])}...): give the classifier of the data it was trained on"
        )
    if label is not None:
        label = generator.label_index(label)
    dev = generator.device
    classifier = classifier.to(dev).eval()
    z0 = latents_for_seeds(seeds, generator.latent_shape, dev)
    y = labels_for_seeds(seeds, spec.num_classes, label, dev)
    assert y is not None

    def generate(z: torch.Tensor, lab: torch.Tensor | None) -> torch.Tensor:
        out = generator.family.generate(generator.nets, NoiseRequest(z, lab))
        return ((out.float() + 1) / 2).clamp(0, 1)  # [-1, 1] -> [0, 1]

    with torch.no_grad():
        clean = generate(z0, y)
    z, adv = latent(classifier, generate, z0, y, steps=steps, lr=lr, radius=radius, weight=weight)
    clean, adv = clean.detach().cpu(), adv.detach().cpu()
    if quantize:
        clean, adv = (clean * 255).round() / 255, (adv * 255).round() / 255
    z_dist = (z - z0).flatten(1).norm(dim=1).cpu()
    return summarise(
        classifier, clean, adv, y.cpu(), method="latent", norm="none", eps=None, extra={"z_dist": z_dist, "z": z.cpu()}
    )


__all__ = [
    "DEFAULT_EPS",
    "METHODS",
    "NORMS",
    "AttackResult",
    "DiscriminatorClassifier",
    "PixelClassifier",
    "attack_images",
    "check_eps",
    "cw",
    "default_step_size",
    "fgsm",
    "heldout_split",
    "latent",
    "latent_attack",
    "load_classifier_file",
    "load_model",
    "loss_fn",
    "parse_eps",
    "pgd",
    "predict",
    "quantize_toward",
    "robust_path",
    "save_robust",
    "summarise",
    "train_robust",
]
