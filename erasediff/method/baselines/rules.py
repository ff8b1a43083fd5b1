"""The baselines EraseDiff is compared with, as gradient rules on the same losses (benchmarks/tradeoff.py).

    finetune   g = grad L_r                               (retain set only: forgetting by neglect)
    neggrad    g = grad L_r - alpha grad L_diff(D_f)      (ascent on the forget set only; the reference
                                                            code's NegGrad also ascended the retain loss)
    salun      g = m * (grad L_f^remap + alpha grad L_r)  (SalUn: m = top fraction of |grad L_diff(D_f)|
                                                            at the base weights, computed once)
    esd        g = grad L_esd                             (ESD, data-free: `esd.py`)

Like `erasediff_update`, each rule writes its direction to p.grad for the optimizer and frees each
loss's graph before the next is built. With `relearned` (the relearning term, `robust.py`), the forget term's
gradient at the simulated attacker's weights joins the forget term with the forget term's own weight.
"""

import math
from collections.abc import Callable, Iterable

import torch

from erasediff.method.update import LossFn, Reduce, UpdateStats, dot, grads_of

Extra = (
    tuple[float, Callable[[], list[torch.Tensor]]] | None
)  # (weight, gradients): the relearning term on the forget side (robust.py)


def weighted_update(
    params: list[torch.nn.Parameter],
    terms: list[tuple[float, LossFn]],
    reduce: Reduce,
    masks: list[torch.Tensor] | None = None,
    extra: Extra = None,
) -> list[float]:
    """p.grad = mask * (sum_i w_i grad L_i + w_x g_x); returns each loss's value."""
    total: list[torch.Tensor] | None = None
    values = []
    for weight, loss_fn in terms:
        loss = loss_fn()
        values.append(loss.item())
        grads = reduce(grads_of(loss, params))
        total = (
            [g.mul_(weight) for g in grads]
            if total is None
            else [t.add_(g, alpha=weight) for t, g in zip(total, grads)]
        )
    if extra is not None:
        total = [t.add_(g, alpha=extra[0]) for t, g in zip(total, extra[1]())]
    if masks is not None:
        total = [t.mul_(m) for t, m in zip(total, masks)]
    for p, g in zip(params, total):
        p.grad = g.to(p.dtype)
    return values


def _norm(params: list[torch.nn.Parameter]) -> float:
    grads = [p.grad for p in params]
    return math.sqrt(dot(grads, grads))


def finetune_update(params: list[torch.nn.Parameter], retain_loss_fn: LossFn, reduce: Reduce) -> UpdateStats:
    (retain,) = weighted_update(params, [(1.0, retain_loss_fn)], reduce)
    return UpdateStats(retain_loss=retain, forget_loss=None, grad_norm=_norm(params))


def neggrad_update(
    params: list[torch.nn.Parameter],
    retain_loss_fn: LossFn,
    forget_diffusion_loss_fn: LossFn,
    alpha: float,
    reduce: Reduce,
    relearned: Callable[[], list[torch.Tensor]] | None = None,
) -> UpdateStats:
    extra = (-alpha, relearned) if relearned else None
    retain, forget = weighted_update(
        params, [(1.0, retain_loss_fn), (-alpha, forget_diffusion_loss_fn)], reduce, extra=extra
    )
    return UpdateStats(retain_loss=retain, forget_loss=forget, grad_norm=_norm(params))


def salun_update(
    params: list[torch.nn.Parameter],
    retain_loss_fn: LossFn,
    remap_loss_fn: LossFn,
    alpha: float,
    masks: list[torch.Tensor],
    reduce: Reduce,
    relearned: Callable[[], list[torch.Tensor]] | None = None,
) -> UpdateStats:
    extra = (1.0, relearned) if relearned else None
    forget, retain = weighted_update(params, [(1.0, remap_loss_fn), (alpha, retain_loss_fn)], reduce, masks, extra)
    return UpdateStats(retain_loss=retain, forget_loss=forget, grad_norm=_norm(params))


def esd_update(
    params: list[torch.nn.Parameter],
    esd_loss_fn: LossFn,
    reduce: Reduce,
    relearned: Callable[[], list[torch.Tensor]] | None = None,
) -> UpdateStats:
    (loss,) = weighted_update(params, [(1.0, esd_loss_fn)], reduce, extra=(1.0, relearned) if relearned else None)
    return UpdateStats(retain_loss=None, forget_loss=loss, grad_norm=_norm(params))


def saliency_masks(
    params: list[torch.nn.Parameter],
    forget_losses: Iterable[Callable[[], torch.Tensor]],
    fraction: float,
    reduce: Reduce,
) -> list[torch.Tensor]:
    """SalUn's weight saliency: 1 where |grad of the forget-set diffusion loss| (summed over the batches)
    is in the top `fraction` over all trainable weights, else 0."""
    total = [torch.zeros_like(p) for p in params]
    for loss_fn in forget_losses:
        for t, g in zip(total, reduce(grads_of(loss_fn(), params))):
            t.add_(g)
    magnitudes = torch.cat([t.abs().reshape(-1).float().cpu() for t in total])
    keep = max(1, math.ceil(fraction * magnitudes.numel()))
    threshold = torch.topk(magnitudes, keep, sorted=False).values.min().to(params[0].device)
    return [(t.abs() >= threshold).to(t.dtype) for t in total]
