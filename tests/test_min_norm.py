"""MGDA min-norm weights against an exact QP solution, their batched form, combine and the regularizers."""

from __future__ import annotations

import itertools

import pytest
import torch

from advdf.attacks.min_norm import (
    REGULARIZERS,
    combine,
    min_norm_weights,
    min_norm_weights_batched,
    regularize,
)
from advdf.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
REL = 1e-6  # objective against the exact one, relative to it
FLOOR = 1e-12  # ... with this floor, relative to the largest squared norm, for problems whose minimum is 0


def exact_min_norm(grads: torch.Tensor) -> float:
    """The exact minimum of ||sum_i w_i g_i||^2 over the simplex, by enumerating active sets.

    The minimum lies in the relative interior of the hull of some affinely independent subset S, where it is the
    min-norm point of the affine hull of S: the solution of the KKT system [[M_SS, 1], [1^T, 0]] [w; l] = [0; 1].
    Every support whose solution is feasible (w >= 0) gives a point of the simplex; the smallest objective among
    them is the minimum.
    """
    flat = grads.flatten(1).to(F64)
    gram = flat @ flat.T
    scale = float(gram.diagonal().max())
    if scale == 0:
        return 0.0
    gram = gram / scale
    k = gram.shape[0]
    best = float("inf")
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = list(support)
            system = torch.zeros(size + 1, size + 1, dtype=F64)
            system[:size, :size] = gram[idx][:, idx]
            system[:size, size] = 1
            system[size, :size] = 1
            rhs = torch.zeros(size + 1, 1, dtype=F64)
            rhs[size] = 1
            sol, info = torch.linalg.solve_ex(system, rhs)
            w_s = sol[:size, 0]
            if int(info) != 0 or not bool(torch.isfinite(w_s).all()) or bool((w_s < -1e-12).any()):
                continue  # affinely dependent support, or its affine minimum is outside the simplex
            w = torch.zeros(k, dtype=F64)
            w[idx] = w_s.clamp_min(0) / w_s.clamp_min(0).sum()
            best = min(best, float(w @ gram @ w))
    return best * scale


def check_solution(grads: torch.Tensor, w: torch.Tensor) -> None:
    """w is on the simplex, meets the KKT condition and reaches the exact minimum."""
    flat = grads.flatten(1).to(F64)
    scale = float((flat * flat).sum(1).max())
    w = w.to(F64)
    assert w.shape == (grads.shape[0],)
    assert bool((w >= 0).all())
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    v = flat.T @ w
    vv = float(v @ v)
    # optimality: no vertex lies below the supporting plane through v
    assert float((flat @ v).min()) >= vv - 1e-9 * scale
    best = exact_min_norm(grads)
    assert abs(vv - best) <= REL * best + FLOOR * scale, (vv, best)


def random_problem(gen: torch.Generator, k: int, d: int, shift: float) -> torch.Tensor:
    # a common shift moves the origin out of the hull, so the minimum lands on faces of every dimension
    return torch.randn(k, d, generator=gen, dtype=F64) + shift * torch.randn(1, d, generator=gen, dtype=F64)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_random_problems_match_the_exact_qp(k):
    gen = torch.Generator().manual_seed(k)
    for d in (1, 2, 3, 5, 20):  # d < k puts the origin inside the hull often
        for shift in (0.0, 1.0, 3.0):
            for scale in (1.0, 1e-6):  # tiny gradients, as MSE losses give
                grads = scale * random_problem(gen, k, d, shift)
                check_solution(grads, min_norm_weights(grads))


def test_two_vectors_follow_the_closed_form():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        g1, g2 = torch.randn(2, 7, generator=gen, dtype=F64)
        g1 = g1 + torch.rand((), generator=gen, dtype=F64) * 3 * g2  # some pairs clip at a vertex
        gamma = ((g2 @ g2 - g1 @ g2) / (g1 - g2).pow(2).sum()).clamp(0, 1)
        w = min_norm_weights(torch.stack([g1, g2]))
        torch.testing.assert_close(w, torch.stack([gamma, 1 - gamma]), rtol=0, atol=1e-12)
    # g1 . g2 >= ||g1||^2: the segment's nearest point to the origin is g1 itself
    w = min_norm_weights(torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=F64))
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0], dtype=F64))


DEGENERATE = {
    "parallel": torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [3.0, 6.0, 0.0]]),
    "anti-parallel": torch.tensor([[1.0, 1.0], [-2.0, -2.0], [1.0, 3.0]]),
    "duplicates": torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]),
    "duplicated-optimum": torch.tensor([[1.0, 1.0], [1.0, 1.0], [3.0, 0.5], [0.5, 3.0]]),
    "one-zero": torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5], [3.0, 3.0]]),
    "two-zeros": torch.tensor([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]),
    "collinear-points": torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, -3.0]]),
    "one-vector": torch.tensor([[2.0, -1.0]]),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_problems(name):
    grads = DEGENERATE[name].to(F64)
    check_solution(grads, min_norm_weights(grads))


def test_parallel_gradients_pick_the_shortest():
    grads = torch.tensor([[3.0, 6.0], [1.0, 2.0], [2.0, 4.0]], dtype=F64)
    torch.testing.assert_close(min_norm_weights(grads), torch.tensor([0.0, 1.0, 0.0], dtype=F64))


def test_anti_parallel_gradients_cancel():
    grads = torch.tensor([[1.0, 1.0], [-2.0, -2.0]], dtype=F64)
    torch.testing.assert_close(min_norm_weights(grads), torch.tensor([2 / 3, 1 / 3], dtype=F64))


def test_a_zero_gradient_takes_all_the_weight():
    gen = torch.Generator().manual_seed(3)
    grads = torch.randn(5, 10, generator=gen, dtype=F64) + 2
    grads[3] = 0
    w = min_norm_weights(grads)
    assert float(w[3]) == 1.0
    assert float(combine(grads[None], w[None]).norm()) == 0.0


def test_all_zero_gradients_get_uniform_weights():
    for k in (1, 2, 4):
        torch.testing.assert_close(min_norm_weights(torch.zeros(k, 6)), torch.full((k,), 1 / k))


def test_many_models_meet_the_kkt_condition():
    gen = torch.Generator().manual_seed(4)
    for k, d in ((8, 5), (13, 40), (13, 1000)):  # AttGAN has 13 domains
        grads = random_problem(gen, k, d, 1.0)
        w = min_norm_weights(grads)
        v = grads.T @ w
        assert bool((w >= 0).all()) and float(w.sum()) == pytest.approx(1.0, abs=1e-12)
        assert float((grads @ v).min()) >= float(v @ v) - 1e-9 * float(grads.pow(2).sum(1).max())


def test_batched_equals_unbatched():
    gen = torch.Generator().manual_seed(5)
    for k, d in ((2, 4), (3, 2), (5, 30)):
        grads = torch.stack([random_problem(gen, k, d, float(i % 3)) for i in range(12)])
        grads[4] = 0  # a finished problem must not disturb the others
        grads[7, 1] = 0
        batched = min_norm_weights_batched(grads)
        assert batched.shape == (12, k)
        for p in range(12):
            torch.testing.assert_close(batched[p], min_norm_weights(grads[p]), rtol=0, atol=1e-12)


def test_trailing_dimensions_and_dtype():
    gen = torch.Generator().manual_seed(6)
    grads = torch.randn(2, 4, 3, 5, 5, generator=gen)
    w = min_norm_weights_batched(grads)
    assert w.dtype == torch.float32 and w.shape == (2, 4)
    torch.testing.assert_close(w, min_norm_weights_batched(grads.flatten(2)))
    torch.testing.assert_close(w.double(), min_norm_weights_batched(grads.double()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_gradients_raise(bad):
    grads = torch.ones(2, 3, 4)
    grads[1, 2, 0] = bad
    with pytest.raises(ValueError, match="gradient 2 of problem 1 is not finite"):
        min_norm_weights_batched(grads)
    with pytest.raises(ValueError, match="not finite"):
        min_norm_weights(grads[1])


def test_combine_is_the_weighted_sum():
    gen = torch.Generator().manual_seed(7)
    grads = torch.randn(3, 4, 2, 5, generator=gen)
    weights = torch.rand(3, 4, generator=gen)
    out = combine(grads, weights)
    assert out.shape == (3, 2, 5)
    torch.testing.assert_close(out, (weights[:, :, None, None] * grads).sum(1))
    with pytest.raises(ValueError, match="do not match"):
        combine(grads, weights[:, :3])


def test_mgda_step_increases_every_loss():
    """The combined direction has a positive inner product with every model's gradient."""
    gen = torch.Generator().manual_seed(8)
    grads = torch.randn(6, 3, 50, generator=gen) + 1.5 * torch.randn(6, 1, 50, generator=gen)
    v = combine(grads, min_norm_weights_batched(grads))
    inner = (grads * v[:, None]).sum(-1)
    norm2 = v.pow(2).sum(-1, keepdim=True)
    assert bool((norm2 > 0).all())
    assert bool((inner >= norm2 * (1 - 1e-4)).all())


def loss_and_grads() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(9)
    grads = torch.randn(3, 4, 3, 6, 6, generator=gen, dtype=F64)
    losses = torch.rand(3, 4, generator=gen, dtype=F64) + 0.01
    return grads, losses


def test_regularizer_none_and_l2():
    grads, losses = loss_and_grads()
    assert regularize(grads, losses, "none") is grads
    grads[1, 2] = 0
    unit = regularize(grads, losses, "l2")
    norms = unit.flatten(2).norm(dim=2)
    expected = torch.ones(3, 4, dtype=F64)
    expected[1, 2] = 0  # a zero gradient stays zero
    torch.testing.assert_close(norms, expected)
    torch.testing.assert_close(unit[0, 0] * grads[0, 0].norm(), grads[0, 0])


def test_regularizer_log_and_penalty():
    grads, losses = loss_and_grads()
    eps = 1e-3
    log = regularize(grads, losses, "log", eps=eps)
    penalty = regularize(grads, losses, "penalty", eps=eps)
    for n, k in itertools.product(range(3), range(4)):
        torch.testing.assert_close(log[n, k], grads[n, k] / (losses[n, k] + eps))
        torch.testing.assert_close(penalty[n, k], grads[n, k] * (losses[n, k] + eps))
    # the default eps only matters near L = 0: the log regularizer is then g / L, the gradient of log L
    torch.testing.assert_close(
        regularize(grads, losses, "log"), grads / losses[:, :, None, None, None], rtol=1e-5, atol=0
    )
    zero = torch.zeros_like(losses)
    assert bool(torch.isfinite(regularize(grads, zero, "log")).all())
    assert bool((regularize(grads, zero, "penalty") != 0).any())


def test_regularizer_errors():
    grads, losses = loss_and_grads()
    assert REGULARIZERS == ("none", "l2", "log", "penalty")
    with pytest.raises(ConfigError, match="unknown gradient regularizer 'loss\\+'.*none, l2, log, penalty"):
        regularize(grads, losses, "loss+")
    with pytest.raises(ValueError, match="do not match"):
        regularize(grads, losses[:, :3], "log")
