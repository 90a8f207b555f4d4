"""Universal CDMAA: one perturbation for many photos, crafted through CDMAA's combiners on a pooled objective."""

from __future__ import annotations

import pytest
import torch
from test_cdmaa import TinyTranslator, _bound

from advdf.attacks.cdmaa_universal import UniversalCDMAA
from advdf.attacks.checks import check_adversarial
from advdf.attacks.disruption import Translators
from advdf.errors import ConfigError


def _photos(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), (torch.rand(n, 3, generator=g) > 0.5).float()


def _model() -> Translators:
    return Translators({"a": TinyTranslator(("Male", "Young", "Bangs"), 0),
                        "u": TinyTranslator(("Male",), 2, conditioned=False)})


def test_one_perturbation_for_every_photo_inside_budget_and_box():
    model = _model()
    x, y = _photos(8, 0)
    attack = UniversalCDMAA(model, steps=3, craft_batch=4).fit(x, y)
    assert attack.delta.shape == (1, 3, 16, 16) and attack.delta.abs().max() <= 0.025 + 1e-7
    x_new, y_new = _photos(5, 1)
    out = attack.run(x_new, y_new)
    check_adversarial(out.x_adv, x_new, eps=0.025)
    inside = ((x_new + attack.delta) > 0) & ((x_new + attack.delta) < 1)  # unclipped pixels carry delta exactly
    torch.testing.assert_close((out.x_adv - x_new)[inside], attack.delta.expand_as(x_new)[inside])
    assert attack.backward_calls == 0  # applying it costs forwards only
    assert attack.craft_backward_calls == 1 * 2 * 3 * 2  # epochs x batches x steps x generators


def test_crafted_perturbation_beats_noise_of_its_budget_on_unseen_photos():
    model = _model()
    x, y = _photos(16, 0)
    x_test, y_test = _photos(8, 1)
    crafted = UniversalCDMAA(model, steps=5, epochs=2, craft_batch=8).fit(x, y).run(x_test, y_test)
    noise = UniversalCDMAA(model, epochs=0).fit(x, y).run(x_test, y_test)
    assert crafted.extras["distortion"].mean() > 1.5 * noise.extras["distortion"].mean()


def test_pooled_direction_is_the_gradient_of_the_batch_mean_loss():
    """With linear combiners (uniform domains and models, no regularizer) the pooled direction is the photos'
    mean direction: the gradient of the batch-mean distortion."""
    model = _model()
    x, y = _photos(4, 0)
    attack = UniversalCDMAA(model, models="uniform", regularizer="none")
    ctx = _bound(attack, x, y)
    z = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    _, _, pooled = attack.step_direction(z, ctx, pool=True)
    _, _, each = attack.step_direction(z, ctx)
    assert pooled.shape == (1, *x.shape[1:])
    torch.testing.assert_close(pooled, each.mean(0, keepdim=True), rtol=1e-4, atol=1e-8)


def test_without_a_fit_each_batch_gets_its_own_shared_perturbation():
    model = _model()
    x, y = _photos(4, 0)
    attack = UniversalCDMAA(model, steps=2)
    out = attack.run(x, y)
    check_adversarial(out.x_adv, x, eps=0.025)
    assert attack.delta is None and attack.backward_calls == 2 * 2


def test_bad_options_and_shapes_fail_with_one_line():
    model = _model()
    for kwargs, match in (({"epochs": -1}, "epochs"), ({"decay": float("nan")}, "decay"),
                          ({"craft_batch": 0}, "craft_batch"), ({"models": "max"}, "models combiner")):
        with pytest.raises(ConfigError, match=match):
            UniversalCDMAA(model, **kwargs)
    x, y = _photos(4, 0)
    attack = UniversalCDMAA(model, steps=1).fit(x, y)
    x_big, y_big = _photos(2, 1, size=24)
    with pytest.raises(ConfigError, match="fitted on"):
        attack.run(x_big, y_big)
    with pytest.raises(ConfigError, match="fit needs"):
        attack.fit(x, y[:, 0])
