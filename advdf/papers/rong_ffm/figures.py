"""Seed 002's Figures 1-3 on two fake frames of the base data set: IAP-cls, IAP-seg, and the UAPs."""

from __future__ import annotations

import torch

from advdf.attacks.objectives import Context
from advdf.forensics import random_triangle_masks
from advdf.papers.rong_ffm.measure import outputs
from advdf.report.plots import image_grid, min_max


def ffm_figures(out_dir, spec, nets, frames, uaps, iap_cls, iap_seg, side) -> dict[str, str]:
    """Figures 1-3 of seed 002 on two fake frames of the base data set: IAP-cls, IAP-seg, and the UAPs."""
    d = spec.base
    net = nets[d]
    fakes = [i for i, r in enumerate(frames[d].rows) if r["label"] == 1][:2]
    if not fakes:
        return {}
    items = [frames[d][i] for i in fakes]
    x = torch.stack([it["image"] for it in items])
    y = torch.tensor([it["label"] for it in items])
    m = torch.stack([it["mask"] for it in items])
    idx = torch.tensor([it["index"] for it in items])

    def as_img(t: torch.Tensor):
        return t.permute(1, 2, 0).numpy()

    x_cls = iap_cls(model=net).run(x, y).x_adv
    _, seg_cls = outputs(net, x_cls)
    rows1 = [[as_img(x[i]), as_img(x_cls[i]), min_max(as_img(x_cls[i] - x[i])), m[i, 0].numpy(),
              seg_cls[i, 0].numpy()] for i in range(len(x))]
    adv_mask = random_triangle_masks(idx, side, seed=int(spec.mask_seed))
    x_seg = iap_seg(model=net).run(x, y, Context(adv_mask=adv_mask, mask=m)).x_adv
    _, seg_seg = outputs(net, x_seg)
    rows2 = [[adv_mask[i, 0].numpy(), as_img(x_seg[i]), min_max(as_img(x_seg[i] - x[i])), seg_seg[i, 0].numpy()]
             for i in range(len(x))]
    rows3 = [[min_max(as_img(uaps[a].universal(tuple(x.shape[1:]))[c])) for c in (0, 1)] for a in spec.datasets]
    paths = {
        "figure1": image_grid(rows1, ["original", "IAP-cls", "perturbation", "true mask", "segmentation"],
                              out_dir / "figure1.png", f"IAP-cls on {d}"),
        "figure2": image_grid(rows2, ["adversarial mask", "IAP-seg", "perturbation", "segmentation"],
                              out_dir / "figure2.png", f"IAP-seg on {d}"),
        "figure3": image_grid(rows3, ["UAP: fake zone", "UAP: real zone"], out_dir / "figure3.png",
                              "UAPs (min-max scaled)", row_labels=list(spec.datasets)),
    }
    return {k: str(v) for k, v in paths.items()}
