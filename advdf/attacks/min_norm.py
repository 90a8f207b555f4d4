"""Gradient combiners for multi-model attacks: MGDA's min-norm weights, their combination, and regularizers.

An attack that must fool k models at once (seed 003's CDMAA: one image-translation generator per model) has one
loss L_i and one input gradient g_i per model. Summing the gradients lets the model with the largest gradient decide
the step, and the others may lose. The multiple-gradient descent algorithm (MGDA; Désidéri 2012, "Multiple-gradient
descent algorithm (MGDA) for multiobjective optimization"; Sener & Koltun 2018, "Multi-Task Learning as
Multi-Objective Optimization") takes instead the point of minimum norm in the convex hull of the gradients,

    v = sum_i w_i g_i  with  w = argmin ||sum_i w_i g_i||^2  over the simplex (w_i >= 0, sum_i w_i = 1).

Its optimality condition is g_i . v >= ||v||^2 for every i: v has a positive inner product with every gradient
(unless v = 0, a Pareto-stationary point), so a small step along v increases every model's loss. The attack steps
with sign(v), an ascent direction for all models at once under the L-inf budget.

The weights come from the k x k Gram matrix of the flattened gradients (one matmul; everything after it costs
O(k^2) per iteration), in float64 because the problem is often badly conditioned (gradients of similar models are
nearly parallel). Two gradients have a closed form. For more, the solver starts from the best pair, as Sener &
Koltun's solver does, then runs Frank-Wolfe: a step with exact line search toward the vertex of smallest gradient,
until the duality gap ||v||^2 - min_i g_i . v (an upper bound on the objective's error) is below ``tol`` ||v||^2.
Plain Frank-Wolfe zigzags when the minimum lies inside a face of the hull and then converges only like 1/t, so a
few hundred iterations need not reach a small gap. Each Frank-Wolfe step is therefore followed by a corrective
step (the minor cycle of Wolfe's 1976 minimum-norm-point algorithm): the minimum over the affine hull of the
current support, taken as far as the simplex allows. It never increases the objective, drops vertices that should
leave the support, and makes the solution exact once the support is right.
"""

from __future__ import annotations

import torch

from advdf.errors import ConfigError

REGULARIZERS = ("none", "l2", "log", "penalty")

# Absolute floor of the stopping test (in units of the largest squared gradient norm): the Gram matrix is only
# this accurate, so a minimum norm near 0 cannot be resolved more finely.
_GAP_FLOOR = 1e-13

# Ridge on the corrective step's linear system (in units of the largest squared gradient norm): it keeps the
# system solvable when the support holds duplicate or affinely dependent gradients, and moves the objective by
# at most this much.
_RIDGE = 1e-13


def _check_finite(grads: torch.Tensor) -> None:
    bad = ~torch.isfinite(grads).flatten(2).all(-1)
    if bool(bad.any()):
        problem, model = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"min-norm weights: gradient {model} of problem {problem} is not finite (NaN or inf); "
            f"{int(bad.sum())} non-finite gradient(s) in all"
        )


def _best_pair(gram: torch.Tensor) -> torch.Tensor:
    """The simplex point of smallest objective among all segments between two vertices (closed form)."""
    n, k, _ = gram.shape
    diag = gram.diagonal(dim1=1, dim2=2)
    gi, gj = diag[:, :, None], diag[:, None, :]
    # gamma weights vertex i on the segment (i, j): the minimizer of ||gamma g_i + (1 - gamma) g_j||^2
    denom = gi + gj - 2 * gram
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    gamma = torch.where(denom > 0, (gj - gram) / safe, torch.full_like(denom, 0.5)).clamp(0, 1)
    cost = gamma**2 * gi + (1 - gamma) ** 2 * gj + 2 * gamma * (1 - gamma) * gram
    best = cost.flatten(1).argmin(1)
    i, j = best // k, best % k
    rows = torch.arange(n, device=gram.device)
    g = gamma.flatten(1)[rows, best]
    w = torch.zeros(n, k, dtype=gram.dtype, device=gram.device)
    w[rows, i] += g
    w[rows, j] += 1 - g  # i == j (the segment is one vertex) leaves w_i = 1
    return w


def _objective(gram: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (w * (gram @ w[:, :, None])[..., 0]).sum(-1)


def _corrective(gram: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Move w toward the min-norm point of the affine hull of its support, as far as w stays on the simplex."""
    n, k, _ = gram.shape
    support = w > 0
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    both = support[:, :, None] & support[:, None, :]
    # bordered KKT system [[M_SS, 1], [1^T, 0]] [y; lambda] = [0; 1]; vertices outside S get the row y_i = 0
    system = torch.zeros(n, k + 1, k + 1, dtype=gram.dtype, device=gram.device)
    system[:, :k, :k] = torch.where(both, gram + _RIDGE * eye, eye.expand(n, k, k))
    system[:, :k, k] = support.to(gram.dtype)
    system[:, k, :k] = support.to(gram.dtype)
    rhs = torch.zeros(n, k + 1, 1, dtype=gram.dtype, device=gram.device)
    rhs[:, k] = 1
    y, info = torch.linalg.solve_ex(system, rhs)
    y = y[:, :k, 0]
    # the largest theta in [0, 1] with w + theta (y - w) >= 0 (the ratio test)
    shrinking = support & (y < 0)
    ratio = torch.where(shrinking, w / (w - y).clamp_min(torch.finfo(w.dtype).tiny), torch.ones_like(w))
    theta, leaving = ratio.min(1)
    theta = theta.clamp(max=1)
    moved = w + theta[:, None] * (y - w)
    rows = torch.arange(n, device=gram.device)
    blocked = theta < 1
    moved[rows[blocked], leaving[blocked]] = 0  # exactly zero, so the vertex leaves the support
    moved = moved.clamp_min(0)
    moved = moved / moved.sum(1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    # keep the step only where it is sound and does not increase the objective
    ok = (info == 0) & torch.isfinite(moved).all(1)
    moved = torch.where(ok[:, None], moved, w)
    better = _objective(gram, moved) <= _objective(gram, w)
    return torch.where(better[:, None], moved, w)


@torch.no_grad()
def min_norm_weights_batched(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6) -> torch.Tensor:
    """Solve n independent MGDA min-norm problems at once.

    Args:
        grads: (n, k, ...) gradients; problem p is the convex hull of ``grads[p, 0], ..., grads[p, k - 1]``,
            each flattened.
        max_iter: most Frank-Wolfe iterations (each with its corrective step); every problem stops on its own
            when its duality gap is small enough, the loop ends when all have.
        tol: relative duality-gap tolerance: a problem stops when ||v||^2 - min_i g_i . v <= tol ||v||^2,
            which bounds the objective's relative error by tol (down to the Gram matrix's rounding, where the
            minimum norm is near 0).

    Returns:
        (n, k) weights on the simplex, in the gradients' dtype. A problem whose gradients are all zero gets
        uniform weights; one with a zero gradient puts its weight there (the minimum norm is 0).

    Raises:
        ValueError: a gradient holds NaN or inf (the message names the first one), or grads has fewer than
            two dimensions.
    """
    if grads.dim() < 2 or grads.shape[1] == 0:
        raise ValueError(
            f"min-norm weights need grads of shape (n, k, ...) with k >= 1, got {tuple(grads.shape)}"
        )
    if grads.dim() == 2:
        grads = grads[:, :, None]
    _check_finite(grads)
    n, k = grads.shape[:2]
    dtype = grads.dtype if grads.dtype.is_floating_point else torch.get_default_dtype()
    flat = grads.flatten(2).to(torch.float64)
    gram = flat @ flat.transpose(1, 2)
    scale = gram.diagonal(dim1=1, dim2=2).amax(1)
    zero = scale == 0
    gram = gram / torch.where(zero, torch.ones_like(scale), scale)[:, None, None]
    if k == 1:
        return torch.ones(n, 1, dtype=dtype, device=grads.device)
    w = _best_pair(gram)
    rows = torch.arange(n, device=grads.device)
    done = zero.clone()
    for _ in range(max_iter if k > 2 else 0):
        mw = (gram @ w[:, :, None])[..., 0]
        vv = (w * mw).sum(1)
        vertex = mw.argmin(1)
        gap = vv - mw[rows, vertex]
        done |= gap <= tol * vv + _GAP_FLOOR
        if bool(done.all()):
            break
        # exact line search on the segment from v to g_s: f(w + gamma (e_s - w)), a parabola in gamma
        curvature = vv - 2 * mw[rows, vertex] + gram[rows, vertex, vertex]
        gamma = torch.where(curvature > 0, gap / curvature.clamp_min(torch.finfo(gram.dtype).tiny), 1.0)
        gamma = gamma.clamp(0, 1)
        step = (1 - gamma)[:, None] * w
        step[rows, vertex] += gamma
        step = _corrective(gram, step)
        w = torch.where(done[:, None], w, step)
    w = torch.where(zero[:, None], torch.full_like(w, 1 / k), w)
    return w.to(dtype)


def min_norm_weights(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6) -> torch.Tensor:
    """The weights w on the simplex that minimize ||sum_i w_i g_i||^2 (MGDA's min-norm point).

    Args:
        grads: (k, d) gradients, one row per model (trailing dimensions beyond the first are flattened).
        max_iter: most Frank-Wolfe iterations when k > 2 (k <= 2 is solved in closed form).
        tol: relative duality-gap tolerance (see :func:`min_norm_weights_batched`).

    Returns:
        (k,) weights, in the gradients' dtype; see :func:`min_norm_weights_batched` for degenerate inputs.

    Raises:
        ValueError: a gradient holds NaN or inf.
    """
    if grads.dim() < 1:
        raise ValueError("min-norm weights need grads of shape (k, d), got a scalar")
    return min_norm_weights_batched(grads[None], max_iter=max_iter, tol=tol)[0]


def combine(grads: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weighted sum over models: (n, k, ...) gradients and (n, k) weights give (n, ...)."""
    if weights.shape != grads.shape[:2]:
        raise ValueError(f"weights of shape {tuple(weights.shape)} do not match grads {tuple(grads.shape)}")
    return torch.einsum("nk,nk...->n...", weights.to(grads.dtype), grads)


def regularize(grads: torch.Tensor, losses: torch.Tensor, kind: str, eps: float = 1e-8) -> torch.Tensor:
    """Rescale each model's gradient before the min-norm step (seed 003's Table 4).

    Min-norm weights favour small gradients, so the scale of each g_i decides which model the step serves.

    - ``"none"``: g.
    - ``"l2"``: g / ||g||, per image and model, so every model counts alike whatever its loss scale (a zero
      gradient stays zero).
    - ``"log"``: g / (L + eps), the gradient of log(L + eps): relative rather than absolute loss gains. eps only
      matters where L is near 0 (at the clean image the MSE to the clean output is 0).
    - ``"penalty"``: (L + eps) * g. The paper's own formula was lost in extraction; this is our reconstruction
      from its derivation (each model's gain is inversely proportional to its current loss, and a small epsilon
      avoids a zero denominator at the first step), so weights shift toward the models the attack has
      hurt least so far.

    Args:
        grads: (n, k, ...) gradients of each image's loss under each model.
        losses: (n, k) the losses those gradients belong to (non-negative, such as MSE).
        kind: one of :data:`REGULARIZERS`.
        eps: keeps ``"log"`` finite and ``"penalty"`` non-zero at L = 0.

    Returns:
        (n, k, ...) regularized gradients.

    Raises:
        ConfigError: unknown ``kind``.
        ValueError: losses do not match the first two dimensions of grads.
    """
    if kind not in REGULARIZERS:
        raise ConfigError(f"unknown gradient regularizer {kind!r}; choose one of {', '.join(REGULARIZERS)}")
    if losses.shape != grads.shape[:2]:
        raise ValueError(f"losses of shape {tuple(losses.shape)} do not match grads {tuple(grads.shape)}")
    expand = (...,) + (None,) * (grads.dim() - 2)
    losses = losses.detach().to(grads.dtype)
    if kind == "none":
        return grads
    if kind == "l2":
        norms = grads.flatten(2).norm(dim=2)
        return grads / norms.clamp_min(torch.finfo(grads.dtype).tiny)[expand]
    if kind == "log":
        return grads / (losses + eps)[expand]
    return grads * (losses + eps)[expand]
