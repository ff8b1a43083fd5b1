"""Wilson score intervals (95 %) for accuracies and rates measured on N samples.

A forgotten-class accuracy of 10 % on 40 samples is consistent with a true rate of 22 %: a gate that compares the
point estimate passes models it cannot tell apart from worse ones. Each such metric is reported with its bounds
(`<metric>_lower`, `<metric>_upper`), computed on the pooled samples, and a gate may compare the conservative one.
"""

import math

import torch

from erasediff.evaluation.class_accuracy import ClassScore

Z95 = 1.959963984540054
INTERVAL = "Wilson score interval, 95 %, on the pooled samples"


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """(lower, upper) for `successes` out of `n`; (0, 1) when nothing was measured."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if p == 0.0 else max(0.0, centre - half)  # exact at the ends (rounding leaves ~1e-17 otherwise)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def bounds(name: str, successes: float, n: int) -> dict[str, float]:
    low, high = wilson(successes, n)
    return {f"{name}_lower": low, f"{name}_upper": high}


def class_bounds(
    name: str, scores: dict[int, ClassScore], labels: torch.Tensor, classes: list[int]
) -> dict[str, float]:
    """Bounds of the accuracy over every sample of `classes` (each class's accuracy weighted by its sample count)."""
    counts = {c: int((labels == c).sum()) for c in classes}
    return bounds(name, sum(scores[c].accuracy * counts[c] for c in classes), sum(counts.values()))
