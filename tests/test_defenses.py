"""Defenses keep shape and range and do what their names say."""

from __future__ import annotations

import pytest
import torch

from advdf.defenses import Defended, create_defense, list_defenses
from advdf.denoisers import DUNet
from advdf.errors import ConfigError


def _build(name: str):
    """Every registered defense with its defaults; a learned denoiser wraps a tiny untrained DUNet."""
    if name == "denoiser":
        torch.manual_seed(0)
        return create_defense(name, denoiser=DUNet((4, 4, 4, 4, 4), (1, 1, 1, 1, 1), (4, 4, 4, 4), (1, 1, 1, 1)))
    return create_defense(name)


@pytest.mark.parametrize("name", list_defenses())
def test_shape_and_range(name):
    x = torch.rand(3, 3, 32, 32)
    y = _build(name)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1


def test_none_is_identity():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(create_defense("none")(x), x)


def test_median_removes_salt_noise():
    x = torch.full((1, 3, 16, 16), 0.5)
    noisy = x.clone()
    noisy[..., 5, 5] = 1.0
    assert torch.allclose(create_defense("median")(noisy), x)


@pytest.mark.parametrize("name", ["gaussian", "average"])
def test_smoothing_keeps_constants_and_lowers_variance(name):
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(create_defense(name)(flat), flat, atol=1e-6)
    x = torch.rand(1, 3, 16, 16)
    assert create_defense(name)(x).var() < x.var()


def test_jpeg_is_a_real_lossy_codec():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    err = {q: (create_defense("jpeg", quality=q)(x) - x).abs().mean().item() for q in (30, 70, 95)}
    assert err[30] > err[70] > err[95] > 0
    # values are decoded 8-bit pixels
    y = create_defense("jpeg", quality=90)(x)
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)


@pytest.mark.parametrize("kwargs", [{"name": "median", "kernel_size": 4}, {"name": "jpeg", "quality": 0},
                                    {"name": "gaussian", "sigma": -1.0}, {"name": "blur"},
                                    {"name": "jpeg", "surrogate": "diff"}, {"name": "median", "eot_samples": 0}])
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        create_defense(**kwargs)


def test_defended_model_applies_defense_first(tiny_model):
    x = torch.rand(2, 3, 32, 32)
    defended = Defended(tiny_model.eval(), create_defense("median"))
    assert torch.allclose(defended(x), tiny_model(create_defense("median")(x)))
