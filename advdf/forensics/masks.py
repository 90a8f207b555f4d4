"""Seed 002's adversarial segmentation targets: one random triangle per image (random place and orientation).

A sample's triangle depends only on ``(seed, index)`` — its row in the data set — through a counter-based hash, so
the same image gets the same target mask in every batch split, job and rerun, with no per-sample loop.
"""

from __future__ import annotations

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hashed_uniform(seed: int, index: np.ndarray, draws: int) -> np.ndarray:
    """(len(index), draws) floats in [0, 1), a function of (seed, index, draw) only."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(1, seed, np.uint64))
        counter = index.astype(np.uint64)[:, None] * np.uint64(draws) + np.arange(draws, dtype=np.uint64)[None]
        bits = _splitmix64(counter ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def random_triangle_masks(index: torch.Tensor | np.ndarray, size: int, seed: int = 0,
                          radius: tuple[float, float] = (0.15, 0.35)) -> torch.Tensor:
    """{0, 1} float masks (N, 1, size, size): per sample a triangle with vertices at three random radii in
    ``radius`` (fractions of the side) around a centre in the middle half of the image, at a random rotation."""
    idx = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64).reshape(-1)
    u = torch.from_numpy(hashed_uniform(seed, idx, 6)).float()  # centre x, centre y, rotation, 3 radii
    centre = (0.25 + 0.5 * u[:, :2]) * size                      # (N, 2)
    angles = u[:, 2:3] * 2 * torch.pi + torch.arange(3) * (2 * torch.pi / 3)
    r = (radius[0] + (radius[1] - radius[0]) * u[:, 3:]) * size   # (N, 3)
    vx = centre[:, :1] + r * torch.cos(angles)
    vy = centre[:, 1:] + r * torch.sin(angles)
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    py, px = grid.view(1, -1, 1), grid.view(1, 1, -1)
    sides = []
    for a, b in ((0, 1), (1, 2), (2, 0)):  # the sign of each edge's cross product, over the whole batch at once
        ax, ay, bx, by = (t[:, k].view(-1, 1, 1) for t, k in ((vx, a), (vy, a), (vx, b), (vy, b)))
        sides.append((bx - ax) * (py - ay) - (by - ay) * (px - ax))
    s = torch.stack(sides)
    inside = (s >= 0).all(0) | (s <= 0).all(0)
    return inside.float().unsqueeze(1)
