"""Shared fixtures: tiny models and inputs (no downloads), and an isolated artifacts directory."""

from __future__ import annotations

import pytest
import torch

from advdf.models import create_detector


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_detector("tiny_cnn", input_size=32)


@pytest.fixture
def tiny_ffm() -> torch.nn.Module:
    """A 32 px ClassNSeg (seed 002's forensic autoencoder, untrained) whose batch-norm statistics are those of a few
    random batches, so its eval-mode activations are those of training mode (of order one), not vanishing."""
    from advdf.forensics import create_forensic
    from advdf.lit.batchnorm import recalibrate_batchnorm

    torch.manual_seed(0)
    model = create_forensic("classnseg", input_size=32).train()
    recalibrate_batchnorm(model, [(torch.rand(8, 3, 32, 32),) for _ in range(3)])
    return model.eval()


@pytest.fixture
def tiny_translators() -> torch.nn.Module:
    """Seed 003's targets at 32 px and width 8 (untrained): a StarGAN (5 domains) and a U-GAT-IT (one)."""
    from advdf.attacks.disruption import Translators
    from advdf.generators import create_generator

    torch.manual_seed(0)
    return Translators({"stargan": create_generator("stargan", image_size=32, conv_dim=8, repeat_num=1),
                        "ugatit": create_generator("ugatit", image_size=32, ngf=8, n_blocks=1)}).eval()


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return x, y


@pytest.fixture
def one_thread():
    """Tiny models run thousands of small forwards: intra-op threads only add synchronization there (on a busy
    2-core machine such a file takes minutes with 2 threads and seconds with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pattern_net() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained (300 Adam steps, about a second) to tell a faint +pattern from a -pattern in noise, and
    128 images it classifies right: a trained model whose robustness depends on the budget, for comparing attacks
    with their reference implementations."""
    from torch import nn

    g = torch.Generator().manual_seed(0)
    pattern = torch.sin(torch.arange(16.0))[None, None, :, None] * torch.cos(torch.arange(16.0) * 0.7)[None, None, None, :]

    def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (n,), generator=g)
        noise = torch.rand(n, 3, 16, 16, generator=g) - 0.5
        return (0.5 + 0.4 * noise + 0.08 * (2 * y - 1).view(-1, 1, 1, 1) * pattern).clamp(0, 1), y

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 2))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(300):
        x, y = data(128)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, y = data(256)
    with torch.no_grad():
        right = net(x).argmax(1) == y
    return net, x[right][:128], y[right][:128]
