"""KRA (seed 004): key-region masks, the threshold schedule, the masked inner attack, PL0/PL2, Table 1 layout."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from advdf.attacks.bim import BIM
from advdf.attacks.checks import check_adversarial, perturbation_norms
from advdf.attacks.kra import KRA, KeyRegion, key_region, perceptibility, threshold_schedule
from advdf.attacks.objectives import Context, Objective
from advdf.attacks.pgd import PGD
from advdf.attacks.registry import ATTACKS
from advdf.errors import ConfigError
from advdf.models.base import Detector
from advdf.papers.liao2021.layout import KRA_TABLE1_METRICS, kra_table1_cells, kra_table1_markdown
from advdf.utils.entry import CONF_DIR

EPS = 8 / 255


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sharp_model(tiny_model, images):
    """tiny_cnn with a 50x steeper head centred between the images' logit gaps: attacks flip some samples with a
    small key region and need larger regions for others (an untrained tiny_cnn is too flat to flip at all)."""
    x, _ = images
    head = tiny_model.backbone.head[1]
    with torch.no_grad():
        head.weight.mul_(50)
        head.bias.zero_()
        logits = tiny_model.eval()(x)
        gap = (logits[:, 1] - logits[:, 0]).sort().values[2:4].mean()
        head.bias += torch.tensor([0.5, -0.5]) * gap
    return tiny_model


def bim(**kw):
    return functools.partial(BIM, eps=kw.pop("eps", EPS), alpha=kw.pop("alpha", 2 / 255), steps=kw.pop("steps", 5),
                             **kw)


def test_threshold_schedule_matches_the_paper():
    assert threshold_schedule(0.8, 0.1, 0.1) == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert threshold_schedule(0.5, 0.2, 0.2) == pytest.approx([0.5, 0.3, 0.2])
    assert threshold_schedule(0.3, 0.1, 0.3) == [0.3]


def test_layer_maps_follow_eqs_3_4_and_the_mask_is_their_thresholded_union(tiny_model, images):
    x, y = images
    kra = KRA(tiny_model, attack=bim())
    maps, logits = kra.layer_maps(x, y)
    assert kra.layers_used == ["backbone.features.0", "backbone.features.3"]  # last conv at 32 px and at 16 px
    assert maps.shape == (6, 2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(logits, tiny_model.eval()(x), atol=1e-6)

    # Direct computation for the 16 px layer: signed channel sum of d logit_y / d activation, min-max, upsampled.
    acts = {}
    h = tiny_model.backbone.features[3].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    out = tiny_model(x)
    h.remove()
    (g,) = torch.autograd.grad(out.gather(1, y[:, None]).sum(), acts["a"])
    heat = g.sum(1, keepdim=True)
    lo, hi = heat.amin((2, 3), keepdim=True), heat.amax((2, 3), keepdim=True)
    ref = F.interpolate((heat - lo) / (hi - lo), size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(maps[:, 1:2], ref, atol=1e-5)

    sizes = []
    for t in kra.thresholds:
        mask = key_region(maps, t)
        assert mask.shape == (6, 1, 32, 32)
        assert torch.equal(mask, (maps[:, 0:1] > t) | (maps[:, 1:2] > t))
        sizes.append(mask.sum().item())
    for hi_t, lo_t in zip(kra.thresholds, kra.thresholds[1:], strict=False):
        assert not (key_region(maps, hi_t) & ~key_region(maps, lo_t)).any()  # nested: higher t, subset
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_all_layer_gradients_come_from_one_forward_and_one_backward(tiny_model, images):
    x, y = images
    counts = {"forward": 0, "backward": 0}
    tiny_model.register_forward_hook(lambda *a: counts.__setitem__("forward", counts["forward"] + 1))
    tiny_model.backbone.head[1].register_full_backward_hook(
        lambda *a: counts.__setitem__("backward", counts["backward"] + 1))
    for layers in (None, ["backbone.features.0", "backbone.features.3"]):
        counts.update(forward=0, backward=0)
        maps, _ = KRA(tiny_model, attack=bim(), layers=layers).layer_maps(x, y)
        assert maps.shape[1] == 2
        assert counts == {"forward": 1, "backward": 1}


@pytest.mark.parametrize(("eps", "rounds"), [(0.05, 3), (0.01, 8)])
def test_lower_threshold_only_for_samples_not_fooled_at_the_higher_one(sharp_model, images, eps, rounds):
    x, _ = images
    y = sharp_model.eval()(x).argmax(1)  # every sample starts correctly classified
    calls = []

    class SpyBIM(BIM):
        def perturb(self, xs, ctx):
            found = super().perturb(xs, ctx)
            calls.append({"x": xs.clone(), "mask": ctx[KeyRegion.MASK].clone(),
                          "fooled": self.objective.success(found.output, ctx)})
            return found

    kra = KRA(sharp_model, attack=functools.partial(SpyBIM, eps=eps, alpha=eps / 5, steps=5))
    out = kra.run(x, y)
    # eps 0.05: samples fooled at 0.8, 0.7 and 0.6; eps 0.01: first at 0.7, one sample never (all 8 rounds)
    assert len(calls) == rounds
    assert any(c["fooled"].any() and not c["fooled"].all() for c in calls)
    rows = [torch.cdist(c["x"].flatten(1), x.flatten(1)).argmin(1) for c in calls]  # which samples each round got
    assert torch.equal(rows[0], torch.arange(6))
    for k in range(1, len(calls)):
        assert torch.equal(rows[k], rows[k - 1][~calls[k - 1]["fooled"]])
        prev = calls[k - 1]["mask"][~calls[k - 1]["fooled"]]
        assert (calls[k]["mask"] >= prev).all()  # the key region of each remaining sample only grows
        if k == 1:
            assert calls[k]["mask"].sum() > prev.sum()
    for k, c in enumerate(calls):  # the recorded success threshold is the round's
        fooled_rows = rows[k][c["fooled"]]
        assert torch.allclose(kra.success_threshold[fooled_rows], torch.tensor(kra.thresholds[k]))
    assert torch.equal(out.success, ~kra.success_threshold.isnan())
    # one mask pass plus 5 steps per round a sample took part in
    rounds = torch.stack([torch.isin(torch.arange(6), r) for r in rows]).sum(0)
    assert torch.equal(out.grad_calls, 1 + 5 * rounds)


def test_kra_pgd_stays_in_budget_and_changes_only_masked_pixels(sharp_model, images):
    tiny_model = sharp_model
    x, y = images
    x_before = x.clone()
    tiny_model.train()
    modes = [m.training for m in tiny_model.modules()]
    kra = KRA(tiny_model, attack=functools.partial(PGD, eps=EPS, alpha=2 / 255, steps=10))
    torch.manual_seed(0)
    out = kra.run(x, y)
    assert torch.equal(x, x_before)
    assert [m.training for m in tiny_model.modules()] == modes
    check_adversarial(out.x_adv, x, EPS, "linf")
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1 and (out.x_adv - x).abs().max() <= EPS + 1e-6
    assert torch.allclose(out.logits, tiny_model.eval()(out.x_adv), atol=1e-5)
    assert kra.norm == "linf" and kra.eps == pytest.approx(EPS) and not kra.deterministic

    maps, clean_logits = kra.layer_maps(x, y)
    clean_wrong = clean_logits.argmax(1) != y
    t_used = torch.where(kra.success_threshold.isnan(), torch.tensor(kra.thresholds[-1]), kra.success_threshold)
    allowed = (maps > t_used[:, None, None, None]).any(1) & ~clean_wrong[:, None, None]
    changed = (out.x_adv != x).any(1)
    assert out.success.any() and clean_wrong.any()  # the setting has fooled and untouched samples
    assert not changed[clean_wrong].any()
    assert not (changed & ~allowed).any()
    assert (changed.flatten(1).float().mean(1)[~clean_wrong] < 0.7).all()  # the masks kept many pixels clean


def test_deterministic_inner_attack_gives_the_same_sample_alone_and_in_a_batch(tiny_model, images):
    x, y = images
    kra = KRA(tiny_model, attack=bim(eps=0.1, alpha=0.02))
    assert kra.deterministic
    batch = kra(x, y)
    alone = kra(x[2:3], y[2:3])
    assert torch.allclose(batch[2:3], alone, atol=1e-6)
    chunked = KRA(tiny_model, attack=bim(eps=0.1, alpha=0.02), batch_size=4)(x, y)
    assert torch.allclose(batch, chunked, atol=1e-6)


def test_targeted_kra_reaches_the_target(tiny_model, images):
    x, y = images
    kra = KRA(tiny_model, attack=bim(eps=0.5, alpha=0.05, steps=20), targeted=True, target=0, loss="margin")
    out = kra.run(x, y)
    assert kra.targeted and kra.inner.targeted
    assert (out.logits.argmax(1) == 0).all() and out.success.all()


def test_pl0_counts_pixels_and_pl2_is_the_root_mean_square():
    x = torch.zeros(1, 3, 4, 4)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3  # one channel of one pixel
    x_adv[0, :, 2, 2] = 0.1  # all channels of another
    p = perceptibility(x_adv, x)
    assert p["pl0"].item() == pytest.approx(2 / 16)
    assert perturbation_norms(x_adv, x)["l0"].item() == pytest.approx(4 / 48)  # values, not pixels
    assert p["pl2"].item() == pytest.approx((0.09 + 3 * 0.01) ** 0.5 / 48 ** 0.5)


def test_bad_options_are_config_errors(tiny_model, images):
    with pytest.raises(ConfigError, match="layers"):
        KRA(tiny_model, layers=["backbone.head.1"])
    with pytest.raises(ConfigError, match="threshold_floor"):
        KRA(tiny_model, threshold=0.5, threshold_floor=0.6)
    with pytest.raises(ConfigError, match="threshold_step"):
        KRA(tiny_model, threshold_step=0)

    with pytest.raises(ConfigError, match="Classification objective"):
        KRA(tiny_model, attack=functools.partial(PGD, objective=Region()))
    x, y = images
    inner = KRA(tiny_model, attack=bim()).inner
    with pytest.raises(ConfigError, match="through KRA"):  # the masked objective needs KRA's context
        inner.run(x, y)


class Region(Objective):  # a non-classification objective: KRA cannot build its maps from it
    def score(self, output, ctx):
        return output.sum(1)

    def success(self, output, ctx):
        return output.sum(1) > 0


def test_every_row_is_composed_with_its_own_sample(tiny_model, images):
    """Sub-batches and stacked copies index the context, so any rows work, whichever pixels moved."""
    x, _ = images
    objective = KRA(tiny_model).inner.objective
    assert isinstance(objective, KeyRegion)
    mask = torch.zeros(6, 1, 32, 32)
    mask[:, :, 8:16, 8:16] = 1
    mask[4] = 1
    mask[5, :, :16] = 1
    ctx = Context({KeyRegion.X: x, KeyRegion.MASK: mask})
    rows = torch.tensor([5, 0, 4, 2])
    z = (x[rows] + 0.05 * torch.randn(4, 3, 32, 32)).clamp(0, 1)  # every pixel moved
    seen = objective.output(lambda t: t, z, ctx[rows])  # the identity "model" shows the composed image
    assert torch.equal(seen, x[rows] + mask[rows] * (z - x[rows]))
    copies = torch.cat([z, z])
    assert torch.equal(objective.output(lambda t: t, copies, ctx[rows].repeat(2)), torch.cat([seen, seen]))


@pytest.mark.parametrize("inner", ["square", "nes"])
def test_black_box_inner_attacks_evaluate_sub_batches_on_their_own_masks(inner, sharp_model, images):
    x, _ = images
    y = sharp_model.eval()(x).argmax(1)  # every sample starts correctly classified: every one is queried
    opts = {"square": {"n_queries": 20},
            "nes": {"steps": 2, "restarts": 2, "n_samples": 3, "alpha": 0.01}}[inner]
    kra = KRA(sharp_model, attack=functools.partial(ATTACKS.get(inner), eps=0.05, **opts))
    torch.manual_seed(0)
    out = kra.run(x, y)
    check_adversarial(out.x_adv, x, 0.05, "linf")
    assert torch.allclose(out.logits, sharp_model.eval()(out.x_adv), atol=1e-5)
    assert (out.queries >= 1).all() and (out.grad_calls >= 1).all()  # the mask pass, then queries only
    maps, _ = kra.layer_maps(x, y)
    floor = torch.tensor(kra.thresholds[-1])
    t_used = torch.where(kra.success_threshold.isnan(), floor, kra.success_threshold)
    changed = (out.x_adv != x).any(1)
    assert not (changed & ~(maps > t_used[:, None, None, None]).any(1)).any()


def test_kra_deepfool_minimal_l2_on_the_key_region(sharp_model, images):
    from advdf.attacks.deepfool import DeepFool

    x, _ = images
    y = sharp_model.eval()(x).argmax(1)
    kra = KRA(sharp_model, attack=DeepFool)
    out = kra.run(x, y)
    assert kra.norm == "l2" and kra.eps is None and kra.deterministic
    assert out.success.all()
    assert len(set(out.grad_calls.tolist())) > 1  # samples stopped at different iterations: partial batches ran
    check_adversarial(out.x_adv, x, None, "l2")
    assert torch.allclose(out.logits, sharp_model(out.x_adv), atol=1e-5)
    maps, _ = kra.layer_maps(x, y)
    allowed = (maps > kra.success_threshold[:, None, None, None]).any(1)
    changed = (out.x_adv != x).any(1)
    assert changed.flatten(1).any(1).all() and not (changed & ~allowed).any()
    assert (perceptibility(out.x_adv, x)["pl0"] < 0.2).all()


def test_kra_pgd_config_builds_the_paper_schedule(tiny_model):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="t"):
        cfg = compose("attack", overrides=["attack=kra_pgd"])
    built = instantiate(cfg.attack)(model=tiny_model)
    assert isinstance(built, KRA) and isinstance(built.inner, PGD) and built.name == "kra_pgd"
    assert built.inner.model is tiny_model and isinstance(built.inner.objective, KeyRegion)
    assert built.inner.steps == 20
    assert built.thresholds == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert built.min_map_side is None  # the paper's choice: every resolution
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="t"):
        direct = compose("attack", overrides=["attack=kra_deepfool", "attack.min_map_side=8"])
        planned = compose("attack", overrides=["experiment=kra_smoke", "attack=kra_pgd"])  # the smoke plan sets 8
    assert instantiate(direct.attack)(model=tiny_model).min_map_side == 8
    assert instantiate(planned.attack)(model=tiny_model).min_map_side == 8


def test_table1_layout_prints_paper_beside_ours_and_dashes():
    ours = {("kra_pgd", "faceforensics_all", "resnet50"):
            {"acc_clean": 0.9, "acc_attack": 0.0, "asr": 1.0, "pl2": 0.0123, "pl0": 0.25, "time_s": 1.5},
            ("kra_pgd", "faceforensics_all", "mesonet"):
            {"acc_clean": 0.8, "acc_attack": 0.1, "asr": 0.875, "pl2": 0.02, "pl0": 0.3, "time_s": 0.1}}
    cells = kra_table1_cells(ours)
    md = kra_table1_markdown(cells)
    assert ("| kra_pgd | faceforensics_all | resnet50 | 0.900 / 0.990 | 0.000 / 0.001 | 1.000 / 0.990 | "
            "1.2e-02 / 1.5e-03 | 25.00% / 0.90% | 1.50 / 0.22 |") in md
    assert "| kra_pgd | faceforensics_all | xception | — / 0.990 | — / 0.006 |" in md  # not computed: ours —
    assert "| kra_pgd | faceforensics_all | mesonet | 0.800 / — |" in md  # not in the paper: paper —
    assert "| l2_attack | cnn_synth_all | resnet50 | — / 0.830 | — / 0.001 | — / 0.990 | — / 1.0e-01 | — / — |" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "Attack" not in ln]
    assert len(rows) == 8 + 1  # the paper's 8 rows and our extra MesoNet row
    assert all(ln.count("|") == len(KRA_TABLE1_METRICS) + 4 for ln in rows)


@pytest.fixture
def pyramid_model():
    """A CNN whose convolutions run at 32, 16, 8, 4 and 2 px for a 32 px input: ResNet-50's five resolutions at
    the smoke side of 64 px (32 ... 2), down to the 2 x 2 deepest map."""
    torch.manual_seed(0)
    layers, c = [], 3
    for i in range(5):
        layers += [nn.Conv2d(c, 8, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
        c = 8
    backbone = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 2))
    return Detector(backbone, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3).eval()


PYRAMID = ["backbone.0", "backbone.2", "backbone.4", "backbone.6", "backbone.8"]  # 32, 16, 8, 4, 2 px


def test_a_2x2_map_alone_covers_a_sixteenth_of_the_image_at_the_first_threshold(pyramid_model, images):
    """Why PL0 is ~25 % at 64 px: upsampled, the max cell of a 2 x 2 map fills its corner block (a quarter of the
    cell, 1/16 of the image) with exactly 1, so that layer's mask alone covers >= 1/16 at any threshold below 1,
    whatever the gradients; the paper's rule puts the deepest layer in the union, so the key region does too."""
    x, y = images
    kra = KRA(pyramid_model, attack=bim())
    maps, _ = kra.layer_maps(x, y)
    assert kra.layers_used == PYRAMID
    deep = key_region(maps[:, -1:], kra.thresholds[0]).float().mean((1, 2, 3))
    assert (deep >= 1 / 16).all()
    m = maps[:, -1]
    corners = torch.stack([m[:, :8, :8], m[:, :8, -8:], m[:, -8:, :8], m[:, -8:, -8:]], 1)  # (6, 4, 8, 8)
    assert (corners == 1).flatten(2).all(2).any(1).all()  # in every sample one 8 x 8 corner block is exactly 1
    union = key_region(maps, kra.thresholds[0]).float().mean((1, 2, 3))
    assert (union >= deep).all()


def test_min_map_side_leaves_out_the_coarse_maps_and_shrinks_the_key_region(pyramid_model, images):
    x, y = images
    full = KRA(pyramid_model, attack=bim())
    maps, _ = full.layer_maps(x, y)
    kra = KRA(pyramid_model, attack=bim(), min_map_side=8)
    kept, _ = kra.layer_maps(x, y)
    assert kra.layers_used == PYRAMID[:3]  # 32, 16 and 8 px: the 4 x 4 and 2 x 2 maps are left out
    assert torch.equal(kept, maps[:, :3])  # the kept layers' maps are unchanged
    for t in kra.thresholds:  # a union over fewer layers: a subset of the default mask at every threshold
        small, large = key_region(kept, t), key_region(maps, t)
        assert not (small & ~large).any()
    first = kra.thresholds[0]
    assert key_region(kept, first).sum() < key_region(maps, first).sum()
    assert KRA(pyramid_model, attack=bim(), min_map_side=2).layer_maps(x, y)[0].shape[1] == 5  # all maps >= 2

    with pytest.raises(ConfigError, match="no convolution"):
        KRA(pyramid_model, attack=bim(), min_map_side=64).layer_maps(x, y)
    with pytest.raises(ConfigError, match="explicit layers"):
        KRA(pyramid_model, layers=PYRAMID[:2], min_map_side=8)
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="min_map_side"):
            KRA(pyramid_model, min_map_side=bad)


def test_kra_pgd_with_min_map_side_keeps_the_budget_and_the_key_region(pyramid_model, images):
    x, _ = images
    y = pyramid_model(x).argmax(1)  # every sample starts correctly classified
    kra = KRA(pyramid_model, attack=functools.partial(PGD, eps=EPS, alpha=2 / 255, steps=3), min_map_side=8)
    torch.manual_seed(0)
    out = kra.run(x, y)
    check_adversarial(out.x_adv, x, EPS, "linf")
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert torch.allclose(out.logits, pyramid_model(out.x_adv), atol=1e-5)
    maps, _ = kra.layer_maps(x, y)
    t_used = torch.where(kra.success_threshold.isnan(), torch.tensor(kra.thresholds[-1]), kra.success_threshold)
    changed = (out.x_adv != x).any(1)
    assert changed.any() and not (changed & ~(maps > t_used[:, None, None, None]).any(1)).any()
