"""Saliency (Simonyan et al. 2014): the gradient of the target logit with respect to the input; absolute by
default, as captum's ``Saliency(abs=True)``."""

from __future__ import annotations

from captum.attr import Saliency as CaptumSaliency

from advdf.xai.base import Attribution, register_xai


@register_xai
class Saliency(Attribution):
    name = "saliency"
    cache_version = 1  # bump when this method's maps change (its cached maps are then recomputed)

    def __init__(self, percentile: float = 99.0, abs: bool = True, name: str | None = None) -> None:
        super().__init__(percentile, abs, name)

    def build(self, model):
        return CaptumSaliency(model)

    def attribute_raw(self, method, x, target):
        return method.attribute(x, target=target, abs=False)  # the absolute value is taken by ``abs`` afterwards
