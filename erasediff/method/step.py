"""One update of the configured method, on the batches the loop drew: EraseDiff or a baseline.

Every method sees the same retain and forget batches (drawn from the same seeded streams), so a
comparison between methods differs only in what each does with them. Each loss is handed to the
update rule as a `partial`, so the rule can free one loss's graph before it builds the next.
"""

from functools import partial

import torch
from diffusers import DDPMScheduler

from erasediff.data.image_sets import LabeledImages
from erasediff.method.baselines.esd import esd_loss
from erasediff.method.baselines.rules import esd_update, finetune_update, neggrad_update, saliency_masks, salun_update
from erasediff.method.frozen_original import FrozenOriginal
from erasediff.method.losses import FORGET_LOSSES, Condition, NoisedBatch, diffusion_loss, draw_batch, remap_forget_loss
from erasediff.method.robust.relearn import head, relearned_forget_grads
from erasediff.method.robust.retain_anchor import anchored_retain_loss
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.method.update import Reduce, UpdateStats, erasediff_update
from erasediff.util.errors import ErasediffError


class MethodUpdate:
    """The configured method's update. Built while `unet` still holds the base weights: SalUn's saliency
    mask and the frozen original (ESD's teacher, the retain anchor) are taken from them."""

    def __init__(
        self,
        settings: UnlearnSettings,
        unet: torch.nn.Module,
        params: list[torch.nn.Parameter],
        scheduler: DDPMScheduler,
        cond: Condition,
        forget: LabeledImages,
        null_id: int | None,
        reduce: Reduce,
    ) -> None:
        self.settings, self.unet, self.params, self.scheduler, self.cond, self.null_id, self.reduce = (
            settings,
            unet,
            params,
            scheduler,
            cond,
            null_id,
            reduce,
        )
        self.masks: list[torch.Tensor] | None = None
        self.original: FrozenOriginal | None = None
        if settings.method == "salun":
            self.masks = saliency_masks(params, self._forget_set_losses(forget), settings.salun.mask_fraction, reduce)
        if settings.method == "esd" and null_id is None:
            raise ErasediffError("method esd needs an unconditional (null) condition, which this model lacks")
        if settings.method == "esd" or settings.retain_anchor:
            self.original = FrozenOriginal(unet, params)  # the trainable tensors' base values, not a whole copy

    def __call__(self, retain: NoisedBatch, forget: NoisedBatch, generator: torch.Generator) -> UpdateStats:
        """Write the method's direction to p.grad for every trainable parameter; return the step's statistics."""
        s, unet, scheduler, cond = self.settings, self.unet, self.scheduler, self.cond
        if (
            s.retain_anchor
        ):  # retain_anchor (robust/retain_anchor.py): the original's prediction as a second retain target
            retain_loss = partial(anchored_retain_loss, unet, self.original, s.retain_anchor, scheduler, retain, cond)
        else:
            retain_loss = partial(diffusion_loss, unet, scheduler, retain, cond)
        if s.method == "finetune":
            return finetune_update(self.params, retain_loss, self.reduce)
        if s.method == "esd":
            stop_index = int(torch.randint(s.esd.sampling_steps, (1,), generator=generator))
            forget_of = lambda batch: partial(
                esd_loss,
                unet,
                self.original,
                scheduler,
                batch,
                cond,
                self.null_id,
                stop_index,  # noqa: E731
                s.esd.negative_guidance,
                s.esd.start_guidance,
                s.esd.sampling_steps,
            )
        # each method's forget term: EraseDiff's configured loss, SalUn's remap, NegGrad's plain diffusion loss
        # (ascended)
        else:
            forget_fn = {
                "erasediff": FORGET_LOSSES[s.forget_loss],
                "salun": remap_forget_loss,
                "neggrad": diffusion_loss,
            }[s.method]
            forget_of = lambda batch: partial(forget_fn, unet, scheduler, batch, cond)  # noqa: E731
        forget_loss, relearned = forget_of(forget), None
        if s.relearn is not None:  # relearn (robust/relearn.py): the forget term after a simulated relearning attack
            simulated = head(forget, s.relearn.batch)
            attacker = partial(
                diffusion_loss, unet, scheduler, simulated, cond
            )  # the attacker descends on forget images under their own condition
            relearned = partial(
                relearned_forget_grads, self.params, attacker, forget_of(simulated), s.relearn, self.reduce
            )
        if s.method == "erasediff":
            return erasediff_update(
                self.params,
                retain_loss,
                forget_loss,
                s.lambda_.mode,
                s.lambda_.eta,
                s.lambda_.value,
                self.reduce,
                relearned,
            )
        if s.method == "neggrad":
            return neggrad_update(self.params, retain_loss, forget_loss, s.neggrad.alpha, self.reduce, relearned)
        if s.method == "salun":
            return salun_update(
                self.params, retain_loss, forget_loss, s.salun.alpha, self.masks, self.reduce, relearned
            )
        return esd_update(self.params, forget_loss, self.reduce, relearned)

    def _forget_set_losses(self, forget: LabeledImages) -> list[partial]:
        """The diffusion loss over the whole forget set, one batch each (SalUn's saliency input)."""
        settings, device, T = (
            self.settings,
            next(self.unet.parameters()).device,
            self.scheduler.config.num_train_timesteps,
        )
        size = min(settings.forget_batch_size, len(forget))
        generator = torch.Generator().manual_seed(settings.seed + 104_729)
        batches = [
            draw_batch(forget, size, i, settings.seed, T, generator).to(device) for i in range(-(-len(forget) // size))
        ]
        return [partial(diffusion_loss, self.unet, self.scheduler, b, self.cond) for b in batches]
