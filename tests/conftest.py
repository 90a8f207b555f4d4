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
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return x, y
