"""Guided Backpropagation (Springenberg et al. 2015): gradients through ReLUs that pass only positive gradients.

captum overrides the backward of every ``nn.ReLU`` module; other activations (EfficientNet's SiLU) back-propagate
as plain gradients.
"""

from __future__ import annotations

from captum.attr import GuidedBackprop as CaptumGuidedBackprop

from advdf.xai.base import Attribution, register_xai


@register_xai
class GuidedBackprop(Attribution):
    name = "guided_backprop"
    cache_version = 1  # bump when this method's maps change (its cached maps are then recomputed)

    def build(self, model):
        return CaptumGuidedBackprop(model)
