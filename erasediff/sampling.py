"""DDPM and DDIM sampling with classifier-free guidance, batched and seeded.

Guidance follows diffusers: eps = eps_null + scale * (eps_class - eps_null). The initial noise of all
images is drawn at once from `seed`, so an image's starting noise does not depend on the batch size,
and two models sampled with the same arguments start from identical noise.
"""

from typing import Literal

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

Sampler = Literal["ddim", "ddpm"]


def make_sampler(train_scheduler: DDPMScheduler, sampler: Sampler, steps: int) -> DDIMScheduler | DDPMScheduler:
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    scheduler = cls.from_config(train_scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def sample_classes(
    unet: UNet2DModel,
    train_scheduler: DDPMScheduler,
    labels: torch.Tensor,
    null_class: int,
    guidance: float = 2.0,
    steps: int = 50,
    sampler: Sampler = "ddim",
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """Images in [-1, 1] (N, C, H, W), one per entry of `labels`, on the CPU."""
    device = next(unet.parameters()).device
    size, channels = unet.config.sample_size, unet.config.in_channels
    noise = torch.randn(len(labels), channels, size, size, generator=torch.Generator().manual_seed(seed))
    scheduler = make_sampler(train_scheduler, sampler, steps)
    was_training = unet.training
    unet.eval()
    out = []
    batches = range(0, len(labels), batch_size)
    bar = tqdm(total=len(batches) * steps, desc=f"sampling {len(labels)} images", disable=not progress, leave=False)
    for index, start in enumerate(batches):
        x = noise[start : start + batch_size].to(device)
        cond = labels[start : start + batch_size].to(device)
        both = torch.cat([cond, torch.full_like(cond, null_class)])
        step_generator = torch.Generator().manual_seed(seed * 100_003 + index + 1)
        for t in scheduler.timesteps:
            eps_cond, eps_null = unet(torch.cat([x, x]), t, class_labels=both).sample.float().chunk(2)
            eps = eps_null + guidance * (eps_cond - eps_null)
            x = scheduler.step(eps.cpu(), t, x.cpu(), generator=step_generator).prev_sample.to(device)
            bar.update()
        out.append(x.clamp(-1, 1).cpu())
    bar.close()
    unet.train(was_training)
    return torch.cat(out)
