"""The family registry: names feed the CLI's --model choices; a miss lists what exists."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .families.base import Family

# name -> "module:attribute". Modules are imported lazily so `ganforge --help` stays fast.
_FAMILY_PATHS: dict[str, str] = {
    "dcgan": "ganforge.families.dcgan:DCGAN",
    "gan": "ganforge.families.gan:GAN",
    "wgan-gp": "ganforge.families.wgan_gp:WGANGP",
    "sngan": "ganforge.families.sngan:SNGAN",
    "vae": "ganforge.families.vae:VAE",
    "stylegan2": "ganforge.families.stylegan2:StyleGAN2",
    "pix2pix": "ganforge.families.pix2pix:Pix2Pix",
    "cyclegan": "ganforge.families.cyclegan:CycleGAN",
    "srgan": "ganforge.families.srgan:SRGAN",
    "fastgan": "ganforge.families.fastgan:FastGAN",
    "dfgan": "ganforge.families.dfgan:DFGAN",
    "gan3d": "ganforge.families.gan3d:GAN3D",
}


# name -> one line for `ganforge train --help` (kept here so that help does not import torch).
DESCRIPTIONS: dict[str, str] = {
    "dcgan": "DCGAN (Radford et al. 2015); --cond for class-conditional, --loss to pick the loss",
    "gan": "Goodfellow et al. 2014 MLP GAN, for flattened small images and 2-D points",
    "wgan-gp": "WGAN with gradient penalty (Gulrajani et al. 2017), 5 critic steps",
    "sngan": "spectral normalisation in D with the hinge loss (Miyato et al. 2018)",
    "vae": "convolutional VAE (Kingma & Welling 2014; beta option): reconstruct, sample, encode",
    "stylegan2": "StyleGAN2-ADA (Karras et al. 2020) in plain PyTorch; --aug ada for small data; --set cfg=small on a CPU",
    "pix2pix": "paired translation (Isola et al. 2017): U-Net + PatchGAN + L1; --set preset=colorize for any RGB set",
    "cyclegan": "unpaired translation (Zhu et al. 2017): two ResNet G, two PatchGAN D, cycle + identity losses",
    "srgan": "super-resolution (Ledig et al. 2017): SRResNet x2/x4, PSNR pre-training then GAN; any image set",
    "fastgan": "FastGAN (Liu et al. 2021): SLE generator, self-supervised D; few-shot sets, --aug diffaugment by default",
    "dfgan": "DF-GAN (Tao et al. 2022): caption -> image, fusion blocks, MA-GP; its own text encoder, no download",
    "gan3d": "3D-GAN (Wu et al. 2016): voxel shapes (--data shapes3d), 3-D transposed convs, D gated at 80 % accuracy",
}


def family_names() -> list[str]:
    """Names of the registered families whose module is importable (in registry order)."""
    names = []
    for name, path in _FAMILY_PATHS.items():
        module = path.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def get_family(name: str) -> Family:
    """Return a fresh instance of the family called `name`."""
    if name not in _FAMILY_PATHS or name not in family_names():
        raise ConfigError(f"unknown model '{name}': choose one of {', '.join(family_names())}")
    module_name, attr = _FAMILY_PATHS[name].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls()


# Pretrained weights other than ganforge run folders, by file suffix: "module:function" taking the file's path and
# returning (family settings read from the file, {network: state dict}). Families declare the suffixes they accept
# (`Family.pretrained_sources`); the readers are imported only when used, so training imports no reader (interop
# sits above training).
_PRETRAINED_READERS: dict[str, str] = {
    ".pkl": "ganforge.interop.nvlabs:read_pretrained",
}


def pretrained_reader(suffix: str) -> Callable[[str], tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """The reader of pretrained weights stored in files ending in `suffix` (e.g. ".pkl")."""
    path = _PRETRAINED_READERS.get(suffix.lower())
    if path is None:
        raise ConfigError(f"no reader for pretrained '{suffix}' files; use a ganforge run folder or one of: {', '.join(_PRETRAINED_READERS)}")
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)


def register(name: str, path: str) -> None:
    """Register a family from outside the package (plugins): `register("mygan", "pkg.mod:MyGAN")`."""
    _FAMILY_PATHS[name] = path
