"""Which UNet parameters unlearning may change: presets from the reference code plus glob patterns."""

import fnmatch
from typing import Literal

import torch

from erasediff.util.errors import ErasediffError

Preset = Literal["full", "xattn", "xattn_kv", "noxattn"]


def _is_xattn(name: str) -> bool:
    return ".attn2." in name


def _is_xattn_kv(name: str) -> bool:
    """The cross-attention keys and values: the only weights that read the text (what UCE and Concept Ablation edit)."""
    return ".attn2.to_k." in name or ".attn2.to_v." in name


def _in_preset(name: str, preset: Preset) -> bool:
    if preset == "full":
        return True
    if preset == "xattn":
        return _is_xattn(name)
    if preset == "xattn_kv":
        return _is_xattn_kv(name)
    # noxattn: all but cross-attention, the time embedding and the output block, its norm included (the reference's
    # `out.`, SD nudity).
    return not (_is_xattn(name) or name.startswith(("time_embedding.", "conv_norm_out.", "conv_out.")))


def select_parameters(
    module: torch.nn.Module, preset: Preset = "full", include: list[str] | None = None, exclude: list[str] | None = None
) -> dict[str, torch.nn.Parameter]:
    """Preset, then `include` globs add names, then `exclude` globs remove them. An empty selection is an error."""
    include, exclude = include or [], exclude or []
    chosen = {}
    for name, param in module.named_parameters():
        keep = _in_preset(name, preset) or any(fnmatch.fnmatch(name, p) for p in include)
        if keep and not any(fnmatch.fnmatch(name, p) for p in exclude):
            chosen[name] = param
    if not chosen:
        raise ErasediffError(
            f"parameter selection preset={preset} include={include} exclude={exclude} selects no parameter of "
            f"{type(module).__name__}"
        )
    return chosen
