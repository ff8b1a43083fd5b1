"""One update of the configured method, on the batches the loop drew: EraseDiff or a baseline.

Every method sees the same retain and forget batches (drawn from the same seeded streams), so a
comparison between methods differs only in what each does with them.
"""

import copy
from collections.abc import Callable

import torch
from diffusers import DDPMScheduler

from .baselines import esd_update, finetune_update, neggrad_update, salun_update, saliency_masks
from .config import UnlearnSettings
from .datasets import LabeledImages
from .errors import ErasediffError
from .esd import esd_loss
from .losses import FORGET_LOSSES, Condition, NoisedBatch, diffusion_loss, draw_batch, remap_forget_loss
from .update import Reduce, UpdateStats, erasediff_update

MethodStep = Callable[[NoisedBatch, NoisedBatch, torch.Generator], UpdateStats]


def method_step(
    settings: UnlearnSettings, unet: torch.nn.Module, params: list[torch.nn.Parameter], scheduler: DDPMScheduler,
    cond: Condition, forget: LabeledImages, null_id: int | None, reduce: Reduce,
) -> MethodStep:
    """Build the update for `settings.method`; `unet` must still hold the base weights (SalUn's mask
    and ESD's frozen original are taken from them)."""
    retain_loss = lambda batch: (lambda: diffusion_loss(unet, scheduler, batch, cond))  # noqa: E731
    if settings.method == "erasediff":
        lam, forget_loss = settings.lambda_, FORGET_LOSSES[settings.forget_loss]
        return lambda r, f, _: erasediff_update(params, retain_loss(r), lambda: forget_loss(unet, scheduler, f, cond),
                                                lam.mode, lam.eta, lam.value, reduce)
    if settings.method == "finetune":
        return lambda r, f, _: finetune_update(params, retain_loss(r), reduce)
    if settings.method == "neggrad":
        return lambda r, f, _: neggrad_update(params, retain_loss(r), retain_loss(f), settings.neggrad.alpha, reduce)
    if settings.method == "salun":
        masks = saliency_masks(params, _forget_set_losses(unet, scheduler, cond, forget, settings), settings.salun.mask_fraction, reduce)
        return lambda r, f, _: salun_update(params, retain_loss(r), lambda: remap_forget_loss(unet, scheduler, f, cond),
                                            settings.salun.alpha, masks, reduce)
    if null_id is None:
        raise ErasediffError("method esd needs an unconditional (null) condition, which this model lacks")
    esd = settings.esd
    original = copy.deepcopy(unet).requires_grad_(False)

    def step(r: NoisedBatch, f: NoisedBatch, generator: torch.Generator) -> UpdateStats:
        k = int(torch.randint(esd.sampling_steps, (1,), generator=generator))
        return esd_update(params, lambda: esd_loss(unet, original, scheduler, f, cond, null_id, k, esd.negative_guidance,
                                                   esd.start_guidance, esd.sampling_steps), reduce)

    return step


def _forget_set_losses(unet: torch.nn.Module, scheduler: DDPMScheduler, cond: Condition, forget: LabeledImages,
                       settings: UnlearnSettings) -> list[Callable[[], torch.Tensor]]:
    """The diffusion loss over the whole forget set, one closure per batch (SalUn's saliency input)."""
    device, T = next(unet.parameters()).device, scheduler.config.num_train_timesteps
    size = min(settings.forget_batch_size, len(forget))
    generator = torch.Generator().manual_seed(settings.seed + 104_729)
    batches = [draw_batch(forget, size, i, settings.seed, T, generator).to(device) for i in range(-(-len(forget) // size))]
    return [lambda b=b: diffusion_loss(unet, scheduler, b, cond) for b in batches]
