"""The black-box attacks NES and Square: no autograd, exact per-sample query counts, budgets, acceptance rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advdf.attacks.checks import check_adversarial
from advdf.attacks.losses import margin
from advdf.attacks.nes import NES
from advdf.attacks.objectives import Context
from advdf.attacks.square import Square, p_selection
from advdf.errors import ConfigError


class QueryLog(nn.Module):
    """Wraps a detector: refuses any call that could build a graph and logs every evaluated row.

    Rows are attributed to the clean image they are closest to (the test images are far apart compared with the
    budgets used here), so per-sample query counts and query sequences are observed from outside the attack.
    """

    def __init__(self, model: nn.Module, clean: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.clean = clean
        self.points: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.owner: list[torch.Tensor] = []
        self.single: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("black-box attack called the model with autograd enabled")
        out = self.model(x)
        self.points.append(x.clone())
        self.logits.append(out.clone())
        owner = (x[:, None] - self.clean[None]).abs().flatten(2).mean(2).argmin(1)
        self.owner.append(owner)
        # a row whose image appears once in its forward is an evaluated iterate (not one of NES's copies)
        self.single.append(torch.bincount(owner, minlength=len(self.clean))[owner] == 1)
        return out

    def owners(self) -> torch.Tensor:
        return torch.cat(self.owner)

    def per_sample(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """For each clean image, its queried points, their logits and the single-row flags, in query order."""
        owners, points, logits, single = self.owners(), torch.cat(self.points), torch.cat(self.logits), \
            torch.cat(self.single)
        return [(points[owners == i], logits[owners == i], single[owners == i]) for i in range(len(self.clean))]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def centered(tiny_model, images):
    """The tiny model with its head bias shifted so the test images sit close to the decision boundary.

    The randomly initialized tiny CNN gives nearly the same logits to every input (no attack, white-box PGD
    included, flips it within 16/255); centering makes the class depend on the image, so both classes occur.
    """
    x, _ = images
    model = tiny_model.eval()
    with torch.no_grad():
        logits = model(x)
        gap = logits[:, 1] - logits[:, 0]
        model.backbone.head[1].bias[1] -= gap.median() + 1e-4
    return model


def nes(model, **kw):
    opts = dict(eps=0.2, alpha=0.04, steps=10, restarts=2, n_samples=6)
    return NES(model, **{**opts, **kw})


def square(model, **kw):
    return Square(model, **{"eps": 0.2, "n_queries": 100, **kw})


def nes_cap(attack: NES) -> int:
    return 1 + attack.restarts * attack.steps * (2 * attack.n_samples + 1) + attack.restarts - 1


BUILDERS = {"nes": nes, "square": square}


@pytest.mark.parametrize("name", ["nes", "square"])
@pytest.mark.parametrize("mode", ["grad_enabled", "no_grad", "inference_mode"])
def test_never_builds_a_graph(name, mode, centered, images):
    x, _ = images
    y = centered(x).argmax(1)
    wrapped = QueryLog(centered, x)
    attack = BUILDERS[name](wrapped)
    assert attack.black_box and not attack.deterministic
    ctx = {"grad_enabled": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[mode]
    with ctx():
        out = attack.run(x, y)
    assert all(p.grad is None for p in centered.parameters())
    assert not out.x_adv.requires_grad and (out.grad_calls == 0).all()
    check_adversarial(out.x_adv, x, attack.eps)
    with torch.no_grad():  # inference tensors may not enter a graph
        assert torch.allclose(out.logits, centered(out.x_adv), atol=1e-5)
        assert torch.allclose(out.clean_logits, centered(x), atol=1e-5)


@pytest.mark.parametrize("name", ["nes", "square"])
@pytest.mark.parametrize("targeted", [False, True])
def test_queries_are_counted_exactly_and_fooled_samples_stop(name, targeted, centered, images):
    x, _ = images
    y = centered(x).argmax(1)
    wrapped = QueryLog(centered, x)
    attack = BUILDERS[name](wrapped, eps=16 / 255, targeted=targeted, target=0, loss="margin")
    torch.manual_seed(0)
    out = attack.run(x, y)
    seen = torch.bincount(wrapped.owners(), minlength=len(x))
    assert torch.equal(out.queries, seen)
    cap = attack.n_queries if name == "square" else nes_cap(attack)
    assert (out.queries <= cap).all()
    assert (out.queries[~out.success] == cap).all()  # unfooled samples spend the whole budget, no more
    goal = torch.zeros_like(y) if targeted else y
    for i, (points, logits, single) in enumerate(wrapped.per_sample()):
        assert single[-1]  # every sample's last query evaluates an iterate
        goals = Context(goal=goal[i:i + 1].expand(int(single.sum())))
        at_goal = attack.objective.success(logits[single], goals)
        assert not at_goal[:-1].any()  # no iterate reached the goal before the last query: stopped right there
        if out.success[i]:  # its last query is the returned point, where it reached its goal
            assert at_goal[-1] and torch.equal(points[-1], out.x_adv[i])
    if targeted:
        at_goal = y == 0  # already "real": one query at the clean image, returned unchanged
        assert (out.queries[at_goal] == 1).all()
        assert torch.equal(out.x_adv[at_goal], x[at_goal])
    assert out.success.any() and (out.queries[out.success] < cap).any()


@pytest.mark.parametrize("name", ["nes", "square"])
def test_seeded_runs_reproduce(name, centered, images):
    x, y = images
    attack = BUILDERS[name](centered, eps=8 / 255)
    torch.manual_seed(5)
    a = attack.run(x, y)
    torch.manual_seed(5)
    b = attack.run(x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    torch.manual_seed(6)
    assert not torch.equal(a.x_adv, attack.run(x, y).x_adv)  # the randomness is real


@pytest.mark.parametrize("name", ["nes", "square"])
@pytest.mark.parametrize("targeted", [False, True])
def test_fool_the_tiny_model_with_a_generous_budget(name, targeted, centered, images):
    x, _ = images
    y = centered(x).argmax(1)  # labels the model gets right by construction
    assert 0 < int(y.sum()) < len(y)  # both classes present
    torch.manual_seed(0)
    out = BUILDERS[name](centered, targeted=targeted, target=0, loss="margin").run(x, y)
    check_adversarial(out.x_adv, x, 0.2)
    if targeted:
        assert (out.logits.argmax(1) == 0).float().mean() >= 5 / 6
    else:
        assert out.success.float().mean() >= 5 / 6


def test_nes_spends_the_exact_budget_on_unfoolable_samples(tiny_model, images):
    # the raw tiny model is not foolable at 8/255: every sample spends the full, exactly known budget
    x, _ = images
    y = tiny_model.eval()(x).argmax(1)
    attack = nes(tiny_model, eps=8 / 255, alpha=2 / 255, steps=3, restarts=3, n_samples=2, query_batch=7)
    out = attack.run(x, y)
    assert not out.success.any()
    assert (out.queries == nes_cap(attack)).all()
    assert nes_cap(attack) == 1 + 3 * 3 * 5 + 2


def test_nes_query_batch_does_not_change_the_result(centered, images):
    x, y = images
    torch.manual_seed(1)
    whole = nes(centered, eps=8 / 255).run(x, y)
    torch.manual_seed(1)
    split = nes(centered, eps=8 / 255, query_batch=5).run(x, y)
    assert torch.allclose(whole.x_adv, split.x_adv, atol=1e-6) and torch.equal(whole.queries, split.queries)


def test_square_accepts_only_improvements_of_squares(tiny_model, images):
    """Replays the query log: each candidate changes the best point so far in one s x s square only, and the
    returned point is the best queried one, so the accepted margin never decreased."""
    x, _ = images
    model = tiny_model.eval()
    y = model(x).argmax(1)
    wrapped = QueryLog(model, x)
    eps, n_queries = 8 / 255, 60
    attack = Square(wrapped, eps=eps, n_queries=n_queries)
    torch.manual_seed(0)
    out = attack.run(x, y)
    assert not out.success.any() and (out.queries == n_queries).all()
    for i, (points, logits, _) in enumerate(wrapped.per_sample()):
        stripes = points[1] - x[i]
        inside = ((x[i] - eps > 0) & (x[i] + eps < 1))  # where clipping leaves the ±eps value untouched
        assert torch.allclose(stripes[inside].abs(), torch.full_like(stripes[inside], eps), atol=1e-6)
        signs = torch.where(inside, stripes.sign(), torch.zeros_like(stripes))
        column_sign = signs.sum(1, keepdim=True).sign()  # one ±eps value per channel and column
        assert ((signs == 0) | (signs == column_sign)).all()
        best, best_margin = points[1], margin(logits[1:2], y[i:i + 1], False)
        trace = [best_margin]
        for t in range(2, len(points)):
            changed = ((points[t] - best).abs() > 1e-7).any(0)  # (H, W)
            assert changed.any()
            rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
            side = attack._side(t - 2, *x.shape[2:])
            assert rows.max() - rows.min() < side and cols.max() - cols.min() < side
            step = points[t] - x[i]  # in the square: one ±eps value per channel (where not clipped)
            square_signs = torch.where(inside & changed, step.sign(), torch.zeros_like(step)).flatten(1)
            assert not ((square_signs > 0).any(1) & (square_signs < 0).any(1)).any()
            m = margin(logits[t:t + 1], y[i:i + 1], False)
            if m > best_margin:
                best, best_margin = points[t], m
            trace.append(best_margin)
        assert torch.equal(best, out.x_adv[i])
        assert torch.allclose(margin(out.logits[i:i + 1], y[i:i + 1], False), best_margin)
        assert len(trace) == n_queries - 1 and len(set(float(t) for t in trace)) > 1  # it did improve


def test_p_schedule_halves_on_the_paper_iterations_rescaled_to_the_budget():
    assert p_selection(0.8, 10, 10000) == 0.8
    assert p_selection(0.8, 11, 10000) == 0.4
    assert p_selection(0.8, 50, 10000) == 0.4
    assert p_selection(0.8, 51, 10000) == 0.2
    assert p_selection(0.8, 9999, 10000) == 0.8 / 512
    assert p_selection(0.8, 5, 5000) == 0.8 and p_selection(0.8, 6, 5000) == 0.4  # 6 / 5000 -> 12 / 10000
    attack = Square(nn.Identity(), n_queries=5000)
    assert attack._side(0, 32, 32) == round((0.8 * 1024) ** 0.5)
    assert attack._side(4999, 32, 32) == 1


def test_bad_options_are_config_errors(tiny_model):
    for kwargs, word in [({"n_samples": 0}, "n_samples"), ({"sigma": 0.0}, "sigma"), ({"restarts": 0}, "restarts"),
                         ({"steps": 0}, "steps"), ({"query_batch": 0}, "query_batch"), ({"alpha": 2}, "alpha")]:
        with pytest.raises(ConfigError, match=word):
            NES(tiny_model, **kwargs)
    for kwargs, word in [({"n_queries": 1}, "n_queries"), ({"p_init": 0.0}, "p_init"), ({"loss": "dlr"}, "loss")]:
        with pytest.raises(ConfigError, match=word):
            Square(tiny_model, **kwargs)


def test_defaults_follow_seed_001():
    nes_attack, square_attack = NES(nn.Identity()), Square(nn.Identity())
    assert nes_attack.eps == pytest.approx(16 / 255) and nes_attack.alpha == pytest.approx(1 / 255)
    assert (nes_attack.steps, nes_attack.restarts, nes_attack.n_samples, nes_attack.sigma) == (100, 5, 25, 0.001)
    assert square_attack.eps == pytest.approx(16 / 255)
    assert (square_attack.n_queries, square_attack.p_init, square_attack.loss_name) == (5000, 0.8, "margin")


def test_detector_sees_iterates_in_the_box_and_search_points_within_sigma_of_it(tiny_model, images):
    # every iterate NES evaluates is an image in [0, 1]; its search copies x ± sigma u are not clipped (clipping
    # biases the estimate at the box), so they leave it by a few sigma at most
    x, y = images
    wrapped = QueryLog(tiny_model, x)
    sigma = 0.05
    nes(wrapped, eps=8 / 255, steps=2, restarts=1, sigma=sigma).run(x, y)
    points, single = torch.cat(wrapped.points), torch.cat(wrapped.single)
    assert points[single].min() >= 0 and points[single].max() <= 1
    assert points.min() < 0 or points.max() > 1  # the copies are unclipped
    assert points.min() >= -6 * sigma and points.max() <= 1 + 6 * sigma


def test_nes_estimate_is_unbiased_at_the_box():
    """At an all-black image a linear objective's estimate still points along its gradient: the query points are
    not clipped (clipping x - sigma u to 0 would keep only half of each antithetic pair)."""
    w = torch.randn(3 * 8 * 8, generator=torch.Generator().manual_seed(0))

    class Linear(nn.Module):
        def forward(self, x):
            s = x.flatten(1) @ w
            return torch.stack([-s, s], 1)

    attack = NES(Linear(), loss="margin", n_samples=2000)
    x = torch.zeros(1, 3, 8, 8)
    ctx = attack.objective.bind(x, torch.zeros(1, dtype=torch.long))
    torch.manual_seed(0)
    grad, _ = attack._estimate(x, ctx)
    cos = torch.nn.functional.cosine_similarity(grad.flatten(), 2 * w, dim=0)  # margin = 2 s for label 0
    assert cos > 0.7
    assert (grad.flatten() / (2 * w)).median() == pytest.approx(1.0, abs=0.15)  # unbiased scale, not ~0.5


def test_nes_anneals_its_step_on_a_plateau():
    """An objective that keeps falling whatever the attack does: every plateau window halves the step."""
    class Falling(nn.Module):
        calls = 0

        def forward(self, x):
            Falling.calls += 1
            s = -float(Falling.calls) + 0 * x.flatten(1).sum(1)
            return torch.stack([-s, s], 1)

    attack = NES(Falling(), eps=0.5, alpha=0.08, steps=12, restarts=1, n_samples=2, loss="margin")
    attack.run(torch.full((2, 3, 4, 4), 0.5), torch.zeros(2, dtype=torch.long))
    (trace,) = attack.step_size_trace
    expected = torch.tensor([0.08] * 4 + [0.04] * 5 + [0.02] * 3)  # windows of 5 steps end at steps 5 and 10
    torch.testing.assert_close(trace, expected[:, None].expand(12, 2))


def test_nes_momentum_and_annealing_options_are_checked(tiny_model):
    for kwargs, match in (({"momentum": 1.0}, "momentum"), ({"plateau_length": 1}, "plateau_length"),
                          ({"plateau_drop": 0.5}, "plateau_drop"), ({"min_alpha": 0.1}, "min_alpha")):
        with pytest.raises(ConfigError, match=match):
            NES(tiny_model, alpha=0.01, **kwargs)


def test_square_is_as_strong_as_torchattacks_on_a_trained_model(pattern_net):
    """Same budget, queries and p_init on 128 images a trained CNN gets right: robust accuracy within 0.02 of
    torchattacks' (or lower) at a budget where the attack half succeeds and one where it rarely does."""
    torchattacks = pytest.importorskip("torchattacks")
    net, x, y = pattern_net
    assert len(x) == 128
    for eps in (0.08, 0.12):
        reference = torchattacks.Square(net, eps=eps, n_queries=200, n_restarts=1, p_init=0.8, loss="margin", seed=0)
        with torch.no_grad():
            robust_ref = (net(reference(x, y)).argmax(1) == y).float().mean()
        torch.manual_seed(0)
        robust = (~Square(net, eps=eps, n_queries=200, p_init=0.8).run(x, y).success).float().mean()
        assert robust <= robust_ref + 0.02, (eps, float(robust), float(robust_ref))
