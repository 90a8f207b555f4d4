"""APGD, C&W L2 and DeepFool: the properties their papers promise, on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advdf.attacks.apgd import APGD, apgd_checkpoints
from advdf.attacks.checks import check_adversarial
from advdf.attacks.cw import CW
from advdf.attacks.deepfool import DeepFool
from advdf.attacks.losses import margin
from advdf.attacks.mifgsm import MIFGSM
from advdf.attacks.pgd import PGD
from advdf.errors import ConfigError
from advdf.models import create_detector


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1)


class SineNet(nn.Module):
    """Two logits ``[-z, z]`` with ``z = sum_k a_k sin(freq * v_k . (x - 0.5) + phi_k)``: a bumpy landscape."""

    def __init__(self, freq: float, k: int = 32, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = 3 * 32 * 32
        self.register_buffer("v", torch.randn(k, d, generator=g) / d**0.5)
        self.register_buffer("phi", torch.rand(k, generator=g) * 2 * math.pi)
        self.register_buffer("a", torch.randn(k, generator=g) / k**0.5)
        self.freq = freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (torch.sin(self.freq * (x.flatten(1) - 0.5) @ self.v.T + self.phi) * self.a).sum(1)
        return torch.stack([-z, z], 1)


class Linear(nn.Module):
    """Affine logits ``W x + b`` over the flattened image: DeepFool's linearization is exact."""

    def __init__(self, n_classes: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(n_classes, 3 * 32 * 32, generator=g)
        self.register_buffer("w", w - w.mean(1, keepdim=True))  # zero-sum rows: the labels vary with the image
        self.register_buffer("b", torch.randn(n_classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


class ThreeClassCNN(nn.Module):
    """A small CNN with three logits (the attack base needs logits only)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(3)
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3),
                                     nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture
def sine_images() -> torch.Tensor:
    return torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# The untrained tiny CNN has a logit gap of ~0.13 and an input gradient of ~0.025, so C&W needs
# c ~ 2 |f| / |grad f|^2 ~ 400: starting the search at 100 keeps these tests short.
TINY_CW = {"c": 100.0, "binary_search_steps": 4}


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Labels the model gets right by construction."""
    with torch.no_grad():
        return model.eval()(x).argmax(1)


@pytest.fixture(scope="module")
def uncapped():
    """The conftest tiny CNN and images, labelled by its own predictions, with one uncapped C&W and DeepFool run
    shared by the tests that only read them (C&W is the slow one)."""
    torch.manual_seed(0)
    model = create_detector("tiny_cnn", input_size=32).eval()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = predicted(model, x)
    runs = {CW: CW(model, **TINY_CW).run(x, y), DeepFool: DeepFool(model).run(x, y)}
    return model, x, y, runs


# --- APGD -------------------------------------------------------------------------------------------------

def test_apgd_refuses_dlr_for_two_classes(tiny_model):
    with pytest.raises(ConfigError, match=r"dlr.*3 classes.*two classes.*loss=ce"):
        APGD(tiny_model, loss="dlr")
    with pytest.raises(ConfigError, match="unknown attack loss"):
        APGD(tiny_model, loss="nope")
    assert APGD(tiny_model, loss="margin").loss_name == "margin"


def test_apgd_checkpoints_are_autoattacks_windows():
    # windows 22, 19, 16, 13, 10, 7, 6, 6 (shrinking by int(0.03 N) down to int(0.06 N)): the paper's checkpoints
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(1000) == [220, 410, 570, 700, 800, 870, 930, 990]
    assert apgd_checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9]  # windows of at least one iteration
    assert apgd_checkpoints(1) == []


def test_apgd_halves_the_step_size_at_every_checkpoint_when_progress_stalls(images):
    class Flat(nn.Module):  # the objective never increases: condition 1 holds at every checkpoint
        def forward(self, x):
            return torch.tensor([[0.3, -0.3]]) + 0 * x.flatten(1).sum(1, keepdim=True)

    x, y = images
    eps, steps = 8 / 255, 100
    attack = APGD(Flat(), eps=eps, steps=steps)
    attack.run(x, y)
    (trace,) = attack.step_size_trace
    halvings = torch.tensor([sum(w <= k for w in apgd_checkpoints(steps)) for k in range(steps)])
    expected = (2 * eps) * 0.5 ** halvings.float()
    assert torch.equal(trace, expected[:, None].expand(steps, len(x)))
    assert trace[-1, 0] == pytest.approx(2 * eps / 2**8)  # the check after iteration 99 sets the last update's


def test_apgd_step_size_changes_only_by_halving_at_checkpoints(tiny_model, images):
    x, y = images
    torch.manual_seed(0)
    attack = APGD(tiny_model, eps=0.1, steps=100)
    attack.run(x, y)
    (trace,) = attack.step_size_trace
    ratio = trace[1:] / trace[:-1]
    changed = (ratio != 1).nonzero()[:, 0] + 1  # the updates that use a new step size
    assert set(changed.tolist()) <= set(apgd_checkpoints(100))
    assert torch.all((ratio == 1) | (ratio == 0.5))
    assert (trace[-1] < trace[0]).any()  # the tiny model stalls at some checkpoint


def test_apgd_at_least_as_strong_as_pgd_with_the_same_budget(tiny_model, images, sine_images):
    # a bumpy landscape: PGD's fixed step (eps / 4, its default ratio) oscillates, APGD's shrinking one does not
    model, x = SineNet(freq=100.0), sine_images
    y = predicted(model, x)
    for eps in (0.0003, 0.02):
        torch.manual_seed(0)
        apgd = APGD(model, eps=eps, steps=100).run(x, y)
        torch.manual_seed(0)
        pgd = PGD(model, eps=eps, alpha=eps / 4, steps=100).run(x, y)
        assert apgd.grad_calls.tolist() == pgd.grad_calls.tolist()
        assert (~apgd.success).float().mean() <= (~pgd.success).float().mean()
        if eps == 0.02:
            assert (~apgd.success).float().mean() < (~pgd.success).float().mean()
    # the tiny CNN is too flat to be fooled at this budget, but APGD's objective ends higher on every sample
    x, y = images
    torch.manual_seed(0)
    apgd = APGD(tiny_model, eps=0.1, steps=100, loss="margin").run(x, y)
    torch.manual_seed(0)
    pgd = PGD(tiny_model, eps=0.1, alpha=0.1 / 4, steps=100, loss="margin").run(x, y)
    assert (margin(apgd.logits, y, False) > margin(pgd.logits, y, False)).all()


def test_apgd_early_stop_keeps_the_success_mask(sine_images):
    model, x = SineNet(freq=30.0), sine_images
    y = predicted(model, x)
    outs = []
    for early_stop in (False, True):
        torch.manual_seed(0)
        outs.append(APGD(model, eps=0.0006, steps=30, n_restarts=2, early_stop=early_stop).run(x, y))
    full, early = outs
    assert 0 < full.success.sum() < len(x)  # a mixed mask, so the comparison means something
    assert torch.equal(full.success, early.success)
    assert (early.grad_calls <= full.grad_calls).all() and (early.grad_calls < full.grad_calls).any()
    assert torch.allclose(early.logits, model(early.x_adv), atol=1e-5)


def test_apgd_grad_calls_and_restarts(sine_images):
    model, x = SineNet(freq=30.0), sine_images
    y = predicted(model, x)
    torch.manual_seed(0)
    one = APGD(model, eps=0.0006, steps=30).run(x, y)
    assert one.grad_calls.shape == (len(x),) and (one.grad_calls == 30).all()
    torch.manual_seed(0)
    three = APGD(model, eps=0.0006, steps=30, n_restarts=3).run(x, y)
    # the first run is the same draw; later restarts spend 30 passes on the samples still unfooled only
    assert torch.equal(three.grad_calls[one.success], torch.full((int(one.success.sum()),), 30))
    assert set(three.grad_calls[~one.success].tolist()) <= {60, 90}
    assert (three.success >= one.success).all()
    assert (three.x_adv - x).abs().max() <= 0.0006 + 1e-6
    assert torch.allclose(three.logits, model(three.x_adv), atol=1e-5)


# --- C&W and DeepFool: minimum norm ------------------------------------------------------------------------

def test_cw_and_deepfool_find_smaller_l2_than_pgd(uncapped):
    tiny_model, x, y, runs = uncapped
    torch.manual_seed(0)
    pgd = PGD(tiny_model, eps=0.2, alpha=0.02, steps=20).run(x, y)
    assert pgd.success.all()
    for out in runs.values():
        both = out.success & pgd.success
        assert out.success.sum() >= pgd.success.sum()
        assert l2(out.x_adv, x)[both].mean() < 0.8 * l2(pgd.x_adv, x)[both].mean()
        assert torch.allclose(out.logits, tiny_model(out.x_adv), atol=1e-5)


def test_cw_beats_deepfool_norm(uncapped):
    _, x, _, runs = uncapped
    cw, df = runs[CW], runs[DeepFool]
    assert cw.success.all() and df.success.all()
    assert l2(cw.x_adv, x).mean() < l2(df.x_adv, x).mean()  # C&W optimizes the norm, DeepFool overshoots


def test_cw_binary_search_beats_a_fixed_small_c(uncapped):
    tiny_model, x, y, runs = uncapped
    fixed = CW(tiny_model, c=TINY_CW["c"], binary_search_steps=1).run(x, y)
    searched = runs[CW]  # the same start, 4 search steps: 100 -> 1000 -> bisection
    assert not fixed.success.all()
    assert searched.success[~fixed.success].all()
    # unfooled samples come back unchanged (the C&W convention) with the clean logits
    assert torch.equal(fixed.x_adv[~fixed.success], x[~fixed.success])
    assert torch.allclose(fixed.logits, tiny_model(fixed.x_adv), atol=1e-5)


def test_cw_skips_samples_fooled_at_the_clean_input(tiny_model, images):
    x, y = images  # the untrained tiny CNN says "fake" everywhere: the real samples are already misclassified
    clean_wrong = predicted(tiny_model, x) != y
    assert clean_wrong.any() and not clean_wrong.all()
    out = CW(tiny_model, steps=50, binary_search_steps=4).run(x, y)
    assert torch.equal(out.x_adv[clean_wrong], x[clean_wrong])
    assert (out.grad_calls[clean_wrong] == 0).all()
    assert ((out.grad_calls[~clean_wrong] > 0) & (out.grad_calls[~clean_wrong] <= 4 * 50)).all()
    assert torch.allclose(out.clean_logits, tiny_model(x), atol=1e-5)


def test_cw_early_stop_keeps_success_with_fewer_calls(uncapped):
    tiny_model, x, y, runs = uncapped
    full = runs[CW]
    quick = CW(tiny_model, **TINY_CW, early_stop=True).run(x, y)
    assert torch.equal(full.success, quick.success) and full.success.all()
    assert (quick.grad_calls < full.grad_calls).all()
    assert (l2(full.x_adv, x) <= l2(quick.x_adv, x) + 1e-6).all()  # the search only refines the norm


def test_cw_targeted_toward_real(uncapped):
    tiny_model, x, y, runs = uncapped
    assert (y == 1).all()  # every sample is called fake: "toward real" is "away from fake" here
    out = CW(tiny_model, targeted=True, target=0, **TINY_CW).run(x, y)
    assert out.success.all() and (out.logits.argmax(1) == 0).all()
    assert torch.allclose(out.x_adv, runs[CW].x_adv)


@pytest.mark.parametrize("cls", [CW, DeepFool])
def test_minnorm_attacks_refuse_a_loss(cls, tiny_model):
    with pytest.raises(ConfigError, match="loss"):
        cls(tiny_model, loss="ce")


@pytest.mark.parametrize("cls", [CW, DeepFool])
def test_l2_cap_is_respected(cls, uncapped):
    tiny_model, x, y, runs = uncapped
    kwargs = TINY_CW if cls is CW else {}
    free = runs[cls]
    eps = float(l2(free.x_adv, x).median())  # some samples fit under the cap, some do not
    capped = cls(tiny_model, eps=eps, **kwargs).run(x, y)
    assert cls.norm == "l2" and capped.x_adv.min() >= 0 and capped.x_adv.max() <= 1
    assert (l2(capped.x_adv, x) <= eps * (1 + 1e-5)).all()
    fits = l2(free.x_adv, x) <= eps
    assert fits.any() and not fits.all()
    assert torch.allclose(capped.x_adv[fits], free.x_adv[fits])
    assert torch.equal(capped.success[fits], free.success[fits])
    # projected samples: logits (and success) come from a forward on the returned points
    assert torch.allclose(capped.logits, tiny_model(capped.x_adv), atol=1e-5)


@pytest.mark.parametrize("cls", [CW, DeepFool])
def test_minnorm_sample_alone_equals_sample_in_batch(cls, uncapped):
    tiny_model, x, y, runs = uncapped
    batch = runs[cls]
    alone = cls(tiny_model, **(TINY_CW if cls is CW else {})).run(x[3:4], y[3:4])
    assert torch.allclose(batch.x_adv[3:4], alone.x_adv, atol=1e-5)
    assert batch.grad_calls[3] == alone.grad_calls[0]


# --- DeepFool -----------------------------------------------------------------------------------------------

def test_deepfool_two_logits_one_backward_per_iteration_and_none_for_fooled_samples(tiny_model, images):
    x, _ = images
    y = predicted(tiny_model, x)
    forwards, backwards = [], []
    tiny_model.register_forward_pre_hook(lambda m, inp: forwards.append((len(inp[0]), torch.is_grad_enabled())))
    tiny_model.register_full_backward_hook(lambda m, gin, gout: backwards.append(1))
    out = DeepFool(tiny_model).run(x, y)
    assert out.success.all() and out.grad_calls.shape == (len(x),)
    iterations = int(out.grad_calls.max())
    assert len(backwards) == iterations  # one backward per iteration for the whole batch
    # the samples checked at iteration t: those that took at least t steps
    alive = [int((out.grad_calls >= t).sum()) for t in range(iterations + 2)]
    expected = []
    for t in range(iterations + 1):
        # after the first step, and after any step that fooled half of its samples, the check runs without
        # autograd and only the unfooled samples are forwarded again for their gradient
        split = t == 1 or (t >= 2 and alive[t] <= alive[t - 1] / 2)
        expected += [(alive[t], False)] + ([(alive[t + 1], True)] if alive[t + 1] else []) if split else \
            [(alive[t], True)]
    assert forwards == expected
    assert alive[iterations] < alive[0]  # the batch shrinks as samples are fooled
    assert torch.allclose(out.clean_logits, tiny_model(x), atol=1e-5)
    assert torch.allclose(out.logits, tiny_model(out.x_adv), atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_deepfool_is_exact_on_an_affine_model(n_classes):
    model = Linear(n_classes)
    x = 0.3 + 0.4 * torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = predicted(model, x)
    assert len(set(y.tolist())) > 1
    out = DeepFool(model).run(x, y)
    # the closest boundary, in closed form: min over k != y of |f_k| / ||w_k - w_y||
    f = model(x) - model(x).gather(1, y[:, None])
    dist = f.abs() / (model.w[None] - model.w[y][:, None]).norm(dim=2)
    l_best = dist.scatter(1, y[:, None], float("inf")).argmin(1)
    rows = torch.arange(len(x))
    expected = 1.02 * (dist[rows, l_best] + 1e-4)  # the reference's stabilizer: 1e-4 on the distance
    assert out.success.all()
    assert (out.grad_calls == n_classes if n_classes > 2 else out.grad_calls == 1).all()  # one step
    assert torch.allclose(l2(out.x_adv, x), expected, rtol=1e-3)
    assert torch.equal(out.logits.argmax(1), l_best)  # it crossed into the closest class


def test_deepfool_multiclass_cnn():
    model = ThreeClassCNN()
    g = torch.Generator().manual_seed(3)
    x = 0.3 * torch.rand(6, 3, 32, 32, generator=g) + 0.7 * torch.rand(6, 3, 1, 1, generator=g)  # tinted noise
    y = predicted(model, x)
    assert len(set(y.tolist())) > 1
    out = DeepFool(model).run(x, y)
    assert out.success.all()
    assert (out.grad_calls % 3 == 0).all() and (out.grad_calls > 0).all()  # three backward passes per step
    assert torch.allclose(out.logits, model(out.x_adv), atol=1e-5)
    assert l2(out.x_adv, x).max() < 5.0
    with pytest.raises(ConfigError, match="targeted"):
        DeepFool(model, targeted=True).run(x, y)


def test_deepfool_targeted_two_logits(tiny_model, images):
    x, y = images
    out = DeepFool(tiny_model, targeted=True, target=0).run(x, y)
    assert out.success.all() and (out.logits.argmax(1) == 0).all()
    assert (out.grad_calls > 0).all() and (out.grad_calls <= 50).all()


def test_deepfool_grad_calls_stop_per_sample(tiny_model, images):
    x, y = images  # fixture labels: the real samples are misclassified at the clean input already
    out = DeepFool(tiny_model, steps=3).run(x, y)
    clean_wrong = predicted(tiny_model, x) != y
    assert (out.grad_calls[clean_wrong] == 0).all()
    assert torch.equal(out.x_adv[clean_wrong], x[clean_wrong])
    assert (out.grad_calls[~clean_wrong] == 3).all()  # 3 steps are not enough for the others here
    assert not out.success[~clean_wrong].any()
    assert torch.allclose(out.logits, tiny_model(out.x_adv), atol=1e-5)


def test_apgd_matches_autoattacks_reference_sample_by_sample():
    """torchattacks' APGD is AutoAttack's code: from the same random start (same seed, same draw), the same samples
    end up fooled. (At 10 steps the windows are one iteration long from the third on, where a restart that dropped
    the momentum, or checked condition 2 at the first window, fooled a different set.)"""
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 2)).eval()
    x = torch.rand(256, 3, 16, 16)
    y = net(x).argmax(1)
    for steps, eps in ((10, 0.04), (30, 0.02)):
        reference = torchattacks.APGD(net, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0)
        fooled_ref = net(reference(x, y)).argmax(1) != y
        torch.manual_seed(0)
        ours = APGD(net, eps=eps, steps=steps).run(x, y)
        assert 0 < fooled_ref.sum() < len(x)
        assert torch.equal(ours.success, fooled_ref), (steps, eps)


@pytest.mark.parametrize("cls", [PGD, MIFGSM])
def test_first_and_best_iterates_keep_what_the_last_iterate_loses(cls, sine_images):
    """On a bumpy landscape a fixed large step leaves some samples it fooled on the way: ``first`` and ``best``
    return those iterates (same trajectory, same passes) and their outputs are the model's at the returned point."""
    model, x = SineNet(freq=100.0), sine_images
    y = predicted(model, x)
    eps = 0.02
    outs = {}
    for mode in ("last", "first", "best"):
        torch.manual_seed(0)
        outs[mode] = cls(model, eps=eps, alpha=eps / 2, steps=20, return_point=mode).run(x, y)
    last = outs["last"]
    for mode in ("first", "best"):
        out = outs[mode]
        check_adversarial(out.x_adv, x, eps)
        assert torch.equal(out.grad_calls, last.grad_calls)
        assert torch.allclose(out.logits, model(out.x_adv), atol=1e-5)
        assert (out.success >= last.success).all() and out.success.sum() > last.success.sum(), mode
    assert torch.equal(outs["first"].success, outs["best"].success)
    with pytest.raises(ConfigError, match="return_point"):
        cls(model, return_point="middle")


def test_deepfool_matches_the_torchattacks_reference_sample_by_sample():
    """Same steps and overshoot: the same L2 per sample, up to the stabilizer (the original code adds 1e-4 to the
    distance of each step, as advdf; torchattacks adds none)."""
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                          nn.Linear(128, 2)).eval()
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    y = predicted(model, x)
    reference = torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x, y)
    ours = DeepFool(model, steps=50, overshoot=0.02).run(x, y)
    fooled = model(reference).argmax(1) != y
    assert ours.success.all() and fooled.float().mean() > 0.8
    gap = l2(ours.x_adv, x)[fooled] - l2(reference, x)[fooled]
    assert (gap >= 0).all() and (gap <= 1.02e-4 * ours.grad_calls[fooled] + 1e-6).all()
