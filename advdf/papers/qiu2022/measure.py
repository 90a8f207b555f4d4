"""Measuring seed 003's protections: a configured CDMAA run over the test photos (every protected batch checked),
per-(generator, domain) distortions reduced to the paper's numbers, and the protection after an upload's JPEG
re-encoding or a resize."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from advdf.attacks.checks import check_adversarial
from advdf.attacks.disruption import Disruption, Translators


def protect(factory: Callable, translators: Translators, x: torch.Tensor, attrs: torch.Tensor, batch: int) -> dict:
    """Run the attack ``factory(model=translators)`` over ``x`` ([0, 1] photos) in batches of ``batch``; every
    protected batch is checked (budget, box, finite) before it is kept. Returns the protected photos, the (N, P)
    distortions, the seconds per photo and the backward passes."""
    return protect_with(factory(model=translators), x, attrs, batch)


def protect_universal(factory: Callable, translators: Translators, x_craft: torch.Tensor, attrs_craft: torch.Tensor,
                      x: torch.Tensor, attrs: torch.Tensor, batch: int) -> dict:
    """A universal protection (:class:`advdf.attacks.UniversalCDMAA`): crafted once on ``x_craft``, then added to
    the photos ``x`` as :func:`protect` measures them; also returns the crafting seconds and backward passes."""
    attack = factory(model=translators).fit(x_craft, attrs_craft)
    return {**protect_with(attack, x, attrs, batch), "craft_s": attack.craft_s,
            "craft_backward_calls": attack.craft_backward_calls, "craft_photos": int(len(x_craft))}


def protect_with(attack, x: torch.Tensor, attrs: torch.Tensor, batch: int) -> dict:
    """:func:`protect` with a built attack."""
    parts, dists, backward = [], [], 0
    t0 = time.perf_counter()
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], attrs[start:start + batch]
        out = attack.run(xb, yb)
        check_adversarial(out.x_adv, xb, attack.eps)
        parts.append(out.x_adv)
        dists.append(out.extras["distortion"])
        backward += attack.backward_calls
    seconds = time.perf_counter() - t0
    return {"x_adv": torch.cat(parts), "distortion": torch.cat(dists), "s_per_image": seconds / len(x),
            "backward_calls": backward, "eps": attack.eps, "objective": attack.objective}


def pair_metrics(distortion: torch.Tensor, pairs: list[tuple[str, str]], objective: Disruption) -> dict:
    """Per pair and per generator: average distortion L and attack_rate (the share of photos disrupted)."""
    hit = objective.disrupted(distortion).float()
    out: dict = {"pairs": {}, "models": {}}
    for i, (g, d) in enumerate(pairs):
        out["pairs"][f"{g}/{d}"] = {"avg_l": float(distortion[:, i].mean()), "rate": float(hit[:, i].mean()),
                                    "n": int(len(distortion))}
    for g in dict.fromkeys(p[0] for p in pairs):
        cols = [i for i, p in enumerate(pairs) if p[0] == g]
        out["models"][g] = {"avg_l": float(distortion[:, cols].mean()), "rate": float(hit[:, cols].mean()),
                            "n": int(hit[:, cols].numel())}
    out["mean_rate"] = float(hit.mean())
    out["min_model_rate"] = min(m["rate"] for m in out["models"].values())
    return out


def resize_round_trip(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Down to ``factor`` of the side and back (bilinear, antialiased), as a platform's thumbnail-and-upscale."""
    side = x.shape[-1]
    small = F.interpolate(x, scale_factor=factor, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)


@torch.no_grad()
def after_transform(translators: Translators, objective: Disruption, x: torch.Tensor, x_adv: torch.Tensor,
                    attrs: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], batch: int) -> torch.Tensor:
    """(N, P) distortions of the outputs on the transformed protected photos against those on the transformed
    clean photos: what the protection still changes after the transformation (its own change is not counted)."""
    parts = []
    for start in range(0, len(x), batch):
        rows = slice(start, start + batch)
        xt = transform(x[rows])
        parts.append(objective.all_pairs(translators.all_outputs(transform(x_adv[rows]), attrs[rows]),
                                         translators.all_outputs(xt, attrs[rows]), xt))
    return torch.cat(parts)
