"""MI-FGSM, TI-FGSM and SIM: budget, reductions to BIM, kernel shape, gradient-call counts, effectiveness."""

from __future__ import annotations

import pytest
import torch

import advdf.attacks.mifgsm
import advdf.attacks.sim
import advdf.attacks.tifgsm  # noqa: F401  (imports register the attacks)
from advdf.attacks import create_attack
from advdf.attacks.tifgsm import translation_kernel
from advdf.errors import ConfigError

EPS = 16 / 255
NAMES = ["mifgsm", "tifgsm", "sim"]


@pytest.mark.parametrize("name", NAMES)
def test_registered_output_in_budget_and_box(name, tiny_model, images):
    x, y = images
    out = create_attack(name, tiny_model, eps=EPS).run(x, y)
    assert (out.x_adv - x).abs().max() <= EPS + 1e-6
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert torch.allclose(out.logits, tiny_model.eval()(out.x_adv), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_clean_logits_come_from_the_first_step(name, tiny_model, images):
    x, y = images
    out = create_attack(name, tiny_model, eps=EPS).run(x, y)
    assert torch.allclose(out.clean_logits, tiny_model.eval()(x), atol=1e-5)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("mifgsm", {}),                                     # sign(g / ||g||_1) = sign(g)
    ("tifgsm", {"kernel_size": 1}),                     # 1x1 kernel = identity
    ("tifgsm", {"kernel_size": 1, "kernel": "uniform"}),
    ("sim", {"m": 1}),                                  # one copy at scale 1
])
def test_without_momentum_reduces_to_bim(name, kwargs, tiny_model, images):
    x, y = images
    bim = create_attack("bim", tiny_model, eps=EPS, alpha=2 / 255, steps=5)(x, y)
    adv = create_attack(name, tiny_model, eps=EPS, alpha=2 / 255, steps=5, decay=0.0, **kwargs)(x, y)
    assert torch.allclose(adv, bim, atol=1e-6)


def test_gaussian_kernel_is_15x15_symmetric_and_sums_to_one():
    k = translation_kernel("gaussian", 15, 3.0)
    assert k.shape == (15, 15)
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=k.dtype))
    assert torch.allclose(k, k.T) and torch.allclose(k, k.flip(0)) and torch.allclose(k, k.flip(1))
    assert k[7, 7] == k.max()  # peak at the centre
    assert torch.allclose(translation_kernel("uniform", 3), torch.full((3, 3), 1 / 9, dtype=torch.float64))


def test_tifgsm_default_kernel_and_smoothing_is_depthwise(tiny_model):
    attack = create_attack("tifgsm", tiny_model)
    assert attack.kernel.shape == (15, 15)
    grad = torch.zeros(2, 3, 32, 32)
    grad[0, 1, 16, 16] = 1.0
    out = attack._smooth(grad)
    assert out.dtype == grad.dtype and out.shape == grad.shape
    assert out[1].abs().sum() == 0 and out[0, 0].abs().sum() == 0  # no mixing across samples or channels
    assert torch.allclose(out[0, 1, 9:24, 9:24], attack.kernel)  # an impulse reproduces the kernel


@pytest.mark.parametrize(("name", "kwargs", "calls"), [
    ("mifgsm", {"steps": 7}, 7),
    ("tifgsm", {"steps": 7}, 7),
    ("sim", {"steps": 7}, 35),         # default m = 5 copies per step, counted as 5 calls
    ("sim", {"steps": 4, "m": 3}, 12),
])
def test_gradient_call_counts(name, kwargs, calls, tiny_model, images):
    x, y = images
    out = create_attack(name, tiny_model, eps=EPS, batch_size=4, **kwargs).run(x, y)
    assert (out.grad_calls == calls).all()  # per sample, whichever chunk it was in


@pytest.mark.parametrize(("per_pass", "passes"), [(4, [4 * 6]), (1, [6] * 4), (3, [3 * 6, 6]), (None, [6] * 4)])
def test_sim_groups_its_copies_per_pass_without_changing_the_attack(per_pass, passes, tiny_model, images):
    x, y = images
    sizes: list[int] = []
    hook = tiny_model.register_forward_hook(lambda _m, inp, _o: sizes.append(inp[0].shape[0]))
    try:
        out = create_attack("sim", tiny_model, eps=EPS, steps=3, m=4, scales_per_pass=per_pass).run(x, y)
    finally:
        hook.remove()
    assert sizes == passes * 3 + [6]  # the copies of each step in passes of per_pass * N (None on a CPU: one), then
    # the final logits
    batched = create_attack("sim", tiny_model, eps=EPS, steps=3, m=4, scales_per_pass=4).run(x, y)
    assert (out.x_adv - batched.x_adv).abs().max() <= 1e-6 and (out.grad_calls == 12).all()


def test_default_alpha_is_eps_over_steps(tiny_model):
    assert create_attack("mifgsm", tiny_model, eps="16/255", steps=8).alpha == pytest.approx(16 / 255 / 8)


@pytest.mark.parametrize(("name", "bad"), [
    ("mifgsm", {"decay": -1.0}), ("mifgsm", {"steps": 0}), ("tifgsm", {"kernel": "box"}),
    ("tifgsm", {"kernel_size": 4}), ("sim", {"m": 0}), ("sim", {"scales_per_pass": 0}),
])
def test_bad_arguments_are_config_errors(name, bad, tiny_model):
    with pytest.raises(ConfigError):
        create_attack(name, tiny_model, **bad)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("mifgsm", {}), ("mifgsm", {"nesterov": True}), ("tifgsm", {"kernel_size": 5}),
    ("tifgsm", {"decay": 1.0, "kernel_size": 5}), ("sim", {}), ("sim", {"nesterov": True}),
])
def test_untargeted_attacks_lower_accuracy(name, kwargs, tiny_model, images):
    x, _ = images
    y = tiny_model.eval()(x).argmax(1)  # labels the model gets right by construction
    out = create_attack(name, tiny_model, eps=0.3, steps=10, **kwargs).run(x, y)
    assert out.success.float().mean() > 0.5
