"""The EraseDiff update (docs/method.md, "The constrained problem and the update"; Theorem 3.1).

    min_theta L_r(theta)  s.t.  q(theta) = L_f(theta) - min_phi L_f(phi) <= 0

    g_r = grad L_r(theta_t),  g_f = grad L_f(theta_t)  (= grad q)
    lambda_t = max(0, eta - <g_r, g_f> / ||g_f||^2)     (adaptive; a_t = eta ||g_f||^2, BOME's choice)
             = lambda                                   (constant mode, what the reference scripts run)
    delta*   = g_r + lambda_t g_f                       -> written to p.grad and handed to the optimizer

Dot products and norms run over all trainable parameters, tensor by tensor, so no flattened copy of
the model's gradient is ever made. The two cosines (the paper's Figure 2) follow from the same three
scalars: <d,g_r> = ||g_r||^2 + lambda <g_r,g_f>, <d,g_f> = <g_r,g_f> + lambda ||g_f||^2,
||d||^2 = ||g_r||^2 + 2 lambda <g_r,g_f> + lambda^2 ||g_f||^2.
"""

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.func import functional_call

LossFn = Callable[[], torch.Tensor]


Reduce = Callable[[list[torch.Tensor]], list[torch.Tensor]]


@dataclass
class UpdateStats:
    """One update's statistics; a baseline leaves out what it has no use for (None: not logged)."""

    retain_loss: float | None
    forget_loss: float | None
    grad_norm: float  # ||update|| before clipping
    lambda_t: float | None = None
    dot_rf: float | None = None
    cos_delta_retain: float | None = None
    cos_delta_forget: float | None = None


def no_reduce(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """One process: the gradients are already the batch's (data-parallel runs average them across ranks instead)."""
    return grads


def adaptive_lambda(dot_rf: float, sq_norm_f: float, eta: float) -> float:
    """max(0, eta - <g_r,g_f>/||g_f||^2); 0 when g_f vanishes (the constraint gives no direction)."""
    if sq_norm_f <= 0.0:
        return 0.0
    return max(0.0, eta - dot_rf / sq_norm_f)


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum(torch.dot(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(a, b)))


def gram(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> tuple[float, float, float]:
    """<a,b>, ||a||^2 and ||b||^2 in one pass, each tensor widened to float64 once (three `dot` calls widen it
    twice)."""
    ab = aa = bb = torch.zeros((), dtype=torch.float64, device=a[0].device)
    for x, y in zip(a, b):
        x, y = x.reshape(-1).double(), y.reshape(-1).double()
        ab, aa, bb = ab + torch.dot(x, y), aa + torch.dot(x, x), bb + torch.dot(y, y)
    return float(ab), float(aa), float(bb)


def _cos(dot: float, sq_a: float, sq_b: float) -> float:
    denom = math.sqrt(max(sq_a, 0.0) * max(sq_b, 0.0))
    return dot / denom if denom > 0 else 0.0


def grads_of(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True))


def grads_onto(loss: torch.Tensor, params: list[torch.nn.Parameter], start: list[torch.Tensor]) -> list[torch.Tensor]:
    """`start` + grad loss, summed in `start`'s storage: autograd accumulates each tensor's gradient into p.grad as
    it is formed, so no second gradient-sized buffer is made (`grads_of` then an add would hold both)."""
    for p, s in zip(params, start):
        p.grad = s
    try:
        with warnings.catch_warnings():  # conv gradients come channels-last on the CPU; summed in place all the same
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
            torch.autograd.backward(loss, inputs=params)
        return [p.grad for p in params]
    finally:
        for p in params:
            p.grad = None


def erasediff_update(
    params: list[torch.nn.Parameter],
    retain_loss_fn: LossFn,
    forget_loss_fn: LossFn,
    lambda_mode: Literal["adaptive", "constant"],
    eta: float,
    constant_lambda: float,
    reduce: Reduce = no_reduce,
    extra_forget_grads: Callable[[], list[torch.Tensor]] | None = None,
) -> UpdateStats:
    """Set p.grad = delta* for every trainable parameter and return the step's statistics.

    Each loss's graph is freed before the next is built. `reduce` averages gradients across
    processes under multi-GPU `accelerate`, so every rank computes the same lambda_t and delta*.
    `extra_forget_grads` adds to g_f (the project's relearning-resistant term, `robust.py`).
    """
    # The extra term first: its own buffers (the relearning term's saved weights and attack gradients) are gone before
    # g_r and g_f exist, and g_f is summed into the extra term's storage, so at most two gradient-sized buffers are
    # alive at once. The losses' batches are drawn before this call, so the order changes no value.
    extra = extra_forget_grads() if extra_forget_grads is not None else None
    retain_loss = retain_loss_fn()
    g_r = reduce(grads_of(retain_loss, params))
    forget_loss = forget_loss_fn()
    g_f = reduce(grads_of(forget_loss, params) if extra is None else grads_onto(forget_loss, params, extra))
    del extra

    dot_rf, sq_r, sq_f = gram(g_r, g_f)
    lam = adaptive_lambda(dot_rf, sq_f, eta) if lambda_mode == "adaptive" else constant_lambda

    for p, gr, gf in zip(params, g_r, g_f):
        p.grad = gr.add_(gf, alpha=lam).to(p.dtype)  # delta* = g_r + lambda_t g_f, in g_r's storage

    sq_delta = sq_r + 2 * lam * dot_rf + lam * lam * sq_f
    return UpdateStats(
        retain_loss=retain_loss.item(),
        forget_loss=forget_loss.item(),
        lambda_t=lam,
        dot_rf=dot_rf,
        cos_delta_retain=_cos(sq_r + lam * dot_rf, sq_delta, sq_r),
        cos_delta_forget=_cos(dot_rf + lam * sq_f, sq_delta, sq_f),
        grad_norm=math.sqrt(max(sq_delta, 0.0)),
    )


def inner_value_gap(
    theta: torch.nn.Module,
    params: list[torch.nn.Parameter],
    forget_loss_of: Callable[[Callable[..., Any]], torch.Tensor],
    theta_forget_loss: float,
    steps: int,
    lr: float,
) -> float:
    """q_hat = L_f(theta) - L_f(phi_K): K Adam steps on L_f from a fresh copy phi of theta's trainable `params`.

    phi holds only those tensors; the rest of theta is shared, read-only, through `torch.func.functional_call` (a
    full copy of the UNet would add the frozen weights too: 3.4 GB at SD 1.5 size). phi has its own optimizer and
    theta is never touched, so the outer step is unaffected (the reference code restored theta inside this loop and
    shared the outer Adam state).
    """
    trained = {id(p) for p in params}
    phi = {n: p.detach().clone().requires_grad_(True) for n, p in theta.named_parameters() if id(p) in trained}

    def phi_model(*args: Any, **kwargs: Any) -> Any:
        return functional_call(theta, phi, args, kwargs)

    optimizer = torch.optim.Adam(list(phi.values()), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        forget_loss_of(phi_model).backward()
        optimizer.step()
    with torch.no_grad():
        return theta_forget_loss - float(forget_loss_of(phi_model))
