"""Unlearning a concept from a text-to-image pipeline: the `remap` loss towards anchor prompts.

The forget loss asks the UNet to denoise an image of the concept, under the concept's caption, the
way the current model (stop-gradient) denoises the same noisy latent under an anchor prompt
("a photo of a person wearing clothes" for nudity). Prompts and latents are computed once with the
frozen text encoder(s) and VAE (`models/text_encoding.py`); the loop itself is `loop.unlearn_unet`,
shared with class-conditional models.
"""

from pathlib import Path

import torch
from diffusers import DDPMScheduler, DiffusionPipeline

from erasediff.data.image_sets import CaptionedImages, LabeledImages
from erasediff.method.loop import MetricsCallback, unlearn_unet
from erasediff.method.runtime.probe import ProbeFactory
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.text_encoding import encode_images, encode_prompts
from erasediff.util.device import resolve_device
from erasediff.util.errors import DataError, ErasediffError
from erasediff.util.hashing import config_hash


def unique(items: list[str]) -> list[str]:
    """Order-preserving de-duplication (prompt tables index prompts by first appearance)."""
    return list(dict.fromkeys(items))


def check_anchors(forget_captions: list[str], anchors: list[str]) -> None:
    """An anchor that is also a forget caption would make `remap` aim the concept at itself."""
    if not anchors:
        raise DataError(
            "target.anchors is empty: remap needs at least one anchor prompt to aim the forgotten concept at"
        )
    clash = sorted(set(anchors) & set(forget_captions))
    if clash:
        raise DataError(f"anchor prompt {clash[0]!r} is also a forget-set caption")


def as_tensor_ids(captions: list[str], prompts: list[str]) -> torch.Tensor:
    return torch.tensor([prompts.index(c) for c in captions], dtype=torch.long)


def unlearn_concept(
    pipe: DiffusionPipeline,
    forget: CaptionedImages,
    retain: CaptionedImages,
    anchors: list[str],
    settings: UnlearnSettings,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    callback: MetricsCallback | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    probe: ProbeFactory | None = None,
) -> torch.nn.Module:
    """The unlearned UNet (a copy; `pipe` is not modified). `probe` replaces the held-out loss probe."""
    if len(forget) == 0 or len(retain) == 0:
        raise DataError(f"{'forget' if len(forget) == 0 else 'retain'} set is empty")
    if settings.uses_substitutes:
        check_anchors(forget.captions, anchors)
    if settings.forget_row != "keep":
        raise ErasediffError(
            "unlearning.forget_row null sets class-embedding rows; a text-to-image pipeline has none: use keep"
        )
    device = resolve_device()
    frozen = [m for m in (pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if m is not None]
    for module in frozen:
        module.to(device).requires_grad_(False)
    prompts = unique(forget.captions + retain.captions + anchors + [""])  # "": the unconditional prompt (ESD)
    table = encode_prompts(pipe, prompts, device)
    latents = {
        name: encode_images(pipe, s.images, progress=progress) for name, s in (("forget", forget), ("retain", retain))
    }
    for module in frozen:  # off the accelerator: only the UNet trains
        module.to("cpu")
    forget_set = LabeledImages(latents["forget"], as_tensor_ids(forget.captions, prompts))
    retain_set = LabeledImages(latents["retain"], as_tensor_ids(retain.captions, prompts))
    substitutes = as_tensor_ids(anchors, prompts) if anchors else None
    key = {"prompts": config_hash(prompts), "anchors": anchors}
    return unlearn_unet(
        pipe.unet,
        DDPMScheduler.from_config(pipe.scheduler.config),
        table.unet_kwargs,
        forget_set,
        retain_set,
        substitutes,
        settings,
        key,
        null_id=prompts.index(""),
        probe=probe,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        callback=callback,
        stop_after=stop_after,
        progress=progress,
    )
