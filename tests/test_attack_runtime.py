"""The runtime options every attack shares: early exit, precision, channels_last, compile, per-sample counts."""

from __future__ import annotations

import pytest
import torch

from advdf.attacks import create_attack
from advdf.attacks.active import ActiveSamples
from advdf.attacks.objectives import Context
from advdf.errors import ConfigError

EPS = 8 / 255
SIGN_GRADIENT = ["fgsm", "bim", "pgd", "mifgsm", "tifgsm", "sim"]


def _own_labels(model, x):
    return model.eval()(x).argmax(1)


@pytest.mark.parametrize("name", SIGN_GRADIENT)
def test_early_stop_keeps_every_success_and_spends_fewer_calls(name, tiny_model, images):
    x, _ = images
    y = _own_labels(tiny_model, x)
    kwargs = {"eps": 0.3} if name == "fgsm" else {"eps": 0.3, "steps": 12}
    if name in ("bim", "pgd"):
        kwargs["alpha"] = 0.03
    if name == "tifgsm":
        kwargs["kernel_size"] = 5  # a 15x15 kernel blurs a 32 px gradient too much to fool the tiny model
    torch.manual_seed(0)
    full = create_attack(name, tiny_model, **kwargs).run(x, y)
    torch.manual_seed(0)
    quick = create_attack(name, tiny_model, early_stop=True, **kwargs).run(x, y)
    # A frozen sample was fooled at its frozen point, and an unfrozen one follows the full run's trajectory.
    assert torch.equal(quick.success | full.success, quick.success)
    assert torch.equal(quick.success, full.success)  # on this model no sample un-fools itself later
    assert torch.allclose(quick.logits, tiny_model(quick.x_adv), atol=1e-5)
    assert (quick.grad_calls <= full.grad_calls).all()
    if name != "fgsm":
        assert quick.grad_calls.sum() < full.grad_calls.sum()


def test_early_stop_freezes_a_sample_at_the_point_it_was_fooled(tiny_model, images):
    x, _ = images
    y = _own_labels(tiny_model, x)
    y[0] = 1 - y[0]  # sample 0 is already misclassified: fooled before any step
    out = create_attack("bim", tiny_model, eps=EPS, steps=5, early_stop=True).run(x, y)
    assert torch.equal(out.x_adv[0], x[0])
    assert out.grad_calls[0] == 1


def test_active_samples_bookkeeping():
    active = ActiveSamples(4, torch.device("cpu"), enabled=True)
    t = torch.arange(4.0)
    ctx = Context(goal=torch.tensor([0, 1, 0, 1]))
    assert active.take(t) is t and active.take(ctx) is ctx
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    keep = active.retire(logits, torch.tensor([True, False, False, True]))
    assert keep.tolist() == [False, True, True, False]
    assert active.index.tolist() == [1, 2]
    assert active.take(ctx)["goal"].tolist() == [1, 0]  # the context compacts with the samples
    assert torch.equal(active.put(t.clone(), torch.tensor([10.0, 20.0])), torch.tensor([0.0, 10.0, 20.0, 3.0]))
    seen = []

    def evaluate(z, c):
        seen.append(c["goal"].tolist())
        return torch.full((len(z), 2), 7.0)

    final = active.final(torch.zeros(4, 1), ctx, evaluate)
    assert torch.equal(final[[0, 3]], logits[[0, 3]]) and (final[[1, 2]] == 7).all()
    assert seen == [[1, 0]]  # only the active samples are evaluated, with their own context rows
    disabled = ActiveSamples(2, torch.device("cpu"), enabled=False)
    assert disabled.retire(logits[:2], torch.tensor([True, True])) is None and disabled.full


def test_active_samples_freeze_any_output_structure():
    """Outputs are a tensor or a dict of tensors of any trailing shape (a segmenter's masks, say)."""
    active = ActiveSamples(3, torch.device("cpu"), enabled=True)
    out = {"mask": torch.arange(3 * 4.0).view(3, 1, 2, 2), "score": torch.tensor([1.0, 2.0, 3.0])}
    active.retire(out, torch.tensor([False, True, False]))
    final = active.final(torch.zeros(3, 1), Context(), lambda z, c: {"mask": torch.zeros(len(z), 1, 2, 2),
                                                                     "score": -torch.ones(len(z))})
    assert final["mask"].shape == (3, 1, 2, 2)
    assert torch.equal(final["mask"][1], out["mask"][1]) and (final["mask"][[0, 2]] == 0).all()
    assert final["score"].tolist() == [-1.0, 2.0, -1.0]


@pytest.mark.parametrize("name", SIGN_GRADIENT)
def test_channels_last_gives_the_same_attack(name, tiny_model, images):
    x, y = images
    torch.manual_seed(1)
    ref = create_attack(name, tiny_model, eps=EPS).run(x, y)
    torch.manual_seed(1)
    cl = create_attack(name, tiny_model, eps=EPS, channels_last=True).run(x, y)
    assert torch.allclose(cl.x_adv, ref.x_adv, atol=1e-5)
    # the model is handed back in its original memory format
    conv = next(m for m in tiny_model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_stays_in_budget_and_returns_float32_logits(precision, tiny_model, images):
    x, y = images
    out = create_attack("pgd", tiny_model, eps=EPS, precision=precision, steps=5).run(x, y)
    assert out.logits.dtype == torch.float32 and out.x_adv.dtype == torch.float32
    assert (out.x_adv - x).abs().max() <= EPS + 1e-6 and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    # autocast really ran: the low-precision logits differ from float32 ones by rounding, not by much
    ref = tiny_model.eval()(out.x_adv)
    assert torch.allclose(out.logits, ref, atol=5e-2) and not torch.equal(out.logits, ref)


def test_unknown_precision_is_one_clear_error(tiny_model):
    with pytest.raises(ConfigError, match="precision 'int8'"):
        create_attack("pgd", tiny_model, precision="int8")


@pytest.mark.slow
def test_compiled_model_gives_the_same_attack(tiny_model, images):
    x, y = images
    ref = create_attack("bim", tiny_model, eps=EPS, steps=3).run(x, y)
    out = create_attack("bim", tiny_model, eps=EPS, steps=3, compile=True).run(x, y)
    assert torch.allclose(out.x_adv, ref.x_adv, atol=1e-5)


def test_per_sample_counts(tiny_model, images):
    x, y = images
    out = create_attack("bim", tiny_model, eps=EPS, steps=4, batch_size=4).run(x, y)
    assert out.grad_calls.shape == (6,) and (out.grad_calls == 4).all()
    assert out.queries.shape == (6,) and (out.queries == 0).all()  # white-box: no gradient-free queries
