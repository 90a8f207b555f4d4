"""CDMAA (seed 003) on tiny conditional generators: budget, cost per step, combiners, and its claims' mechanics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advdf.attacks.cdmaa import CDMAA, CDMAAAPGD, CDMAAMomentum
from advdf.attacks.checks import check_adversarial
from advdf.attacks.disruption import Disruption, Translators, distortion
from advdf.errors import ConfigError


class TinyTranslator(nn.Module):
    """A conditional generator on [-1, 1]: conv(concat(x, tiled c)) -> tanh; domain k flips attribute k."""

    def __init__(self, attributes: tuple[str, ...], seed: int, conditioned: bool = True) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.attributes = attributes
        self.domains = attributes if conditioned else ("other",)
        self.conditioned = conditioned
        extra = len(attributes) if conditioned else 0
        self.net = nn.Sequential(nn.Conv2d(3 + extra, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))

    def condition(self, attrs: torch.Tensor, domain: int) -> torch.Tensor | None:
        if not self.conditioned:
            return None
        c = attrs.clone()
        c[:, domain] = 1 - c[:, domain]
        return c

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if c is not None:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return torch.tanh(self.net(x))


def _setup(n: int = 6, size: int = 16):
    gens = {"a": TinyTranslator(("Male", "Young", "Bangs"), 0), "b": TinyTranslator(("Young", "Eyeglasses"), 1),
            "u": TinyTranslator(("Male",), 2, conditioned=False)}
    model = Translators(gens)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    y = (torch.rand(n, len(model.attributes), generator=g) > 0.5).float()
    return model, x, y


def test_protection_stays_in_budget_and_box_and_beats_random_noise():
    model, x, y = _setup()
    attack = CDMAA(model, eps=0.05, alpha=0.01, steps=10)
    out = attack.run(x, y)
    check_adversarial(out.x_adv, x, eps=0.025)  # 0.05 on [-1, 1] is 0.025 on [0, 1]
    assert out.extras["distortion"].shape == (len(x), len(model.pairs())) == (6, 3 + 2 + 1)
    assert torch.isfinite(out.extras["distortion"]).all()
    # random noise at the corners of the same ball (the strongest random noise of that budget)
    noise = (x + torch.empty_like(x).uniform_(-1, 1).sign() * 0.025).clamp(0, 1)
    random = attack.evaluate(noise, _bound(attack, x, y))["distortion"]
    assert out.extras["distortion"].mean() > 1.3 * random.mean()
    pairs = model.pairs()
    for j, name in enumerate(model.names):  # attacking one generator alone beats the noise on each of its domains
        alone = CDMAA(model, models="single", single_model=j).run(x, y).extras["distortion"]
        cols = [i for i, (n, _) in enumerate(pairs) if n == name]
        assert (alone[:, cols].mean(0) > random[:, cols].mean(0)).all(), name


def _bound(attack, x, y):
    ctx = attack.objective.bind(x, y)
    return ctx.update(attack._references(x, ctx))


@pytest.mark.parametrize(("domains", "models", "per_step"), [("uniform", "mgda", 3), ("mgda", "uniform", 3),
                                                              ("uniform", "single", 1), ("iterative", "iterative", 1)])
def test_one_backward_per_model_per_step(domains, models, per_step):
    model, x, y = _setup()
    attack = CDMAA(model, steps=4, domains=domains, models=models)
    attack.run(x, y)
    assert attack.backward_calls == 4 * per_step


def test_uniform_direction_is_the_gradient_of_the_mean_domain_loss():
    model, x, y = _setup(n=3)
    attack = CDMAA(model, models="single", single_model=0, regularizer="none")
    ctx = _bound(attack, x, y)
    z = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    _, _, direction = attack.score_and_grad(z, ctx)
    zz = z.clone().requires_grad_(True)
    d = attack._distortion("a", model.outputs("a", zz, ctx["attrs"]), ctx, [0, 1, 2])
    (g,) = torch.autograd.grad(d.mean(1).sum(), zz)
    torch.testing.assert_close(direction, g, rtol=1e-4, atol=1e-7)


def test_mgda_direction_raises_every_generator_loss_to_first_order():
    model, x, y = _setup(n=4)
    attack = CDMAA(model, regularizer="none", random_start=False)
    ctx = _bound(attack, x, y)
    z = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    _, _, direction = attack.score_and_grad(z, ctx)
    for name in model.names:
        ks = list(range(len(model.domains(name))))
        zz = z.clone().requires_grad_(True)
        d = attack._distortion(name, model.outputs(name, zz, ctx["attrs"]), ctx, ks).mean(1)
        (g,) = torch.autograd.grad(d.sum(), zz)
        assert ((g * direction).flatten(1).sum(1) >= -1e-9).all(), name


@pytest.mark.parametrize("cls", [CDMAAMomentum, CDMAAAPGD])
def test_other_base_optimizers_stay_in_budget_and_disrupt(cls):
    model, x, y = _setup()
    out = cls(model, eps=0.05, steps=6).run(x, y)
    check_adversarial(out.x_adv, x, eps=0.025)
    noise = (x + torch.empty_like(x).uniform_(-0.025, 0.025)).clamp(0, 1)  # uniform random noise (URN)
    attack = CDMAA(model)
    assert out.extras["distortion"].mean() > 1.3 * attack.evaluate(noise, _bound(attack, x, y))["distortion"].mean()


def test_masked_distortion_counts_only_edited_pixels():
    ref = torch.zeros(2, 1, 3, 4, 4)
    x = torch.zeros(2, 1, 3, 4, 4)
    ref[0, 0, :, :2] = 1.0  # sample 0's generator edits the top half; sample 1's edits nothing
    out = ref.clone()
    out[0, 0, :, :2] += 0.5
    out[..., 2:, :] += 0.3  # outside the edited region: ignored by the masked distortion
    d = distortion(out, ref, x)
    assert d[0, 0].item() == pytest.approx(0.25) and d[1, 0].item() == 0.0
    assert distortion(out, ref)[0, 0].item() == pytest.approx((0.25 * 24 + 0.09 * 24) / 48)


def test_success_threshold_rules():
    d = torch.tensor([[0.05, 0.2], [0.04, 0.3]])
    assert Disruption(0.05).success({"distortion": d}, None).tolist() == [True, False]
    assert Disruption(0.05, strict=True).success({"distortion": d}, None).tolist() == [False, False]


def test_bad_options_fail_with_one_line():
    model, x, y = _setup()
    for kwargs, match in (({"domains": "random"}, "domains combiner"), ({"models": "max"}, "models combiner"),
                          ({"regularizer": "l1"}, "regularizer"), ({"eps": 2.5}, r"outside \[0, 2\]"),
                          ({"single_model": 5, "models": "single"}, "single_model")):
        with pytest.raises(ConfigError, match=match):
            CDMAA(model, **kwargs)
    with pytest.raises(ConfigError, match="Translators"):
        CDMAA(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="Eyeglasses"):
        Translators({"b": TinyTranslator(("Young", "Eyeglasses"), 1)}, attributes=("Young",))
    with pytest.raises(ConfigError, match="source attributes"):
        CDMAA(model).run(x, y[:, 0])


def test_cdmaa_on_the_real_generator_classes(tiny_translators):
    """StarGAN's five hair/gender/age domains and U-GAT-IT's one, through their own condition encodings."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = (torch.rand(4, len(tiny_translators.attributes), generator=g) > 0.5).float()
    assert tiny_translators.pairs() == [*(("stargan", d) for d in tiny_translators.domains("stargan")),
                                        ("ugatit", "anime")]
    attack = CDMAA(tiny_translators, steps=3)
    out = attack.run(x, y)
    check_adversarial(out.x_adv, x, eps=0.025)
    assert out.extras["distortion"].shape == (4, 6) and (out.extras["distortion"] > 0).all()
    assert attack.backward_calls == 3 * 2


def test_eot_through_differentiable_jpeg_makes_the_protection_survive_real_jpeg():
    """The upload question: after a real JPEG-75 re-encoding, the EOT protection (kornia's differentiable codec in
    the gradient steps) still distorts more than the plain one; compared with the outputs on the re-encoded clean
    photo, so JPEG's own change is not counted."""
    from advdf.defenses import JPEG

    model, x, y = _setup(n=6, size=32)
    jpeg = JPEG(75, surrogate="kornia")
    objective = Disruption()
    survived = {}
    for name, eot in (("plain", None), ("eot", jpeg)):
        torch.manual_seed(0)
        out = CDMAA(model, eot=eot, steps=8).run(x, y)
        check_adversarial(out.x_adv, x, eps=0.025)
        survived[name] = objective.all_pairs(model.all_outputs(jpeg(out.x_adv), y), model.all_outputs(jpeg(x), y),
                                             x).mean()
    assert survived["eot"] > 1.5 * survived["plain"]
