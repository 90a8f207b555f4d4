"""Adaptive attacks see through defenses: surrogates, the attack view with EOT, and trained-denoiser defenses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import nn

from advdf.attacks import PGD
from advdf.defenses import (
    JPEG,
    AttackView,
    Defense,
    LearnedDenoiser,
    MedianSmoothing,
    attack_target,
    create_defense,
)
from advdf.denoisers import DUNet
from advdf.errors import CheckpointError, ConfigError
from advdf.utils.entry import CONF_DIR

DEFENSE_CONFS = sorted((CONF_DIR / "defense").glob("*.yaml"))


def _tiny_dunet(seed: int = 0) -> DUNet:
    """A tiny DUNET with a random (not the zero-initialized, identity) residual layer, as after training."""
    torch.manual_seed(seed)
    net = DUNet((4, 4, 4, 4, 4), (1, 1, 1, 1, 1), (4, 4, 4, 4), (1, 1, 1, 1))
    torch.nn.init.normal_(net.to_residual.weight, std=0.1)
    return net


def _smooth_images(n: int = 2, side: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, side // 4, side // 4, generator=g)
    return F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


class CountingDetector(nn.Module):
    """Flatten + Linear to two logits, counting forward calls."""

    def __init__(self, side: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * side * side, 2))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


class NoisyDefense(Defense):
    """A random defense: ``through`` adds fresh Gaussian noise and records what it returned."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.draws: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def through(self, x: torch.Tensor) -> torch.Tensor:
        out = x + 0.1 * torch.randn_like(x)
        self.draws.append(out.detach())
        return out


# --- JPEG surrogates -------------------------------------------------------------------------------------------
def test_bpda_jpeg_forward_is_the_real_codec_and_backward_is_identity():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    jpeg = JPEG(quality=70, surrogate="bpda", adaptive=True)
    y = jpeg.through(x)
    assert torch.equal(y.detach(), jpeg(x.detach()))
    assert not torch.equal(y.detach(), x.detach())  # the codec really changed the image
    w = torch.randn_like(x)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.equal(grad, w)


def test_kornia_surrogate_is_close_to_the_real_codec_and_differentiable():
    x = _smooth_images(side=32).requires_grad_(True)
    jpeg = JPEG(quality=80, surrogate="kornia", adaptive=True)
    y = jpeg.through(x)
    assert y.shape == x.shape
    assert (y.detach() - jpeg(x.detach())).abs().mean() < 0.03
    w = torch.randn_like(x)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not torch.allclose(grad, w)  # a real surrogate gradient, not BPDA's identity


def test_unknown_surrogate_and_bad_eot_raise():
    with pytest.raises(ConfigError):
        JPEG(surrogate="straight-through")
    with pytest.raises(ConfigError):
        MedianSmoothing(eot_samples=0)


# --- attack target and view ------------------------------------------------------------------------------------
def test_attack_target_is_the_bare_detector_unless_adaptive():
    det = CountingDetector()
    assert attack_target(det) is det
    assert attack_target(det, None) is det
    assert attack_target(det, MedianSmoothing()) is det
    assert attack_target(det, JPEG(quality=70)) is det
    view = attack_target(det, MedianSmoothing(adaptive=True))
    assert isinstance(view, AttackView) and view.detector is det


@pytest.mark.parametrize("make_defense", [lambda: MedianSmoothing(adaptive=True),
                                          lambda: LearnedDenoiser(_tiny_dunet(), adaptive=True)],
                         ids=["median", "denoiser"])
def test_attack_view_passes_gradients_to_the_input(make_defense, tiny_model):
    detector = tiny_model.eval()
    defense = make_defense()
    view = attack_target(detector, defense)
    assert isinstance(view, AttackView)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = view(x)
    # differentiable defenses: the view is exactly the defended detector
    assert torch.allclose(logits, detector(defense(x)))
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, torch.tensor([0, 1])), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not detector.training and all(not m.training for m in detector.modules())


def test_gradient_step_through_adaptive_bpda_jpeg_changes_the_input():
    det = CountingDetector().eval()
    jpeg = JPEG(quality=70, adaptive=True)
    x = torch.rand(2, 3, 16, 16)
    y = torch.tensor([0, 1])
    # the real JPEG blocks gradients: a non-adaptive attacker through the defense gets none
    xg = x.clone().requires_grad_(True)
    (blocked,) = torch.autograd.grad(F.cross_entropy(det(jpeg(xg)), y), xg, allow_unused=True)
    assert blocked is None
    # BPDA: the gradient is the detector's gradient at jpeg(x)
    view = attack_target(det, jpeg)
    (grad,) = torch.autograd.grad(F.cross_entropy(view(xg), y), xg)
    z = jpeg(x).requires_grad_(True)
    (at_jpeg,) = torch.autograd.grad(F.cross_entropy(det(z), y), z)
    assert torch.allclose(grad, at_jpeg)
    x_adv = (x + 4 / 255 * grad.sign()).clamp(0, 1)
    assert (x_adv - x).abs().max() > 0


def test_pgd_runs_against_an_adaptive_view_and_leaves_modes_alone():
    det = CountingDetector().eval()
    view = attack_target(det, JPEG(quality=70, adaptive=True))
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    out = PGD(view, eps=8 / 255, alpha=2 / 255, steps=3).run(x, y)
    assert (out.x_adv - x).abs().max() > 0
    assert (out.x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert not det.training


def test_eot_averages_k_draws_and_k1_is_one_call():
    det = CountingDetector().eval()
    noisy = NoisyDefense(adaptive=True, eot_samples=4)
    view = attack_target(det, noisy)
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    torch.manual_seed(1)
    out = view(x)
    assert len(noisy.draws) == 4 and det.calls == 4
    expected = torch.stack([det.net(d) for d in noisy.draws]).mean(0)
    assert torch.allclose(out, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0

    single = NoisyDefense(adaptive=True)
    det.calls = 0
    out1 = AttackView(det, single)(x)
    assert len(single.draws) == 1 and det.calls == 1
    assert torch.allclose(out1, det.net(single.draws[0]))


# --- trained denoisers -----------------------------------------------------------------------------------------
def test_learned_denoiser_loads_its_checkpoint(tmp_path: Path):
    trained = _tiny_dunet(seed=0).eval()
    path = tmp_path / "hgd" / "denoiser.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    x = torch.rand(2, 3, 32, 32)
    fresh = _tiny_dunet(seed=1)
    with torch.no_grad():
        assert not torch.allclose(fresh.eval()(x), trained(x))
        defense = LearnedDenoiser(fresh, name="hgd", checkpoint=str(path))
        assert torch.equal(defense(x), trained(x))


def test_missing_or_corrupt_checkpoint_says_what_to_do(tmp_path: Path):
    missing = tmp_path / "hgd" / "denoiser.safetensors"
    with pytest.raises(CheckpointError, match="train.py task=denoiser defense=hgd") as err:
        LearnedDenoiser(_tiny_dunet(), name="hgd", checkpoint=str(missing))
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        LearnedDenoiser(_tiny_dunet(), name="hgd", checkpoint=str(corrupt))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"weight": torch.zeros(2)}, str(wrong))
    with pytest.raises(CheckpointError, match="wrong.safetensors"):
        LearnedDenoiser(_tiny_dunet(), name="hgd", checkpoint=str(wrong))


def test_learned_denoiser_is_frozen_and_stays_in_eval():
    defense = LearnedDenoiser(_tiny_dunet(), training=OmegaConf.create({"guidance": "logits", "gaussian_std": 0.0}))
    assert all(not p.requires_grad for p in defense.parameters())
    assert defense.recipe == {"guidance": "logits", "gaussian_std": 0.0} and type(defense.recipe) is dict
    stats = {k: v.clone() for k, v in defense.state_dict().items()}
    defense.train()
    assert not defense.training and all(not m.training for m in defense.modules())
    defense(torch.rand(4, 3, 32, 32))  # batch-norm running statistics must not move
    assert all(torch.equal(v, defense.state_dict()[k]) for k, v in stats.items())


def test_learned_denoiser_is_registered():
    assert isinstance(create_defense("denoiser", denoiser=_tiny_dunet()), LearnedDenoiser)


# --- configs ---------------------------------------------------------------------------------------------------
def _is_learned(conf) -> bool:
    return conf._target_ == "advdf.defenses.LearnedDenoiser"


@pytest.mark.parametrize("path", [p for p in DEFENSE_CONFS if not _is_learned(OmegaConf.load(p))], ids=lambda p: p.stem)
def test_transform_defense_configs_build_non_adaptive_defenses(path: Path):
    conf = OmegaConf.load(path)
    defense = instantiate(conf)
    assert isinstance(defense, Defense)
    assert conf.adaptive is False and defense.adaptive is False and defense.eot_samples == 1


@pytest.mark.parametrize("path", [p for p in DEFENSE_CONFS if _is_learned(OmegaConf.load(p))], ids=lambda p: p.stem)
def test_learned_defense_configs_name_their_checkpoint(path: Path):
    conf = OmegaConf.load(path)
    assert conf.name == path.stem and conf.adaptive is False and conf.eot_samples == 1
    checkpoint = OmegaConf.to_container(conf, resolve=False)["checkpoint"]
    assert checkpoint == "${advdf.denoiser:${checkpoint},${.name}}"  # the one run of this name in front of the detector
    assert {"guidance", "gaussian_std"} <= set(conf.training)


@pytest.mark.parametrize("name", ["hgd", "dae"])
def test_learned_defense_configs_build_without_a_checkpoint(name: str):
    conf = OmegaConf.load(CONF_DIR / "defense" / f"{name}.yaml")
    conf.checkpoint = None
    defense = instantiate(conf)
    assert isinstance(defense, LearnedDenoiser) and defense.name == name
    assert defense.recipe == OmegaConf.to_container(conf.training)
    with torch.no_grad():
        assert defense(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
