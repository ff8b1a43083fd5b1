"""Where a job's models run: the GPU when the node has one, unless a setting keeps them on the CPU."""

from typing import Literal

import torch

from erasediff.util.errors import ErasediffError

DeviceSetting = Literal["auto", "cpu", "cuda"]


def resolve_device(setting: DeviceSetting = "auto") -> torch.device:
    """`auto`: cuda when torch sees a GPU, else cpu. `cuda` on a node without one is an error, not a silent CPU run
    that would take hours at Stable Diffusion size."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ErasediffError("device is cuda, but torch sees no GPU on this node (use auto or cpu)")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
