"""KRA — Liao et al., "Imperceptible Adversarial Examples for Fake Image Detection", ICIP 2021 (arXiv 2106.01615).

Key Region Attack: a container that restricts any attack to the pixels a detector relies on.

MLSKRS (Alg. 1, Eqs. 3-6): for each chosen convolutional layer ``l_i`` the gradient of the detector's output with
respect to the layer's activations is summed over channels (signed, ``G_i = sum_j df(x)/dh_i^j``), min-max
normalized per sample, bilinearly upsampled to the input size and thresholded at ``t``; the key-region mask ``M``
is the union of the layers' masks, shared by the three colour channels. advdf differentiates the logit of the
class the attack moves away from: the true class (untargeted), or minus the logit of the target class (targeted;
the same map as the other class's logit for a two-logit detector). All layers' gradients come from one
forward and one backward pass.

KRA (Alg. 2): the inner attack runs on the masked pixels only; for the samples it has not fooled, the threshold
drops by ``threshold_step`` down to ``threshold_floor`` (the key region grows) and the inner attack runs again.
advdf attacks the detector through ``g(z) = model(x + M * (z - x))`` and maps the result back with
``x_adv = x + M * (z_adv - x)``, so any inner attack works unchanged and ``x_adv`` stays in [0, 1], inside the
inner attack's ball, with unmasked pixels untouched. Two choices where Alg. 2 is silent or would leave the ball:
each round restarts the inner attack from ``x`` with the larger mask (Alg. 2 adds the new masked perturbation to
the previous one, which can exceed the budget; the masks are nested, so the larger mask's search space contains
the smaller one's); and a sample still unfooled after the round at the floor keeps that round's result (Alg. 2
would repeat the floor forever). A sample the detector already gets wrong (or already assigns to the target)
is left unperturbed.

Norm, budget and determinism: those of the inner attack (L-inf for KRA-PGD, L2 for KRA-DeepFool).

The inner attack runs without its own early exit and without batch splitting. It may call the model on the
whole batch it is given, on whole-batch copies stacked with ``torch.cat`` (SIM), or on part of the batch
provided it leaves pixels outside the key region untouched (DeepFool, which forwards only the samples not yet
fooled: the rows are then matched to their samples by those untouched pixels, see ``MaskedInput.match_rows``).

Args:
    model: detector on [0, 1] input.
    attack: builds the inner attack on a model: a callable ``attack(model=..., **options)`` (Hydra: a nested
        ``_partial_: true`` attack config), a registered attack name, or ``None`` for advdf's PGD with its
        defaults (conf/attack/kra_pgd.yaml holds the settings of the reproduction). The paper wraps PGD and
        DeepFool.
    layers: names of ``nn.Conv2d`` modules of ``model`` (e.g. ``backbone.layer4.2.conv3``). ``None``: the last
        convolution to run at each output resolution, in execution order, i.e. shallow and deep layers as the
        paper prescribes (the paper names no layers). timm's ResNet-50: the stem ``conv1``, ``layer{2,3,4}.0.conv1``
        (the last 1x1 convolution before each stride-2 block) and ``layer4.2.conv3``; MesoNet: its four
        convolutions.
    threshold: initial attack threshold t (paper: 0.8).
    threshold_step: reduction step of the threshold (paper: 0.1).
    threshold_floor: lowest threshold (paper: 0.1).
    **kwargs: ``eps``, ``targeted``, ``target``, ``loss`` configure the inner attack (when given they override
        its own); ``precision``, ``channels_last``, ``compile`` apply to every model call (mask and inner
        attack); ``batch_size``, ``name`` apply to KRA. ``early_stop`` is accepted for the shared options:
        KRA always stops a sample once fooled between rounds, and the inner attack runs its full budget.

The model's convolutions see the mask pass without ``torch.compile`` (forward hooks need eager modules). A model
that applies an in-place activation to a convolution's output (MesoNet's ``ReLU(inplace=True)``) yields the
gradient with respect to the rectified map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advdf.attacks.base import PRECISIONS, Attack
from advdf.attacks.registry import create_attack, register_attack
from advdf.errors import ConfigError

INNER_OPTIONS = ("eps", "targeted", "target", "loss")  # set on the inner attack
SHARED_OPTIONS = ("precision", "channels_last", "compile")  # set on both KRA and the inner attack


class MaskedInput(nn.Module):
    """``g(z) = model(x + mask * (z - x))`` for a bound clean batch ``x`` and key-region mask (N, 1, H, W)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.x: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self._match_terms: tuple[torch.Tensor, ...] | None = None

    @contextlib.contextmanager
    def bound(self, x: torch.Tensor, mask: torch.Tensor) -> Iterator[None]:
        self.x, self.mask, self._match_terms = x, mask, None
        try:
            yield
        finally:
            self.x, self.mask, self._match_terms = None, None, None

    def compose(self, z: torch.Tensor) -> torch.Tensor:
        """The image the detector sees for the inner attack's point ``z``: only masked pixels come from ``z``."""
        if self.x is None or self.mask is None:
            raise RuntimeError("MaskedInput called outside KRA.perturb")
        x, mask = self.x, self.mask
        n = len(x)
        if len(z) > n and len(z) % n == 0:
            copies = len(z) // n  # whole-batch copies stacked with torch.cat (e.g. SIM's scale copies)
            x, mask = x.repeat(copies, 1, 1, 1), mask.repeat(copies, 1, 1, 1)
        elif len(z) != n:
            rows = self.match_rows(z.detach())
            x, mask = x[rows], mask[rows]
        return x + mask * (z - x)

    def match_rows(self, z: torch.Tensor) -> torch.Tensor:
        """The bound samples the rows of ``z`` belong to, for an inner attack that evaluates part of its batch.

        Such an attack (DeepFool forwards only the samples it has not fooled yet) leaves pixels outside the key
        region exactly at the clean image, so row ``i`` belongs to a sample ``j`` whose clean pixels outside its
        mask equal ``z_i``'s. Among matching samples the one with the most unmasked pixels wins (a full mask
        matches anything), then the one closest to ``z_i``; the choice is verified exactly.
        """
        x = self.x.detach()
        keep = (self.mask == 0).expand_as(x)
        if self._match_terms is None:  # the bound samples' side, once per round
            xs, kd = x.flatten(1).double(), keep.flatten(1).double()
            xk = xs * kd
            self._match_terms = xs, kd, xk, (xk * xk).sum(1)
        xs, kd, xk, x2_keep = self._match_terms
        zs = z.flatten(1).double()
        z2_keep = (zs * zs) @ kd.T  # (k, n): squared norm of z_i on sample j's unmasked pixels
        off = z2_keep - 2 * zs @ xk.T + x2_keep  # sum over j's unmasked pixels of (z_i - x_j)^2
        match = off <= 1e-12 * (z2_keep + x2_keep) + 1e-12  # float64 rounding; one 1/255 step is far above
        unmasked = torch.where(match, kd.sum(1), -1.0)
        best = match & (unmasked == unmasked.amax(1, keepdim=True))
        rows = torch.cdist(zs, xs).masked_fill(~best, float("inf")).argmin(1)
        moved = ((z != x[rows]) & keep[rows]).flatten(1).any(1) | ~match.any(1)
        if bool(moved.any()):
            raise ConfigError(f"KRA's inner attack evaluated {len(z)} of its {len(x)} samples with pixels outside "
                              "the key region changed; an inner attack that evaluates part of its batch must leave "
                              "them untouched (no random start), or call the model on whole batches")
        return rows

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(self.compose(z))


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The ``nn.Conv2d`` modules of ``model`` by name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def key_region(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eqs. 5-6: the union over layers of ``map > threshold``; (N, L, H, W) maps -> (N, 1, H, W) bool mask."""
    return (maps > threshold).any(1, keepdim=True)


def threshold_schedule(threshold: float, step: float, floor: float) -> list[float]:
    """``t, t - step, ...`` down to ``floor`` (inclusive): the thresholds of Alg. 2's rounds."""
    out = [float(threshold)]
    while out[-1] > floor:
        out.append(max(round(out[-1] - step, 10), floor))
    return out


def perceptibility(x_adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Seed 004's per-sample perceptibility of ``r = x_adv - x`` (images in [0, 1]).

    ``pl0``: fraction of PIXELS changed in any colour channel (``checks.perturbation_norms`` counts values).
    ``pl2``: ``||r||_2 / sqrt(C * H * W)``, the root mean square of ``r`` on the [0, 1] scale. The paper names
    PL2 "the L2 norm" without its normalization; its magnitudes (1e-3 for ~1% of pixels changed at 299 px,
    where the raw norm of any visible change is above 1) fit a per-value normalization, and the root mean
    square keeps sizes comparable across input resolutions.
    """
    delta = (x_adv - x).float()
    return {
        "pl0": (delta.abs() > 1e-8).any(1).flatten(1).float().mean(1),
        "pl2": delta.flatten(1).norm(dim=1) / delta[0].numel() ** 0.5,
    }


@register_attack
class KRA(Attack):
    deterministic = False  # the default inner attack (PGD) draws a random start; instances take the inner's

    def __init__(self, model: nn.Module, attack: Callable[..., Attack] | str | None = None,
                 layers: Sequence[str] | str | None = None, threshold: float = 0.8, threshold_step: float = 0.1,
                 threshold_floor: float = 0.1, **kwargs) -> None:
        if not 0.0 <= threshold_floor <= threshold <= 1.0:
            raise ConfigError(f"KRA needs 0 <= threshold_floor <= threshold <= 1, got threshold={threshold}, "
                              f"threshold_floor={threshold_floor}")
        if not threshold_step > 0:
            raise ConfigError(f"KRA threshold_step must be positive, got {threshold_step}")
        inner_kwargs = {k: kwargs.pop(k) for k in INNER_OPTIONS if k in kwargs}
        inner_kwargs.update({k: kwargs[k] for k in SHARED_OPTIONS if k in kwargs})
        self.region = MaskedInput(model)
        inner = _builder(attack)(model=self.region, **inner_kwargs, early_stop=False)
        if not isinstance(inner, Attack) or inner.model is not self.region:
            raise ConfigError(f"KRA attack must build an advdf Attack on the model it is given, got {inner!r}")
        inner.batch_size = None  # the wrapper's bound batch is the whole call; KRA's batch_size splits
        self.inner = inner
        # The inner attack's norm, budget and determinism are KRA's (set before the base validates eps).
        self.norm = inner.norm
        self.eps_optional = inner.eps is None
        self.deterministic = inner.deterministic
        super().__init__(model, eps=inner.eps, targeted=inner.targeted, target=inner.target, loss=inner.loss_name,
                         **kwargs)
        self._convs = conv_layers(model)
        if isinstance(layers, str):
            layers = [layers]
        self.layers = None if layers is None else [str(n) for n in layers]
        if self.layers is not None:
            if not self.layers:
                raise ConfigError("KRA layers is empty; name convolutions or use null for the automatic choice")
            bad = [n for n in self.layers if n not in self._convs]
            if bad:
                raise ConfigError(f"KRA layers {bad} are not nn.Conv2d modules of the model; some are: "
                                  f"{list(self._convs)[:3]} ... {list(self._convs)[-2:]}")
        elif not self._convs:
            raise ConfigError("KRA needs a model with nn.Conv2d layers for its key-region maps")
        self.thresholds = threshold_schedule(threshold, threshold_step, threshold_floor)
        self._auto_layers: dict[tuple[int, int], list[str]] = {}  # input (H, W) -> chosen layers
        self.layers_used: list[str] = []
        self.success_threshold: torch.Tensor | None = None  # per sample of the last batch; NaN: not fooled

    def __repr__(self) -> str:
        return f"KRA({self.inner!r}, thresholds={self.thresholds[0]}..{self.thresholds[-1]})"

    # --- MLSKRS -------------------------------------------------------------------------------------------
    def layer_maps(self, x: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alg. 1 before thresholding: (N, L, H, W) normalized, upsampled maps of the L layers, and the logits of x.

        One forward pass (hooks keep every watched convolution's output) and one backward pass
        (``torch.autograd.grad`` with respect to all chosen outputs at once).
        """
        size = (x.shape[-2], x.shape[-1])
        chosen = self.layers or self._auto_layers.get(size)
        watched = chosen or list(self._convs)
        outputs: dict[str, list[torch.Tensor]] = {}

        def keep(name: str) -> Callable:
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                outputs.setdefault(name, []).append(output)
            return hook

        handles = [self._convs[n].register_forward_hook(keep(n)) for n in watched]
        dtype = PRECISIONS[self.precision]
        try:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)  # every activation joins the graph, frozen weights or not
                if self.channels_last:
                    xg = xg.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    logits = self.model(xg).float()
        finally:
            for h in handles:
                h.remove()
        if chosen is None:
            chosen = self._auto_layers[size] = _last_per_resolution(outputs)
        twice = [n for n in chosen if len(outputs.get(n, ())) != 1]
        if twice:
            raise ConfigError(f"KRA layers {twice} ran {[len(outputs.get(n, ())) for n in twice]} times in one "
                              "forward pass; choose convolutions that run exactly once")
        self.layers_used = list(chosen)
        own = logits.gather(1, goal[:, None]).sum()
        objective = -own if self.targeted else own
        grads = torch.autograd.grad(objective, [outputs[n][0] for n in chosen], allow_unused=True)
        maps = []
        for g, n in zip(grads, chosen, strict=True):
            if g is None:  # the layer does not reach the output: an empty map
                g = torch.zeros_like(outputs[n][0])
            heat = g.float().sum(1, keepdim=True)  # Eq. 3: signed sum over channels
            lo = heat.amin((2, 3), keepdim=True)
            hi = heat.amax((2, 3), keepdim=True)
            heat = (heat - lo) / (hi - lo).clamp_min(torch.finfo(heat.dtype).tiny)  # Eq. 4; a flat map -> 0
            maps.append(F.interpolate(heat, size=size, mode="bilinear", align_corners=False))
        return torch.cat(maps, 1).detach(), logits.detach()

    # --- KRA ----------------------------------------------------------------------------------------------
    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        maps, clean_logits = self.layer_maps(x, y)
        self._clean_logits = clean_logits
        n = len(x)
        calls = torch.ones(n, dtype=torch.long, device=x.device)  # the mask's forward+backward
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        x_adv, logits = x.clone(), clean_logits.clone()
        threshold = torch.full((n,), float("nan"))
        todo = torch.nonzero(~self.succeeded(clean_logits, y)).squeeze(1)
        for t in self.thresholds:
            if len(todo) == 0:
                break
            xs, ys = x[todo], y[todo]
            mask = key_region(maps[todo], t).to(x.dtype)
            with self.region.bound(xs, mask):
                out = self.inner.run(xs, ys)
            x_adv[todo] = self.region_image(xs, mask, out.x_adv)
            logits[todo] = out.logits.to(logits.dtype)  # the logits of g(z_adv), i.e. of x_adv
            calls[todo] += out.grad_calls.to(x.device)
            queries[todo] += out.queries.to(x.device)
            fooled = out.success.to(x.device)
            threshold[todo[fooled].cpu()] = t
            todo = todo[~fooled]
        self.success_threshold = threshold
        if self.inner.black_box:
            self._queries = queries
        return x_adv, logits, calls

    @staticmethod
    def region_image(x: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``x + mask * (z - x)``: the same arithmetic as :meth:`MaskedInput.compose`, so logits carry over."""
        return x + mask * (z - x)


def _builder(attack: Callable[..., Attack] | str | None) -> Callable[..., Attack]:
    if attack is None:
        from advdf.attacks.pgd import PGD

        return PGD
    if isinstance(attack, str):
        name = attack
        return lambda model, **kwargs: create_attack(name, model, **kwargs)
    if not callable(attack):
        raise ConfigError(f"KRA attack must be an attack name or a partial attack config, got {attack!r}")
    return attack


def _last_per_resolution(outputs: dict[str, list[torch.Tensor]]) -> list[str]:
    """The last convolution to run at each output resolution, in the order the resolutions first appear."""
    last: dict[tuple[int, int], str] = {}
    for name, outs in outputs.items():  # hooks fired in execution order; dicts keep first-insertion order
        for out in outs:
            last[(out.shape[-2], out.shape[-1])] = name
    return list(last.values())
