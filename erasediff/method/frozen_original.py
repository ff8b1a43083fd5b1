"""The frozen original (ESD's teacher, the retain anchor's target) held as a copy of the trainable tensors only.

The weights an update never trains are still the original's, so the original's prediction is the working UNet called
with its trainable tensors swapped for their saved base values (`torch.func.functional_call`). A full deepcopy would
add the whole UNet; this adds the trainable subset: at SD 1.5 size 3.4 GB for a full copy, 0.06 GB with the xattn
preset, and a LoRA's own few MB.
"""

import torch
from torch.func import functional_call


class FrozenOriginal:
    """Callable like the UNet it was taken from, answering with the weights that UNet had at construction."""

    def __init__(self, unet: torch.nn.Module, params: list[torch.nn.Parameter]) -> None:
        trained = {id(p) for p in params}
        self.unet = unet
        self.saved = {n: p.detach().clone() for n, p in unet.named_parameters() if id(p) in trained}

    def __call__(self, *args, **kwargs):
        with torch.no_grad():
            return functional_call(self.unet, self.saved, args, kwargs)
