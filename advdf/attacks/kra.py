"""KRA — Liao et al., "Imperceptible Adversarial Examples for Fake Image Detection", ICIP 2021 (arXiv 2106.01615).

Key Region Attack: a container that restricts any attack to the pixels a detector relies on.

MLSKRS (Alg. 1, Eqs. 3-6): for each chosen convolutional layer ``l_i`` the gradient of the detector's output with
respect to the layer's activations is summed over channels (signed, ``G_i = sum_j df(x)/dh_i^j``), min-max
normalized per sample, bilinearly upsampled to the input size and thresholded at ``t``; the key-region mask ``M``
is the union of the layers' masks, shared by the three colour channels. advdf differentiates the logit of the
class the attack moves away from: the true class (untargeted), or minus the logit of the target class (targeted;
the same map as the other class's logit for a two-logit detector). All layers' gradients come from one
forward and one backward pass.

Eq. 6's operator is lost in the seed's text extraction; advdf reads it as the union (Fig. 2: the layers' masks are
"combined" into M; a mask is then never empty, as the max cell of every map exceeds any t < 1). The text's claim
that MLSKRS keeps fewer pixels than the last layer's heatmap alone can then hold only through Alg. 2 (the shallow
layers' key pixels letting the attack succeed at a higher threshold, where the deep region is still small); it
would hold outright for an intersection, but that reading (nearly) empties the mask at t >= 0.7 on the smoke
frames, and KRA-PGD then succeeds only at t <= 0.4 (benchmarks/kra_pl0.py measures both).

Key-region size and input side. At t = 0.8 the mask is dominated by the deepest chosen layer: upsampled, a high
cell of an s x s map spreads over about (input side / s)^2 pixels, and a cell at a corner fills its outer quarter
with exactly its value. Seed 004's own PL0 (0.9 % of 224^2 pixels, ResNet-50) is 0.44 of one cell of ResNet-50's
7 x 7 deepest map. At advdf's smoke side of 64 px that map is 2 x 2, so its mask alone covers at least 1/16 of
the image and 24 % on the trained smoke ResNet-50 (KRA-PGD PL0 27 %; its 4 x 4 map at 128 px: 14 %, PL0 21 %):
the size comes from the input side, not from a departure from Alg. 1. The schedule adds to it: the signed sum is
mostly near zero, which min-max puts near 0.5, so the mask grows fast as t falls (64 px: 27 % at 0.8, 78 % at
0.5). ``min_map_side`` leaves the coarse maps out (a departure the caller chooses; measured by
benchmarks/kra_pl0.py).

KRA (Alg. 2): the inner attack runs on the masked pixels only; for the samples it has not fooled, the
threshold drops by ``threshold_step`` down to ``threshold_floor`` (the key region grows) and the inner attack
runs again. advdf attacks the detector through ``g(z) = model(x + M * (z - x))`` (the inner attack's objective
wrapped in :class:`KeyRegion`) and maps the result back with ``x_adv = x + M * (z_adv - x)``, so any inner
attack works unchanged and ``x_adv`` stays in [0, 1], inside the inner attack's ball, with unmasked pixels
untouched. Two choices where Alg. 2 is silent or would leave the ball: each round restarts the inner attack
from ``x`` with the larger mask (Alg. 2 adds the new masked perturbation to the previous one, which can exceed
the budget; the masks are nested, so the larger mask's search space contains the smaller one's); and a sample
still unfooled after the round at the floor keeps that round's result (Alg. 2 would repeat the floor forever).
A sample the detector already gets wrong (or already assigns to the target) is left unperturbed.

Norm, budget and determinism: those of the inner attack (L-inf for KRA-PGD, L2 for KRA-DeepFool).

The inner attack runs without its own early exit and without batch splitting. Each sample's clean image and
mask travel in the inner attack's context, which it indexes like its points, so it may evaluate any rows: the
whole batch, stacked copies (SIM, NES), or the samples not fooled yet (DeepFool, Square).

Args:
    model: detector on [0, 1] input.
    attack: builds the inner attack on a model: a callable ``attack(model=..., **options)`` (Hydra: a nested
        ``_partial_: true`` attack config), a registered attack name, or ``None`` for advdf's PGD with its
        defaults (conf/attack/kra_pgd.yaml holds the settings of the reproduction). The paper wraps PGD and
        DeepFool. It is built on ``model`` with a :class:`~advdf.attacks.objectives.Classification` objective
        (the maps differentiate a class logit), which KRA then wraps in :class:`KeyRegion`.
    layers: names of ``nn.Conv2d`` modules of ``model`` (e.g. ``backbone.layer4.2.conv3``). ``None``: the last
        convolution to run at each output resolution, in execution order, i.e. shallow and deep layers as the
        paper prescribes (the paper names no layers). timm's ResNet-50: the stem ``conv1``, ``layer{2,3,4}.0.conv1``
        (the last 1x1 convolution before each stride-2 block) and ``layer4.2.conv3``; MesoNet: its four
        convolutions.
    min_map_side: with ``layers=None`` only: leave out the resolutions whose map has a shorter side below this
        many cells (``None``: keep every resolution, the paper's shallow-to-deep choice). A deep map of very
        few cells (ResNet-50's 2 x 2 at 64 px input) has, after upsampling, one high cell covering a quarter
        of the image, so its mask alone is ~24 % of the pixels at ``t = 0.8``; at the paper's 224 px the same
        layer is 7 x 7 and a cell is 2 % of the image. A small-input run can set 8 to keep the shallow layers
        and the maps of at least 8 x 8 (ResNet-50 at 64 px: 32, 16 and 8; MesoNet's maps are all >= 8 there);
        a departure from the paper, which names no layers but asks for deep ones: at 224 px it would drop
        ResNet-50's 7 x 7 map too.
    threshold: initial attack threshold t (paper: 0.8).
    threshold_step: reduction step of the threshold (paper: 0.1).
    threshold_floor: lowest threshold (paper: 0.1).
    **kwargs: ``eps``, ``targeted``, ``target``, ``loss``, ``objective`` configure the inner attack (when
        given they override its own); ``precision``, ``channels_last``, ``compile`` apply to every model call
        (mask and inner attack); ``batch_size``, ``name`` apply to KRA. ``early_stop`` is accepted for the
        shared options: KRA always stops a sample once fooled between rounds, and the inner attack runs its
        full budget.

The model's convolutions see the mask pass without ``torch.compile`` (forward hooks need eager modules). A model
that applies an in-place activation to a convolution's output (MesoNet's ``ReLU(inplace=True)``) yields the
gradient with respect to the rectified map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advdf.attacks.base import PRECISIONS, Attack, Perturbed
from advdf.attacks.objectives import Classification, Context, Objective, Output
from advdf.attacks.registry import create_attack, register_attack
from advdf.errors import ConfigError

INNER_OPTIONS = ("eps", "targeted", "target", "loss", "objective")  # set on the inner attack
SHARED_OPTIONS = ("precision", "channels_last", "compile")  # set on both KRA and the inner attack


def region_image(x: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``x + mask * (z - x)``: the image seen for a point ``z``; only masked pixels come from ``z``."""
    return x + mask * (z - x)


class KeyRegion(Objective):
    """``inner`` evaluated on the key region: the model sees ``x + mask * (z - x)`` for the point ``z``.

    The clean image and the key-region mask (N, 1, H, W) of each sample travel in the context (fields
    :attr:`X` and :attr:`MASK`, given by :meth:`KRA.perturb`), so every row an inner attack evaluates (a
    sub-batch, stacked copies) is composed with its own sample's image and mask. Score, success and report are
    ``inner``'s.
    """

    X = "kra_x"
    MASK = "kra_mask"

    def __init__(self, inner: Objective) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"KeyRegion({self.inner!r})"

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        return self.inner.bind(x, y)

    def output(self, model_call: Callable[[torch.Tensor], Output], z: torch.Tensor, ctx: Context) -> Output:
        if self.X not in ctx or self.MASK not in ctx:
            raise ConfigError("a KeyRegion objective needs each sample's clean image and mask in its "
                              "context; run the inner attack through KRA")
        return self.inner.output(model_call, region_image(ctx[self.X], ctx[self.MASK], z), ctx)

    def score(self, output: Output, ctx: Context) -> torch.Tensor:
        return self.inner.score(output, ctx)

    def success(self, output: Output, ctx: Context) -> torch.Tensor:
        return self.inner.success(output, ctx)

    def report(self, output: Output) -> dict[str, torch.Tensor]:
        return self.inner.report(output)


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
                 threshold_floor: float = 0.1, min_map_side: int | None = None, **kwargs) -> None:
        if not 0.0 <= threshold_floor <= threshold <= 1.0:
            raise ConfigError(f"KRA needs 0 <= threshold_floor <= threshold <= 1, got threshold={threshold}, "
                              f"threshold_floor={threshold_floor}")
        if not threshold_step > 0:
            raise ConfigError(f"KRA threshold_step must be positive, got {threshold_step}")
        inner_kwargs = {k: kwargs.pop(k) for k in INNER_OPTIONS if k in kwargs}
        inner_kwargs.update({k: kwargs[k] for k in SHARED_OPTIONS if k in kwargs})
        inner = _builder(attack)(model=model, **inner_kwargs, early_stop=False)
        if not isinstance(inner, Attack) or inner.model is not model:
            raise ConfigError(f"KRA attack must build an advdf Attack on the model it is given, got {inner!r}")
        objective = inner.objective
        if not isinstance(objective, Classification):
            raise ConfigError("KRA's key-region maps differentiate a class logit: it needs a Classification "
                              f"objective, got {objective!r}")
        inner.objective = KeyRegion(objective)  # the inner attack sees the detector through the key region
        inner.batch_size = None  # KRA's batch_size splits
        self.inner = inner
        # The inner attack's norm, budget and determinism are KRA's (set before the base validates eps).
        self.norm = inner.norm
        self.eps_optional = inner.eps is None
        self.deterministic = inner.deterministic
        super().__init__(model, eps=inner.eps, objective=objective, **kwargs)
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
        if min_map_side is not None:
            if isinstance(min_map_side, bool) or not isinstance(min_map_side, int) or min_map_side < 1:
                raise ConfigError(f"KRA min_map_side must be a positive integer or null, got {min_map_side!r}")
            if self.layers is not None:
                raise ConfigError("KRA min_map_side filters the automatic layer choice; it cannot be combined "
                                  f"with explicit layers {self.layers}")
        self.min_map_side = min_map_side
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
            chosen = self._auto_layers[size] = _last_per_resolution(outputs, self.min_map_side)
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
    def perturb(self, x: torch.Tensor, ctx: Context) -> Perturbed:
        goal = ctx["goal"]
        maps, clean_logits = self.layer_maps(x, goal)
        n = len(x)
        calls = torch.ones(n, dtype=torch.long, device=x.device)  # the mask's forward+backward
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        x_adv, logits = x.clone(), clean_logits.clone()
        threshold = torch.full((n,), float("nan"))
        todo = torch.nonzero(~self.objective.success(clean_logits, ctx)).squeeze(1)
        for t in self.thresholds:
            if len(todo) == 0:
                break
            xs = x[todo]
            mask = key_region(maps[todo], t).to(x.dtype)
            out = self.inner.run(xs, goal[todo], context=Context({KeyRegion.X: xs, KeyRegion.MASK: mask}))
            x_adv[todo] = self.region_image(xs, mask, out.x_adv)
            logits[todo] = out.logits.to(logits.dtype)  # the logits of the composed image, i.e. of x_adv
            calls[todo] += out.grad_calls.to(x.device)
            queries[todo] += out.queries.to(x.device)
            fooled = out.success.to(x.device)
            threshold[todo[fooled].cpu()] = t
            todo = todo[~fooled]
        self.success_threshold = threshold
        return Perturbed(x_adv, logits, calls, queries=queries, clean=clean_logits)

    @staticmethod
    def region_image(x: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``x + mask * (z - x)``: the same arithmetic as :class:`KeyRegion`, so logits carry over."""
        return region_image(x, mask, z)


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


def _last_per_resolution(outputs: dict[str, list[torch.Tensor]], min_side: int | None = None) -> list[str]:
    """The last convolution to run at each output resolution, in the order the resolutions first appear;
    with ``min_side``, only the resolutions whose shorter side has at least ``min_side`` cells."""
    last: dict[tuple[int, int], str] = {}
    for name, outs in outputs.items():  # hooks fired in execution order; dicts keep first-insertion order
        for out in outs:
            last[(out.shape[-2], out.shape[-1])] = name
    kept = [name for hw, name in last.items() if min_side is None or min(hw) >= min_side]
    if not kept:
        raise ConfigError(f"KRA min_map_side={min_side}: no convolution of the model has a map that large at "
                          f"this input (resolutions: {list(last)})")
    return kept
