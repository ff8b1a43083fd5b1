"""`unlearning.retain_anchor`: against the quality cost of the other robust additions (docs/method.md, "The retain loss
anchored to
the original").

EraseDiff's retain loss regresses the true noise: an unbiased but noisy target, which keeps the retained classes only on
average. When the forget side pushes hard (the relearning term), the retained classes' samples drift from the
original's, and nothing pulls them back but that noisy target. The anchored retain loss adds the original model's own
prediction on the same noised retain images as a second target:

    L_r = ||eps_theta(x_t, t, c) - eps||^2 + weight * ||eps_theta(x_t, t, c) - sg[eps_original(x_t, t, c)]||^2

The second term is zero at the base weights and grows with the drift, so it is a restoring force towards what the
original generates for the retained conditions. It costs one forward pass of a frozen copy of the base UNet per update
(no backward) and that copy's memory. `retain_anchor: 0` runs the paper's plain retain loss.
"""

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from erasediff.method.frozen_original import FrozenOriginal
from erasediff.method.losses import Condition, NoisedBatch, regression_target


def anchored_retain_loss(
    unet: torch.nn.Module,
    original: FrozenOriginal,
    weight: float,
    scheduler: DDPMScheduler,
    batch: NoisedBatch,
    cond: Condition,
) -> torch.Tensor:
    """The diffusion loss plus `weight` times the distance to the frozen original's prediction, from one forward
    pass."""
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    kwargs = cond(batch.labels)
    with torch.no_grad():
        anchor = original(x_t, batch.timesteps, **kwargs).sample.float()
    prediction = unet(x_t, batch.timesteps, **kwargs).sample.float()
    return F.mse_loss(prediction, regression_target(scheduler, batch).float()) + weight * F.mse_loss(prediction, anchor)
