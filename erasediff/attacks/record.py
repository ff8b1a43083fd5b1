"""What every attack returns: the attacked samples, the success the evaluator reads in them, and how it was run."""

from dataclasses import dataclass, field

import torch


@dataclass
class AttackResult:
    name: str
    success: float  # share of attacked samples the evaluator reads as the erased class (or NudeNet flags)
    samples: torch.Tensor  # (N, C, H, W) in [-1, 1]: the attacked samples behind `success`
    protocol: dict = field(default_factory=dict)  # attack, budget, k, steps, lr, seeds: enough to rerun it
    curve: list[dict] = field(default_factory=list)  # one point per budget read: its k, steps, lr, guidance, success
