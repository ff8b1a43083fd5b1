"""Adapter erasure: train a LoRA (peft) on the preset's layers instead of the weights themselves.

The selected parameters say which layers may change; each Linear or Conv2d among them gets a rank-r
adapter W + (alpha / r) B A, with B = 0 at the start, so the erasure starts from the base model exactly.
Only A and B train (norms and biases in the selection stay frozen: a LoRA has no counterpart for them).
A text-to-image version then stores the adapter alone, in diffusers' LoRA format beside the base's
unchanged UNet (`models/text_pipeline.py`), and loading fuses it. Class-conditional models (diffusers'
UNet2DModel has no adapter support) train full weights; they are small enough that an adapter saves little.
"""

import re

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from pydantic import Field

from erasediff.util.config import Strict
from erasediff.util.errors import ErasediffError

ADAPTER_LAYERS = (torch.nn.Linear, torch.nn.Conv2d)


class AdapterSettings(Strict):
    rank: int = Field(4, gt=0, description="LoRA rank r")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha (scale alpha / r); null = r, a scale of 1")


def adapter_config(
    unet: torch.nn.Module, selected: dict[str, torch.nn.Parameter], settings: AdapterSettings
) -> LoraConfig:
    """A LoRA on every Linear/Conv2d layer whose weight the preset selects, named exactly (a regex full match)."""
    chosen = {name.removesuffix(".weight") for name in selected if name.endswith(".weight")}
    layers = sorted(
        name for name, module in unet.named_modules() if name in chosen and isinstance(module, ADAPTER_LAYERS)
    )
    if not layers:
        raise ErasediffError(
            "unlearning.adapter: the parameter selection holds no Linear or Conv2d weight to put a LoRA on"
        )
    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha or settings.rank,
        init_lora_weights=True,
        target_modules="^(" + "|".join(re.escape(name) for name in layers) + ")$",
    )


def add_adapter(
    unet: torch.nn.Module, selected: dict[str, torch.nn.Parameter], settings: AdapterSettings
) -> dict[str, torch.nn.Parameter]:
    """Put the LoRA into `unet` (in place) and return its parameters, the only ones the loop trains."""
    if not hasattr(unet, "add_adapter"):
        raise ErasediffError(
            f"unlearning.adapter needs a UNet with diffusers' adapter support (a text-to-image pipeline's); "
            f"{type(unet).__name__} trains full weights: remove unlearning.adapter"
        )
    unet.add_adapter(adapter_config(unet, selected, settings))
    return {name: p for name, p in unet.named_parameters() if ".lora_" in name}


def has_adapter(unet: torch.nn.Module) -> bool:
    return bool(getattr(unet, "_hf_peft_config_loaded", False))


def adapter_state(unet: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    """The adapter's tensors and its peft config (what diffusers' `save_lora_weights` stores)."""
    return get_peft_model_state_dict(unet), unet.peft_config["default"].to_dict()


def fused(unet: torch.nn.Module) -> torch.nn.Module:
    """`unet` with the adapter merged into its weights and the LoRA layers removed (in place)."""
    if has_adapter(unet):
        unet.fuse_lora()
        unet.unload_lora()
    return unet
