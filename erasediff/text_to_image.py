"""Text-to-image diffusers pipelines from local folders, sampled one seeded image per prompt row."""

from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from .errors import ModelLoadError
from .model_io import UNET_WEIGHTS, require_safetensors
from .prompts import PromptRow


def load_text_to_image(path: str | Path) -> DiffusionPipeline:
    """Any diffusers text-to-image pipeline folder (SD 1.x/2.x, SDXL); safetensors only, no safety-checker download."""
    root = Path(path)
    if not (root / "model_index.json").is_file():
        raise ModelLoadError(f"{root} is not a diffusers pipeline folder: missing {root / 'model_index.json'}")
    require_safetensors(root / "unet", UNET_WEIGHTS)
    try:
        return DiffusionPipeline.from_pretrained(root, local_files_only=True, use_safetensors=True, safety_checker=None, requires_safety_checker=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load pipeline from {root}: {str(exc).splitlines()[0]}") from exc


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
