"""Properties every attack must have, parametrized over the registry."""

from __future__ import annotations

import pytest
import torch

from advdf.attacks import create_attack, list_attacks
from advdf.attacks.base import IterativeAttack, parse_budget
from advdf.attacks.checks import check_adversarial, perturbation_norms
from advdf.attacks.losses import cross_entropy, margin
from advdf.attacks.registry import ATTACKS
from advdf.errors import AdversarialCheckError, ConfigError

EPS = 8 / 255
DETERMINISTIC = [a for a in list_attacks() if ATTACKS.get(a).deterministic]
BLACK_BOX = [a for a in list_attacks() if ATTACKS.get(a).black_box]
# iterative attacks that return one of their iterates per sample (a universal perturbation is one point for all)
RETURNS_POINTS = [a for a in list_attacks() if issubclass(ATTACKS.get(a), IterativeAttack) and a != "universalcdmaa"]
# Budgets small enough for a 6-image tiny model; every other argument keeps its paper default. An attack that
# cannot fool the untrained tiny model at 8/255 would otherwise spend its whole seed-001 query budget here.
SMALL_BUDGET = {"nes": {"steps": 2, "restarts": 2, "n_samples": 4}, "square": {"n_queries": 100},
                "cw": {"steps": 20, "binary_search_steps": 3}, "apgd": {"steps": 20},
                # seed 002's attacks take budgets on a pixel scale: 1 here, so EPS means what it means for the others
                "iap": {"pixel_scale": 1, "steps": 5}, "overfire": {"pixel_scale": 1, "steps": 5},
                "urn": {"pixel_scale": 1},
                # seed 003's attacks take budgets on the generators' [-1, 1] scale: scale 1 here, as for the others
                **{n: {"scale": 1, "steps": 3, "tau": 1e-5} for n in ("cdmaa", "cdmaamomentum", "cdmaaapgd", "universalcdmaa")}}


def make(name: str, model, **kwargs):
    return create_attack(name, model, **{"eps": EPS, **SMALL_BUDGET.get(name, {}), **kwargs})


def target(name: str, tiny_model, tiny_ffm, tiny_translators):
    """The model an attack runs on here: a forensic autoencoder for attacks defined on latent zones, generators for
    the protections against them."""
    cls = ATTACKS.get(name)
    return tiny_translators if cls.needs_generators else tiny_ffm if cls.needs_zones else tiny_model


def labels(name: str, model, y: torch.Tensor) -> torch.Tensor:
    """What the attack's ``y`` is: class labels, or for generator attacks the photos' source attributes."""
    if not ATTACKS.get(name).needs_generators:
        return y
    return (torch.rand(len(y), len(model.attributes), generator=torch.Generator().manual_seed(0)) > 0.5).float()


def logits_of(model, x: torch.Tensor) -> torch.Tensor:
    out = model.eval()(x)
    return out["logits"] if isinstance(out, dict) else out


def test_registry_has_every_attack_of_the_papers():
    assert {"fgsm", "bim", "mifgsm", "tifgsm", "sim", "pgd", "apgd", "cw", "deepfool", "nes", "square"} <= set(
        list_attacks())



@pytest.mark.parametrize("name", list_attacks())
def test_output_inside_budget_box_and_finite(name, tiny_model, tiny_ffm, tiny_translators, images):
    x, y = images
    model = target(name, tiny_model, tiny_ffm, tiny_translators)
    out = make(name, model).run(x, labels(name, model, y))
    assert out.x_adv.shape == x.shape
    assert torch.isfinite(out.x_adv).all()
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    if ATTACKS.get(name).norm == "linf":
        assert (out.x_adv - x).abs().max() <= EPS + 1e-6
    else:
        assert (out.x_adv - x).flatten(1).norm(dim=1).max() <= EPS + 1e-5
    check_adversarial(out.x_adv, x, EPS, ATTACKS.get(name).norm)
    if ATTACKS.get(name).needs_generators:  # one distortion per (generator, domain) pair, measured at x_adv
        assert out.logits.shape == (6, len(model.pairs())) and torch.isfinite(out.logits).all()
        return
    assert out.logits.shape == (6, 2)
    assert torch.allclose(out.logits, logits_of(model, out.x_adv), atol=1e-5)


@pytest.mark.parametrize("name", list_attacks())
def test_input_not_mutated_and_modes_restored(name, tiny_model, tiny_ffm, tiny_translators, images):
    x, y = images
    x_before = x.clone()
    model = target(name, tiny_model, tiny_ffm, tiny_translators)
    y = labels(name, model, y)
    model.train()
    next(iter(model.children())).eval()  # a mixed-mode model must come back exactly as it was
    modes = [m.training for m in model.modules()]
    assert len(set(modes)) == 2
    make(name, model)(x, y)
    assert torch.equal(x, x_before)
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_sample_alone_equals_sample_in_batch(name, tiny_model, tiny_ffm, tiny_translators, images):
    x, y = images
    attack = make(name, target(name, tiny_model, tiny_ffm, tiny_translators))
    y = labels(name, attack.model, y)
    if hasattr(attack, "fit"):  # a universal perturbation is crafted on a set first, then the same for every photo
        attack.fit(x, y)
    batch = attack(x, y)
    alone = attack(x[2:3], y[2:3])
    assert torch.allclose(batch[2:3], alone, atol=1e-6)


@pytest.mark.parametrize("name", RETURNS_POINTS)
def test_first_and_best_iterates_stay_in_budget_and_fool_where_the_last_does(name, tiny_model, tiny_ffm,
                                                                             tiny_translators, images):
    x, y = images
    model = target(name, tiny_model, tiny_ffm, tiny_translators)
    y = labels(name, model, y)
    outs = {}
    for mode in ("last", "first", "best"):
        torch.manual_seed(0)
        outs[mode] = make(name, model, return_point=mode).run(x, y)
    for mode in ("first", "best"):
        out = outs[mode]
        check_adversarial(out.x_adv, x, EPS, ATTACKS.get(name).norm)
        assert (out.success >= outs["last"].success).all() and torch.equal(out.grad_calls, outs["last"].grad_calls)
        if not ATTACKS.get(name).needs_generators and not ATTACKS.get(name).needs_zones:
            assert torch.allclose(out.logits, logits_of(model, out.x_adv), atol=1e-5)


@pytest.mark.parametrize("name", BLACK_BOX)
def test_black_box_attacks_run_without_autograd(name, tiny_model, images):
    x, y = images
    with torch.no_grad():
        out = make(name, tiny_model).run(x, y)
    assert all(p.grad is None for p in tiny_model.parameters())
    assert (out.grad_calls == 0).all() and (out.queries >= 1).all()


@pytest.mark.parametrize("name", list_attacks())
def test_early_stop_never_changes_which_samples_succeed(name, tiny_model, tiny_ffm, tiny_translators, images):
    x, y = images
    model = target(name, tiny_model, tiny_ffm, tiny_translators)
    if ATTACKS.get(name).needs_generators:
        y = labels(name, model, y)
    else:
        y = logits_of(model, x).argmax(1)
        y[:2] = 1 - y[:2]  # two samples start fooled, so the early exit has something to freeze
    torch.manual_seed(0)
    full = make(name, model).run(x, y)
    torch.manual_seed(0)
    quick = make(name, model, early_stop=True).run(x, y)
    assert torch.equal(quick.success, full.success)
    assert (quick.grad_calls <= full.grad_calls).all() and (quick.queries <= full.queries).all()


def test_pgd_is_seeded(tiny_model, images):
    x, y = images
    attack = create_attack("pgd", tiny_model, eps=EPS)
    torch.manual_seed(3)
    a = attack(x, y)
    torch.manual_seed(3)
    assert torch.equal(a, attack(x, y))


def test_batch_size_splits_without_changing_result(tiny_model, images):
    x, y = images
    full = create_attack("bim", tiny_model, eps=EPS)(x, y)
    chunked = create_attack("bim", tiny_model, eps=EPS, batch_size=4)(x, y)
    assert torch.allclose(full, chunked, atol=1e-6)


@pytest.mark.parametrize("name", ["fgsm", "bim"])
def test_clean_logits_come_from_the_first_step(name, tiny_model, images):
    x, y = images
    out = create_attack(name, tiny_model, eps=EPS).run(x, y)
    assert out.clean_logits is not None
    assert torch.allclose(out.clean_logits, tiny_model.eval()(x), atol=1e-5)


def test_pgd_has_no_clean_logits(tiny_model, images):
    x, y = images
    assert create_attack("pgd", tiny_model, eps=EPS).run(x, y).clean_logits is None


def test_targeted_pgd_reaches_real_on_tiny_model(tiny_model, images):
    x, y = images
    attack = create_attack("pgd", tiny_model, eps=0.5, alpha=0.05, steps=40, targeted=True, target=0, loss="margin")
    out = attack.run(x, y)
    assert (out.logits.argmax(1) == 0).all()
    assert out.success.all()


def test_untargeted_attacks_lower_accuracy(tiny_model, images):
    x, _ = images
    y = tiny_model.eval()(x).argmax(1)  # labels the model gets right by construction
    out = create_attack("pgd", tiny_model, eps=0.3, alpha=0.03, steps=30).run(x, y)
    assert out.success.float().mean() > 0.5


@pytest.mark.parametrize("bad", [1.5, -0.1, "abc", "1/0", float("nan")])
def test_impossible_eps_is_a_config_error(bad, tiny_model):
    with pytest.raises(ConfigError, match="eps"):
        create_attack("pgd", tiny_model, eps=bad)


def test_fraction_budgets_parse():
    assert parse_budget("16/255", "eps") == pytest.approx(16 / 255)
    assert parse_budget(0.25, "eps") == 0.25


def test_unknown_attack_and_loss(tiny_model):
    with pytest.raises(ConfigError, match="unknown attack"):
        create_attack("nope", tiny_model)
    with pytest.raises(ConfigError, match="unknown attack loss"):
        create_attack("pgd", tiny_model, loss="dlr")


def test_attack_rejects_unnormalized_input(tiny_model):
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        create_attack("fgsm", tiny_model)(torch.full((1, 3, 32, 32), 2.0), torch.tensor([0]))


def test_margin_and_ce_signs():
    logits = torch.tensor([[2.0, 0.5], [0.0, 3.0]])
    y = torch.tensor([0, 0])
    # targeted toward real: Z_real - Z_fake
    assert torch.allclose(margin(logits, y, targeted=True), torch.tensor([1.5, -3.0]))
    assert torch.allclose(margin(logits, y, targeted=False), torch.tensor([-1.5, 3.0]))
    assert (cross_entropy(logits, y, targeted=True) < 0).all()


def test_check_adversarial_catches_violations():
    x = torch.full((1, 3, 4, 4), 0.5)
    check_adversarial(x + 0.01, x, eps=0.02)
    with pytest.raises(AdversarialCheckError, match="exceeds eps"):
        check_adversarial(x + 0.05, x, eps=0.02)
    with pytest.raises(AdversarialCheckError, match=r"\[0, 1\]"):
        check_adversarial(x + 0.6, x, eps=1.0)
    with pytest.raises(AdversarialCheckError, match="NaN"):
        check_adversarial(torch.full_like(x, float("nan")), x, eps=1.0)


def test_perturbation_norms():
    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3
    n = perturbation_norms(x_adv, x)
    assert torch.allclose(n["linf"], torch.tensor([0.3, 0.0]))
    assert torch.allclose(n["l2"], torch.tensor([0.3, 0.0]))
    assert torch.allclose(n["l0"], torch.tensor([0.25, 0.0]))
