"""Data: sources, the prepare pipeline, archives in the StyleGAN2-ADA format and in-memory datasets."""

from .dataset import ImageDataset, PointDataset, load_dataset

__all__ = ["ImageDataset", "PointDataset", "load_dataset"]
