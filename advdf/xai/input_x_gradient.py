"""Input x Gradient (Shrikumar et al. 2016): the gradient of the target logit times the input, elementwise."""

from __future__ import annotations

from captum.attr import InputXGradient as CaptumInputXGradient

from advdf.xai.base import Attribution, register_xai


@register_xai
class InputXGradient(Attribution):
    name = "input_x_gradient"
    cache_version = 1  # bump when this method's maps change (its cached maps are then recomputed)

    def build(self, model):
        return CaptumInputXGradient(model)
