"""Frozen parts of a text-to-image pipeline, run once: prompt embeddings and VAE latents.

EraseDiff trains only the UNet. The text encoder(s) and the VAE are used under no_grad before the
loop starts, so they never enter the optimizer or a gradient computation, and their activations are
not recomputed per step (latent caching). A UNet call then needs only integer prompt ids:
`PromptTable.unet_kwargs(ids)` turns them into what `UNet2DConditionModel.forward` takes, for SD 1.x/2.x
(encoder_hidden_states) and SDXL (plus pooled text embeddings and size/crop time ids).
"""

from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm


@dataclass
class PromptTable:
    """Embeddings of a fixed list of prompts, indexed by position."""

    prompts: list[str]
    hidden: torch.Tensor  # (P, L, D) encoder_hidden_states
    pooled: torch.Tensor | None = None  # (P, D2), SDXL only
    time_ids: torch.Tensor | None = None  # (1, 6), SDXL only

    def to(self, device: torch.device) -> "PromptTable":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PromptTable(self.prompts, self.hidden.to(device), move(self.pooled), move(self.time_ids))

    def unet_kwargs(self, ids: torch.Tensor) -> dict:
        kwargs: dict = {"encoder_hidden_states": self.hidden[ids]}
        if self.pooled is not None:
            kwargs["added_cond_kwargs"] = {
                "text_embeds": self.pooled[ids],
                "time_ids": self.time_ids.expand(len(ids), -1),
            }
        return kwargs


def image_size(pipe: DiffusionPipeline) -> int:
    """Pixel size the pipeline generates by default: UNet sample size times the VAE's downsampling."""
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


def is_sdxl(pipe: DiffusionPipeline) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None and pipe.unet.config.addition_embed_type == "text_time"


@torch.no_grad()
def encode_prompts(
    pipe: DiffusionPipeline, prompts: list[str], device: torch.device, batch_size: int = 64
) -> PromptTable:
    """Embed each prompt exactly as the pipeline does at sampling time (its own encode_prompt); the table lives on
    `device`."""
    hidden, pooled = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        encoded = pipe.encode_prompt(
            prompt=chunk, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        hidden.append(encoded[0])
        if is_sdxl(pipe):
            pooled.append(encoded[2])
    if not is_sdxl(pipe):
        return PromptTable(list(prompts), torch.cat(hidden))
    size = image_size(pipe)
    time_ids = torch.tensor(
        [[size, size, 0, 0, size, size]], dtype=hidden[0].dtype, device=device
    )  # original size, crop (0,0), target size
    return PromptTable(list(prompts), torch.cat(hidden), torch.cat(pooled), time_ids)


@torch.no_grad()
def encode_images(
    pipe: DiffusionPipeline, images: torch.Tensor, batch_size: int = 16, progress: bool = True
) -> torch.Tensor:
    """[-1, 1] images (N, C, H, W) -> scaled VAE latents (the posterior mode: one fixed latent per image)."""
    vae = pipe.vae
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="VAE latents", disable=not progress):
        x = images[start : start + batch_size].to(vae.device, vae.dtype)
        out.append(((vae.encode(x).latent_dist.mode() - shift) * vae.config.scaling_factor).float().cpu())
    return torch.cat(out)
