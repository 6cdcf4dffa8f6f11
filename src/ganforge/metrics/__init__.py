"""Evaluation: feature extractors and metrics as pure functions on feature arrays, and the evaluator.

Numbers here mean what they mean in papers: FID/KID/precision-recall/IS use the FID Inception network
(TF 2015-12-05 weights, through torch-fidelity) with its standard resize, and every result names the
extractor, weights checksum, resize and image counts it was computed with. For offline CPU work on
labelled data, a small classifier trained on the real data gives a fast, domain-specific signal,
including class coverage (mode collapse).

    from ganforge.metrics import evaluate
    evaluate("samples/", "emoji", metrics=["fid", "kid"])            # two image sources
    evaluate(fn, "digits", metrics="fid,coverage", num=2000, extractor="classifier")  # fn(start, n) -> [-1, 1]
"""

from __future__ import annotations

from .classes import class_coverage, class_histogram
from .evaluate import (
    EXTRACTORS,
    LOWER_IS_BETTER,
    METRICS,
    PRIMARY_KEY,
    RESULT_KEYS,
    Evaluator,
    GenerateFn,
    ImageSource,
    evaluate,
    evaluate_generator,
    generator_from_model,
    is_better,
    metric_label,
    parse_metrics,
    primary_key,
)
from .frechet import feature_statistics, frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .prdc import density_coverage, knn_radii, prdc, precision_recall

__all__ = [
    "EXTRACTORS",
    "LOWER_IS_BETTER",
    "METRICS",
    "PRIMARY_KEY",
    "RESULT_KEYS",
    "Evaluator",
    "GenerateFn",
    "ImageSource",
    "class_coverage",
    "class_histogram",
    "density_coverage",
    "evaluate",
    "evaluate_generator",
    "feature_statistics",
    "frechet_distance",
    "generator_from_model",
    "inception_score",
    "is_better",
    "kernel_inception_distance",
    "knn_radii",
    "metric_label",
    "parse_metrics",
    "prdc",
    "precision_recall",
    "primary_key",
]
