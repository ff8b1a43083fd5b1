"""`unlearning.relearn`: against relearning attacks (docs/method.md, "Erasure that holds under attack").

EraseDiff's update stays as it is: delta = g_r + lambda_t g_f. What changes is g_f. A simulated attacker takes
`steps` signed-gradient steps of size `lr` from theta on the plain denoising loss of (part of) the forget batch,
under the forgotten condition, as a relearning attack would (Adam's first steps move every weight by about its
lr in the gradient's sign). The forget loss is evaluated at those weights theta' too, and its gradient there,
times `weight`, is added to g_f: first-order meta-unlearning, so that the erasure must hold after the
attacker's steps and not only before them. `relearn: null` runs the paper's plain method.
"""

from collections.abc import Callable

import torch
from pydantic import Field

from erasediff.method.losses import NoisedBatch
from erasediff.method.update import LossFn, grads_of
from erasediff.util.config import Strict


class RelearnSettings(Strict):
    """Defaults as the text recipe ships them (5 signed steps of 6e-4 at weight 3 on 16 rows); recipe robust weighs
    it 12 on class models."""

    steps: int = Field(5, gt=0, description="signed-gradient steps of the simulated attacker")
    lr: float = Field(
        6e-4, gt=0, description="size of each step; steps x lr is about the ground 30 Adam steps at 1e-4 cover"
    )
    weight: float = Field(
        3.0, gt=0, description="weight of the forget loss at the attacked weights, next to the plain forget loss"
    )
    batch: int | None = Field(
        16,
        gt=0,
        description="forget rows the simulation uses (the first of each forget batch; null = all): an attacker holds "
        "few images",
    )


def head(batch: NoisedBatch, n: int | None) -> NoisedBatch:
    """The batch's first `n` rows (all when n is None)."""
    cut = lambda t: None if t is None else t[:n]  # noqa: E731
    return NoisedBatch(cut(batch.x0), cut(batch.labels), cut(batch.noise), cut(batch.timesteps), cut(batch.substitute))


def relearned_forget_grads(
    params: list[torch.nn.Parameter],
    attack_loss: LossFn,
    forget_loss: LossFn,
    settings: RelearnSettings,
    reduce: Callable[[list[torch.Tensor]], list[torch.Tensor]],
) -> list[torch.Tensor]:
    """weight * grad L_f at theta' = theta after the simulated attacker's steps; theta is restored before returning."""
    saved = [p.detach().clone() for p in params]
    try:
        for _ in range(settings.steps):
            g = reduce(grads_of(attack_loss(), params))
            with torch.no_grad():
                for p, gi in zip(params, g):
                    p.sub_(gi.sign(), alpha=settings.lr)
            del g  # gone before the next gradient is formed: two gradient-sized buffers at most, with `saved`
        return [g.mul_(settings.weight) for g in reduce(grads_of(forget_loss(), params))]
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
