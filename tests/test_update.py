"""The lambda_t rule and the update direction on hand-computed gradients (docs/method.md, Theorem 3.1)."""

import copy
import math

import pytest
import torch

from erasediff.method.update import adaptive_lambda, dot, erasediff_update, grads_of, grads_onto, gram, inner_value_gap


def test_adaptive_lambda_hand_computed() -> None:
    # <g_r,g_f> = -2, ||g_f||^2 = 4, eta = 1: lambda = 1 - (-2/4) = 1.5
    assert adaptive_lambda(-2.0, 4.0, 1.0) == pytest.approx(1.5)
    # <g_r,g_f> = 1, ||g_f||^2 = 4, eta = 0.5: lambda = 0.5 - 0.25 = 0.25
    assert adaptive_lambda(1.0, 4.0, 0.5) == pytest.approx(0.25)


def test_adaptive_lambda_clipped_at_zero() -> None:
    # g_r already decreases L_f by more than eta ||g_f||^2: 1 - 8/4 = -1 -> 0
    assert adaptive_lambda(8.0, 4.0, 1.0) == 0.0
    assert adaptive_lambda(3.0, 1.0, 0.0) == 0.0
    assert adaptive_lambda(5.0, 0.0, 1.0) == 0.0  # g_f = 0: no constraint direction


def test_gram_matches_three_dots() -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 4, generator=g), torch.randn(7, generator=g)]
    b = [torch.randn(3, 4, generator=g), torch.randn(7, generator=g)]
    assert gram(a, b) == pytest.approx((dot(a, b), dot(a, a), dot(b, b)), rel=1e-12)
    assert gram(a, b)[0] == pytest.approx(float(sum((x * y).sum() for x, y in zip(a, b))), rel=1e-5)


def linear_problem(a: list[torch.Tensor], b: list[torch.Tensor]):
    """Parameters w_i with L_r = sum <w_i, a_i> and L_f = sum <w_i, b_i>: then g_r = a and g_f = b exactly."""
    params = [torch.nn.Parameter(torch.zeros_like(x)) for x in a]
    retain = lambda: sum((w * x).sum() for w, x in zip(params, a))  # noqa: E731
    forget = lambda: sum((w * x).sum() for w, x in zip(params, b))  # noqa: E731
    return params, retain, forget


def test_update_sets_delta_over_all_tensors() -> None:
    a = [torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 2.0]])]
    b = [torch.tensor([-1.0, 1.0]), torch.tensor([[1.0, 0.0]])]
    params, retain, forget = linear_problem(a, b)
    stats = erasediff_update(params, retain, forget, "adaptive", eta=1.0, constant_lambda=0.0)
    # <a,b> = -1 + 0 + 0 + 0 = -1 ; ||b||^2 = 3 ; lambda = 1 + 1/3
    lam = 1 + 1 / 3
    assert stats.dot_rf == pytest.approx(-1.0)
    assert stats.lambda_t == pytest.approx(lam)
    torch.testing.assert_close(params[0].grad, torch.tensor([1 - lam, lam]))
    torch.testing.assert_close(params[1].grad, torch.tensor([[lam, 2.0]]))
    delta = torch.cat([p.grad.flatten() for p in params]).double()
    g_r, g_f = torch.cat([x.flatten() for x in a]).double(), torch.cat([x.flatten() for x in b]).double()
    assert stats.grad_norm == pytest.approx(float(delta.norm()))
    assert stats.cos_delta_retain == pytest.approx(float(delta @ g_r / (delta.norm() * g_r.norm())))
    assert stats.cos_delta_forget == pytest.approx(float(delta @ g_f / (delta.norm() * g_f.norm())))


@pytest.mark.parametrize("seed", range(25))
def test_constraint_decrease_whenever_lambda_positive(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    b = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    eta = float(torch.rand(1, generator=gen)) * 2
    params, retain, forget = linear_problem(a, b)
    stats = erasediff_update(params, retain, forget, "adaptive", eta=eta, constant_lambda=0.0)
    delta = torch.cat([p.grad.flatten() for p in params]).double()
    g_f = torch.cat([x.flatten() for x in b]).double()
    # In every case delta decreases L_f by at least eta ||g_f||^2 (to first order; delta is float32) ...
    assert float(delta @ g_f) >= eta * float(g_f @ g_f) * (1 - 1e-5) - 1e-6
    if stats.lambda_t > 0:  # ... and exactly that much when lambda is active.
        assert float(delta @ g_f) == pytest.approx(eta * float(g_f @ g_f), rel=1e-6)


def test_clipped_case_leaves_retain_gradient() -> None:
    a, b = [torch.tensor([2.0, 0.0])], [torch.tensor([1.0, 0.0])]  # <a,b>=2, ||b||^2=1, eta=1 -> 0
    params, retain, forget = linear_problem(a, b)
    stats = erasediff_update(params, retain, forget, "adaptive", eta=1.0, constant_lambda=0.0)
    assert stats.lambda_t == 0.0
    torch.testing.assert_close(params[0].grad, a[0])
    assert stats.cos_delta_retain == pytest.approx(1.0)


def test_constant_mode_ignores_gradients() -> None:
    a, b = [torch.tensor([1.0, 1.0])], [torch.tensor([3.0, -1.0])]
    params, retain, forget = linear_problem(a, b)
    stats = erasediff_update(params, retain, forget, "constant", eta=5.0, constant_lambda=0.1)
    assert stats.lambda_t == 0.1
    torch.testing.assert_close(params[0].grad, torch.tensor([1.3, 0.9]))


def test_reduce_hook_sees_both_gradients() -> None:
    """Under multi-process accelerate the gradients are averaged before lambda is computed."""
    a, b = [torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 2.0])]
    params, retain, forget = linear_problem(a, b)
    halve = lambda grads: [g / 2 for g in grads]  # noqa: E731
    stats = erasediff_update(params, retain, forget, "adaptive", eta=1.0, constant_lambda=0.0, reduce=halve)
    torch.testing.assert_close(params[0].grad, torch.tensor([0.5, 1.0]))  # 0.5*a + 1.0*(0.5*b)
    assert stats.lambda_t == 1.0


def test_grads_onto_sums_in_the_starting_storage_and_leaves_no_grad_behind() -> None:
    """The relearning term's gradient takes g_f in its own storage (two gradient-sized buffers at the peak, not
    three): the same values as a separate gradient and an add, a parameter the loss does not reach keeps its start."""
    torch.manual_seed(0)
    w, unused = torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(2))
    x = torch.randn(5, 4)
    loss = lambda: (torch.tanh(x @ w.T) ** 2).sum()  # noqa: E731
    start = [torch.randn(4, 3).T, torch.randn(2)]  # a layout unlike w's, as conv gradients come on the CPU
    expected = [g + s for g, s in zip(grads_of(loss(), [w, unused]), start)]
    pointers = [s.data_ptr() for s in start]
    found = grads_onto(loss(), [w, unused], start)
    assert [f.data_ptr() for f in found] == pointers
    for f, e in zip(found, expected):
        torch.testing.assert_close(f, e, rtol=0, atol=0)
    assert w.grad is None and unused.grad is None


def test_inner_value_gap_is_positive_leaves_theta_alone_and_copies_only_the_trained_tensors() -> None:
    """phi is a copy of the trainable tensors alone (the frozen layer is shared): its q_hat equals the one a full
    deepcopy of theta trained on the same tensors gives."""
    torch.manual_seed(0)
    theta = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    theta[0].requires_grad_(False)
    trained = list(theta[2].parameters())
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    loss_of = lambda m: torch.nn.functional.mse_loss(m(x), y)  # noqa: E731
    before = {k: v.clone() for k, v in theta.state_dict().items()}
    q_hat = inner_value_gap(theta, trained, loss_of, loss_of(theta).item(), steps=5, lr=0.05)
    assert q_hat > 0 and math.isfinite(q_hat)
    for k, v in theta.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in theta.parameters())  # phi's steps leave theta's gradients alone too

    full = copy.deepcopy(theta)  # what the loop did before: a whole copy, Adam on its trainable part
    optimizer = torch.optim.Adam(full[2].parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad(set_to_none=True)
        loss_of(full).backward()
        optimizer.step()
    with torch.no_grad():
        assert math.isclose(q_hat, loss_of(theta).item() - loss_of(full).item(), rel_tol=1e-5)
