"""One update of the configured method, on the batches the loop drew: EraseDiff or a baseline.

Every method sees the same retain and forget batches (drawn from the same seeded streams), so a
comparison between methods differs only in what each does with them. Each loss is handed to the
update rule as a `partial`, so the rule can free one loss's graph before it builds the next.
"""

import copy
from functools import partial

import torch
from diffusers import DDPMScheduler

from erasediff.data.image_sets import LabeledImages
from erasediff.method.baselines import esd_update, finetune_update, neggrad_update, saliency_masks, salun_update
from erasediff.method.esd import esd_loss
from erasediff.method.losses import FORGET_LOSSES, Condition, NoisedBatch, diffusion_loss, draw_batch, remap_forget_loss
from erasediff.method.robust import head, relearned_forget_grads
from erasediff.method.settings import UnlearnSettings
from erasediff.method.update import Reduce, UpdateStats, erasediff_update
from erasediff.util.errors import ErasediffError


class MethodUpdate:
    """The configured method's update. Built while `unet` still holds the base weights: SalUn's saliency
    mask and ESD's frozen original are taken from them."""

    def __init__(self, settings: UnlearnSettings, unet: torch.nn.Module, params: list[torch.nn.Parameter], scheduler: DDPMScheduler,
                 cond: Condition, forget: LabeledImages, null_id: int | None, reduce: Reduce) -> None:
        self.settings, self.unet, self.params, self.scheduler, self.cond, self.null_id, self.reduce = (
            settings, unet, params, scheduler, cond, null_id, reduce)
        self.masks: list[torch.Tensor] | None = None
        self.original: torch.nn.Module | None = None
        if settings.method == "salun":
            self.masks = saliency_masks(params, self._forget_set_losses(forget), settings.salun.mask_fraction, reduce)
        if settings.method == "esd":
            if null_id is None:
                raise ErasediffError("method esd needs an unconditional (null) condition, which this model lacks")
            self.original = copy.deepcopy(unet).requires_grad_(False)

    def __call__(self, retain: NoisedBatch, forget: NoisedBatch, generator: torch.Generator) -> UpdateStats:
        """Write the method's direction to p.grad for every trainable parameter; return the step's statistics."""
        s, unet, scheduler, cond = self.settings, self.unet, self.scheduler, self.cond
        retain_loss = partial(diffusion_loss, unet, scheduler, retain, cond)
        if s.method == "erasediff":
            forget_loss = partial(FORGET_LOSSES[s.forget_loss], unet, scheduler, forget, cond)
            extra = None
            if s.relearn is not None:  # the project's extension (robust.py): the forget loss after a simulated relearning attack
                simulated = head(forget, s.relearn.batch)
                attacker = partial(diffusion_loss, unet, scheduler, simulated, cond)  # the attacker descends on forget images under their own condition
                attacked_forget_loss = partial(FORGET_LOSSES[s.forget_loss], unet, scheduler, simulated, cond)
                extra = partial(relearned_forget_grads, self.params, attacker, attacked_forget_loss, s.relearn, self.reduce)
            return erasediff_update(self.params, retain_loss, forget_loss, s.lambda_.mode, s.lambda_.eta, s.lambda_.value, self.reduce, extra)
        if s.method == "finetune":
            return finetune_update(self.params, retain_loss, self.reduce)
        if s.method == "neggrad":
            forget_diffusion_loss = partial(diffusion_loss, unet, scheduler, forget, cond)
            return neggrad_update(self.params, retain_loss, forget_diffusion_loss, s.neggrad.alpha, self.reduce)
        if s.method == "salun":
            remap_loss = partial(remap_forget_loss, unet, scheduler, forget, cond)
            return salun_update(self.params, retain_loss, remap_loss, s.salun.alpha, self.masks, self.reduce)
        stop_index = int(torch.randint(s.esd.sampling_steps, (1,), generator=generator))  # esd
        loss = partial(esd_loss, unet, self.original, scheduler, forget, cond, self.null_id, stop_index, s.esd.negative_guidance,
                       s.esd.start_guidance, s.esd.sampling_steps)
        return esd_update(self.params, loss, self.reduce)

    def _forget_set_losses(self, forget: LabeledImages) -> list[partial]:
        """The diffusion loss over the whole forget set, one batch each (SalUn's saliency input)."""
        settings, device, T = self.settings, next(self.unet.parameters()).device, self.scheduler.config.num_train_timesteps
        size = min(settings.forget_batch_size, len(forget))
        generator = torch.Generator().manual_seed(settings.seed + 104_729)
        batches = [draw_batch(forget, size, i, settings.seed, T, generator).to(device) for i in range(-(-len(forget) // size))]
        return [partial(diffusion_loss, self.unet, self.scheduler, b, self.cond) for b in batches]
