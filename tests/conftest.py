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
