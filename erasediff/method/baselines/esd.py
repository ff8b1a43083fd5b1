"""ESD (Gandikota et al., "Erasing Concepts from Diffusion Models", 2023): the negative-guidance target.

Data-free: no retain set and no real image. Each update draws x_t by sampling the *current* model
under the concept with classifier-free guidance from pure noise down to a random DDIM step k, then
regresses the concept's prediction onto the frozen original model's guidance pushed the other way:

    target = eps_orig(x_t, t, null) - eta * (eps_orig(x_t, t, c) - eps_orig(x_t, t, null))
    L_esd  = || eps_theta(x_t, t, c) - target ||^2
"""

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from erasediff.method.frozen_original import FrozenOriginal
from erasediff.method.losses import Condition, NoisedBatch
from erasediff.models.sampling import make_sampler


def esd_loss(
    unet: torch.nn.Module,
    original: FrozenOriginal,
    scheduler: DDPMScheduler,
    batch: NoisedBatch,
    cond: Condition,
    null_id: int,
    stop_index: int,
    negative_guidance: float,
    start_guidance: float,
    sampling_steps: int,
) -> torch.Tensor:
    """`batch` gives the concept's condition ids and the starting noise (its images are not used)."""
    sampler = make_sampler(scheduler, "ddim", sampling_steps)
    concept, null = batch.labels, torch.full_like(batch.labels, null_id)
    both = cond(torch.cat([concept, null]))
    x = batch.noise
    with torch.no_grad():
        for t in sampler.timesteps[:stop_index]:
            eps_c, eps_null = unet(torch.cat([x, x]), t, **both).sample.float().chunk(2)
            x = sampler.step(eps_null + start_guidance * (eps_c - eps_null), t, x).prev_sample.to(batch.noise.dtype)
        t = sampler.timesteps[stop_index].expand(len(x)).to(x.device)
        orig_c, orig_null = original(torch.cat([x, x]), torch.cat([t, t]), **both).sample.float().chunk(2)
        target = orig_null - negative_guidance * (orig_c - orig_null)
    return F.mse_loss(unet(x, t, **cond(concept)).sample.float(), target)
