"""The project's relearning-resistant term (method/robust/relearn.py): the simulated attacker, what it adds to g_f, and
where it applies."""

import pytest
import torch
from pydantic import ValidationError

from erasediff.method.baselines.rules import neggrad_update, salun_update
from erasediff.method.loop import FRESH_CASTS
from erasediff.method.losses import NoisedBatch
from erasediff.method.robust.relearn import RelearnSettings, head, relearned_forget_grads
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.method.update import erasediff_update, no_reduce


def quadratic_problem():
    """w in R^3; the attacker descends A(w) = <w, a>; the forget loss is F(w) = ||w - c||^2 / 2, so grad F(w) = w -
    c."""
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    a, c = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])
    return w, (lambda: (w * a).sum()), (lambda: 0.5 * ((w - c) ** 2).sum()), a, c


def test_gradient_is_taken_at_the_attacked_weights_and_theta_is_restored() -> None:
    w, attack, forget, a, c = quadratic_problem()
    before = w.detach().clone()
    settings = RelearnSettings(steps=3, lr=0.1, weight=2.0)
    grads = relearned_forget_grads([w], attack, forget, settings, no_reduce)
    attacked = before - 3 * 0.1 * a.sign()  # sign(0) = 0: the third weight stays
    torch.testing.assert_close(grads[0], 2.0 * (attacked - c))
    torch.testing.assert_close(w.detach(), before)


def test_under_the_loops_bf16_autocast_the_gradient_is_taken_at_the_attacked_weights() -> None:
    """The loop's autocast makes fresh low-precision copies of the weights: with autocast's default weight cache, the
    attacker's in-place steps are not seen by the forward passes after them, and the relearning term is the forget
    gradient at theta itself (what every bf16 run computed before)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 1)
    x = torch.randn(16, 8)
    attack = lambda: layer(x).sum()  # noqa: E731
    forget = lambda: ((layer(x) - 1.0) ** 2).mean()  # noqa: E731
    settings = RelearnSettings(steps=2, lr=0.2, weight=1.0)
    params = list(layer.parameters())
    exact = relearned_forget_grads(params, attack, forget, settings, no_reduce)  # fp32
    at_theta = torch.autograd.grad(forget(), params)
    with torch.autocast("cpu", dtype=torch.bfloat16, **FRESH_CASTS.to_kwargs()):
        fresh = relearned_forget_grads(params, attack, forget, settings, no_reduce)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast's default: cached casts
        cached = relearned_forget_grads(params, attack, forget, settings, no_reduce)
    error = lambda found: max(float((f - e).abs().max()) for f, e in zip(found, exact))  # noqa: E731
    assert error(at_theta) > 0.5  # the attacker's steps move the gradient a long way
    assert error(fresh) < 0.1 * error(at_theta)
    assert error(cached) > 0.5 * error(at_theta)


def test_theta_is_restored_when_the_forget_loss_fails() -> None:
    w, attack, _, _, _ = quadratic_problem()
    before = w.detach().clone()

    def broken() -> torch.Tensor:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        relearned_forget_grads([w], attack, broken, RelearnSettings(), no_reduce)
    torch.testing.assert_close(w.detach(), before)


def test_update_forms_lambda_from_the_combined_forget_gradient() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    g_r, g_f, extra = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    stats = erasediff_update(
        [w],
        lambda: (w * g_r).sum(),
        lambda: (w * g_f).sum(),
        "adaptive",
        1.0,
        0.0,
        extra_forget_grads=lambda: [extra.clone()],
    )
    combined = g_f + extra  # (1, 2): <g_r, combined> = 1, ||combined||^2 = 5, lambda = 1 - 1/5
    assert stats.lambda_t == pytest.approx(0.8)
    torch.testing.assert_close(w.grad, g_r + 0.8 * combined)


def test_head_cuts_every_field() -> None:
    batch = NoisedBatch(
        torch.zeros(8, 1, 2, 2), torch.arange(8), torch.ones(8, 1, 2, 2), torch.arange(8), torch.arange(8)
    )
    cut = head(batch, 3)
    assert [len(t) for t in (cut.x0, cut.labels, cut.noise, cut.timesteps, cut.substitute)] == [3] * 5
    assert len(head(batch, None).labels) == 8


@pytest.mark.parametrize("override", [{"method": "finetune"}, {"forget_loss": "uniform"}])
def test_refused_where_it_does_not_apply(override: dict) -> None:
    with pytest.raises(ValidationError, match="relearn"):
        UnlearnSettings.model_validate({"relearn": {}, **override})


@pytest.mark.parametrize("method", ["neggrad", "salun", "esd"])
def test_baselines_with_a_forget_term_take_it_too(method: str) -> None:
    assert UnlearnSettings.model_validate({"relearn": {}, "method": method}).relearn.steps == 5


def test_a_baselines_forget_term_gains_the_relearned_gradient_with_its_own_weight() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    g_r, g_f, extra = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    neggrad_update(
        [w], lambda: (w * g_r).sum(), lambda: (w * g_f).sum(), 0.5, no_reduce, relearned=lambda: [extra.clone()]
    )
    torch.testing.assert_close(
        w.grad, g_r - 0.5 * g_f - 0.5 * extra
    )  # ascent on the forget loss, before and after the attack
    salun_update(
        [w],
        lambda: (w * g_r).sum(),
        lambda: (w * g_f).sum(),
        0.5,
        [torch.tensor([1.0, 0.0])],
        no_reduce,
        relearned=lambda: [extra.clone()],
    )
    torch.testing.assert_close(
        w.grad, torch.tensor([1.0, 0.0]) * (g_f + extra + 0.5 * g_r)
    )  # the saliency mask covers the term too


def test_off_by_default_the_papers_method() -> None:
    assert UnlearnSettings().relearn is None
