"""Sampling, seeded and batched: class-conditional DDPM/DDIM with classifier-free guidance, and
text-to-image pipelines one image per prompt row.

Guidance follows diffusers: eps = eps_null + scale * (eps_class - eps_null). The initial noise of all
images is drawn at once from `seed`, so an image's starting noise does not depend on the batch size,
and two models sampled with the same arguments start from identical noise. A prompt row carries its
own seed, so its image is the same whatever batch it is drawn in.
"""

from typing import Literal

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, UNet2DModel
from tqdm.auto import tqdm

from erasediff.data.prompts import PromptRow

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


@torch.no_grad()
def sample_prompts(
    pipe: DiffusionPipeline,
    rows: list[PromptRow],
    steps: int,
    default_guidance: float,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1]; row i always starts from its own seed, whatever the batching."""
    out = []
    bar = tqdm(total=len(rows), desc="text-to-image", disable=not progress)
    start = 0
    while start < len(rows):
        guidance = rows[start].guidance if rows[start].guidance is not None else default_guidance
        end = start
        while (
            end < len(rows)
            and end - start < batch_size
            and (rows[end].guidance if rows[end].guidance is not None else default_guidance) == guidance
        ):
            end += 1
        chunk = rows[start:end]
        images = pipe(
            prompt=[r.prompt for r in chunk],
            generator=[torch.Generator().manual_seed(r.seed) for r in chunk],
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=size,
            width=size,
            output_type="pt",
        ).images
        out.append(images.float().cpu() * 2 - 1)
        bar.update(len(chunk))
        start = end
    bar.close()
    return torch.cat(out)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB samples for a grey evaluator (channel mean) or grey images for an RGB one (repeated)."""
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return images.mean(1, keepdim=True)
    return images.repeat(1, channels // images.shape[1], 1, 1)
