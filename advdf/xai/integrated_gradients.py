"""Integrated Gradients (Sundararajan et al. 2017): the input minus a baseline times the mean gradient along the
straight path from the baseline to the input (Riemann/Gauss-Legendre sum of ``n_steps`` points)."""

from __future__ import annotations

from captum.attr import IntegratedGradients as CaptumIntegratedGradients

from advdf.errors import ConfigError
from advdf.xai.base import Attribution, register_xai


@register_xai
class IntegratedGradients(Attribution):
    """Args:
        n_steps: points on the path (captum's default 50).
        internal_batch_size: path points evaluated per forward (captum's internal batching; ``None``: all
            ``n_steps x N`` at once).
        baseline: constant image the path starts from (0 = black).
        method: captum's integral approximation (``gausslegendre``, ``riemann_trapezoid``, ...).
    """

    name = "integrated_gradients"
    cache_version = 1  # bump when this method's maps change (its cached maps are then recomputed)

    def __init__(self, n_steps: int = 50, internal_batch_size: int | None = None, baseline: float = 0.0,
                 method: str = "gausslegendre", percentile: float = 99.0, abs: bool = False,
                 name: str | None = None) -> None:
        super().__init__(percentile, abs, name)
        if n_steps < 1 or (internal_batch_size is not None and internal_batch_size < 1):
            raise ConfigError(f"xai.n_steps and xai.internal_batch_size must be >= 1, got {n_steps}, "
                              f"{internal_batch_size}")
        self.n_steps, self.internal_batch_size = int(n_steps), internal_batch_size
        self.baseline, self.method = float(baseline), method

    def build(self, model):
        return CaptumIntegratedGradients(model)

    def attribute_raw(self, method, x, target):
        return method.attribute(x, baselines=self.baseline, target=target, n_steps=self.n_steps,
                                method=self.method, internal_batch_size=self.internal_batch_size)

    def config(self) -> dict:
        # internal_batch_size only changes how the path is batched, not the map: it stays out of cache keys
        return {**super().config(), "n_steps": self.n_steps, "baseline": self.baseline, "method": self.method}
