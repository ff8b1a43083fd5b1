"""Sampling text-to-image pipelines: one seeded image per prompt row, whatever the batching."""

import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from .prompts import PromptRow


@torch.no_grad()
def sample_prompts(pipe: DiffusionPipeline, rows: list[PromptRow], steps: int, default_guidance: float, batch_size: int = 8,
                   size: int | None = None, progress: bool = True) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1]; row i always starts from its own seed, whatever the batching."""
    out = []
    bar = tqdm(total=len(rows), desc="text-to-image", disable=not progress)
    start = 0
    while start < len(rows):
        guidance = rows[start].guidance if rows[start].guidance is not None else default_guidance
        end = start
        while end < len(rows) and end - start < batch_size and (rows[end].guidance if rows[end].guidance is not None else default_guidance) == guidance:
            end += 1
        chunk = rows[start:end]
        images = pipe(
            prompt=[r.prompt for r in chunk], generator=[torch.Generator().manual_seed(r.seed) for r in chunk],
            num_inference_steps=steps, guidance_scale=guidance, height=size, width=size, output_type="pt",
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
