"""Sharpness drift: has the erasure made what it keeps noisier or blurrier?

The evaluator's features are trained to ignore pixel noise and mild blur, and real reference images can be blurrier
than a model's samples (the tiny text model's real digits are 8x8 upsampled), so FID/KID can even fall when samples are
degraded. The variance of the Laplacian (Pech-Pacheco et al., 2000, a standard focus and noise measure) sees both:
noise raises it, blur lowers it. Both models render the same prompts from the same seeds, so the relative change of
its mean is the erasure's effect on sharpness alone.
"""

import torch
import torch.nn.functional as F

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Per image (pixels in [-1, 1], any channel count): the variance of the grey image's Laplacian."""
    grey = images.float().mean(1, keepdim=True)
    return F.conv2d(grey, LAPLACIAN.to(grey.device)).flatten(1).var(1)


def sharpness_change(unlearned: torch.Tensor, original: torch.Tensor) -> float:
    """Mean Laplacian variance of the unlearned model's samples over the original's, minus 1 (same rows, same seeds)."""
    return float(laplacian_variance(unlearned).mean() / laplacian_variance(original).mean().clamp_min(1e-12) - 1)
