"""Seed 002's forensic autoencoders, their objectives and attacks, masks and metrics, and their training."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from advdf.attacks import IAP, URN, Context, OverFire, ZoneActivation, ZoneSegmentation, create_attack
from advdf.attacks.uap import overfire_loss
from advdf.data.dataset import FrameDataset, check_masks, one_manipulation, read_index
from advdf.errors import ConfigError, DataError
from advdf.forensics import (
    ClassNSeg,
    DetectorView,
    activation_loss,
    create_forensic,
    random_triangle_masks,
    segmentation_loss,
    zone_of_label,
)
from advdf.lit.batchnorm import recalibrate_batchnorm
from advdf.metrics import iou, pixel_accuracy, rmse
from tests.helpers.scripts import TINY_DATA, run_script


# --- models ------------------------------------------------------------------------------------------------
def test_classnseg_has_the_published_layout():
    model = create_forensic("classnseg", input_size=256)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 64, 64, 128]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    deconvs = [m for m in (*model.shared.modules(), *model.seg_branch.modules()) if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) + len(deconvs) == 18  # along one path: encoder, shared decoder, one branch
    assert [(d.in_channels, d.out_channels, d.stride[0]) for d in deconvs] == [
        (128, 64, 1), (64, 64, 2), (64, 32, 1), (32, 32, 2), (32, 16, 1), (16, 16, 2), (16, 8, 1), (8, 8, 2), (8, 2, 1)]
    x = torch.rand(2, 3, 256, 256)
    assert model.encode(model.normalize(x)).shape == (2, 128, 16, 16)
    out = model.eval()(x)
    assert out["seg"].shape == (2, 2, 256, 256) and out["recon"].shape == (2, 3, 256, 256)
    assert torch.allclose(out["seg"].sum(1), torch.ones(2, 256, 256), atol=1e-5)  # per-pixel probabilities
    assert out["recon"].abs().max() <= 1  # tanh
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.1) and abs(weights.mean().item()) < 2e-3


def test_zone_energies_selection_and_label_order(tiny_ffm):
    h = torch.randn(3, 128, 2, 2)
    energies = tiny_ffm.energies(h)
    assert torch.allclose(energies[:, 0], h[:, :64].abs().mean((1, 2, 3)))  # zone 0 = fake: channels 0-63
    assert torch.allclose(energies[:, 1], h[:, 64:].abs().mean((1, 2, 3)))
    kept = tiny_ffm.select(h, torch.tensor([0, 1, 0]))
    assert kept[0, 64:].abs().sum() == 0 and torch.equal(kept[0, :64], h[0, :64])
    assert kept[1, :64].abs().sum() == 0 and torch.equal(kept[1, 64:], h[1, 64:])
    assert torch.equal(zone_of_label(torch.tensor([0, 1])), torch.tensor([1, 0]))  # real -> zone 1, fake -> zone 0
    x = torch.rand(4, 3, 32, 32)
    out = tiny_ffm(x)
    assert torch.equal(out["logits"], out["energies"].flip(1))  # logits in advdf's order: real, fake
    assert torch.allclose(DetectorView(tiny_ffm)(x), out["logits"])
    forced = tiny_ffm(x, zone=1 - out["energies"].argmax(1))  # decoding the other zone changes the decoders' output
    assert (forced["seg"] - out["seg"]).abs().max() > 0 and (forced["recon"] - out["recon"]).abs().max() > 0


def test_forensic_transfer_layout_and_residual_switch():
    plain = create_forensic("forensic_transfer", input_size=64)
    assert plain.encode(plain.normalize(torch.rand(1, 3, 64, 64))).shape == (1, 128, 4, 4)
    assert not plain.has_segmentation and "seg" not in plain.eval()(torch.rand(1, 3, 64, 64))
    residual = create_forensic("forensic_transfer", input_size=64, residual=True)
    flat = torch.full((1, 3, 64, 64), 0.5)  # a high-pass front end sees nothing in a flat image
    assert residual.encoder[0](residual.normalize(flat))[:, :, 1:-1, 1:-1].abs().max() < 1e-6
    with pytest.raises(ConfigError, match="divisible by 16"):
        create_forensic("classnseg", input_size=40)


def test_losses_follow_seed_002():
    energies = torch.tensor([[0.2, 0.9], [0.7, 0.1]])  # (fake zone, real zone)
    level = torch.tensor([1.0, 0.45])
    expected = torch.tensor([abs(0.9 - 1.0) + abs(0.2 - 0.0), abs(0.1 - 0.45) + abs(0.7 - 0.55)])
    assert torch.allclose(activation_loss(energies, level), expected)
    seg = torch.tensor([0.8, 0.2, 0.3, 0.7]).view(1, 2, 1, 2)  # pixel 0: p(forged)=0.2, pixel 1: 0.7
    mask = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)
    assert segmentation_loss(seg, mask).item() == pytest.approx(-(torch.tensor([0.3, 0.7]).log().mean()).item())


# --- masks and metrics -------------------------------------------------------------------------------------
def test_triangle_masks_depend_on_seed_and_row_only():
    rows = torch.tensor([5, 9, 2, 7])
    masks = random_triangle_masks(rows, 48, seed=3)
    assert masks.shape == (4, 1, 48, 48) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks[1:2], random_triangle_masks(torch.tensor([9]), 48, seed=3))  # batch-independent
    assert not torch.equal(masks, random_triangle_masks(rows, 48, seed=4))
    area = masks.mean((1, 2, 3))
    assert (area > 0.01).all() and (area < 0.5).all()
    # a triangle is convex: each row and column of the mask is one run of pixels
    for m in masks[:, 0]:
        for line in (*m, *m.T):
            on = line.nonzero().flatten()
            assert len(on) == 0 or on[-1] - on[0] + 1 == len(on)


def test_iou_rule_pixel_accuracy_and_rmse():
    a = torch.zeros(3, 1, 4, 4)
    b = torch.zeros(3, 1, 4, 4)
    a[1, 0, :2] = 1
    b[1, 0, 1:3] = 1  # 4 shared of 12 marked
    b[2, 0, 0, 0] = 1  # prediction empty, target not: 0
    assert torch.allclose(iou(a, b), torch.tensor([1.0, 4 / 12, 0.0]))  # both empty: they agree
    assert iou(a, b, empty=0.0)[0] == 0.0
    assert torch.allclose(pixel_accuracy(a, b), torch.tensor([1.0, 8 / 16, 15 / 16]))
    x = torch.zeros(2, 3, 2, 2)
    assert torch.allclose(rmse(x, x + 2 / 255), torch.tensor([2.0, 2.0]))


# --- attacks -------------------------------------------------------------------------------------------------
def test_iap_takes_raw_gradient_steps_on_the_pixel_scale(tiny_ffm):
    x = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    y = torch.tensor([0, 1])
    attack = IAP(tiny_ffm, eps=255.0, alpha=3.0, steps=1)
    ctx = attack.objective.bind(x, y)
    _, _, grad = attack.score_and_grad(x, ctx)
    expected = (x + 3.0 * grad / 255**2).clamp(0, 1)
    assert torch.allclose(attack(x, y), expected, atol=1e-7)
    small = IAP(tiny_ffm, steps=20, alpha=1e5)(x, y)  # eps 2.5 on 0-255: the raw step is clipped
    assert (small - x).abs().max() <= 2.5 / 255 + 1e-6 and (small - x).abs().max() > 2.4 / 255
    with pytest.raises(ConfigError, match="eps"):
        IAP(tiny_ffm, eps=300)
    with pytest.raises(ConfigError, match="pixel_scale"):
        IAP(tiny_ffm, pixel_scale=0)


@pytest.fixture(scope="module")
def trained_ffm():
    """A 32 px ClassNSeg trained for 200 steps on a separable task: fakes carry a brighter square (their mask).

    L_act drives the other zone's energy to exactly 0 (its ReLUs die), so a flip needs raw gradient steps far beyond
    seed 002's alpha = 1 on 0-255 and not every sample flips; the tests below use alpha 1e6 at eps 16."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = 64
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.5 + 0.1
    y = (torch.arange(n) % 2).long()
    mask = torch.zeros(n, 1, 32, 32)
    mask[y == 1, :, 8:20, 10:22] = 1
    x = torch.where(mask.bool().expand_as(x), x + 0.15, x)
    model = ClassNSeg(input_size=32)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(200):
        out = model(x, zone=zone_of_label(y))
        loss = (activation_loss(out["energies"], zone_of_label(y).float()).mean()
                + 5 * segmentation_loss(out["seg"], mask).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    recalibrate_batchnorm(model, [(x, zone_of_label(y))])
    return model.eval(), x, y, mask


def test_iap_cls_flips_a_trained_autoencoder_and_lowers_iou_without_l_seg(trained_ffm):
    model, x, y, mask = trained_ffm
    clean = model(x)
    assert (clean["logits"].argmax(1) == y).float().mean() >= 0.9
    out = create_attack("iap", model, eps=16, alpha=1e6, steps=20).run(x, y)
    attacked = model(out.x_adv)
    assert (attacked["logits"].argmax(1) == y).float().mean() <= 0.7
    assert torch.equal(out.success, attacked["logits"].argmax(1) != y)
    fake = y == 1
    before = iou((clean["seg"][fake, 1:] > 0.5).float(), mask[fake]).mean()
    after = iou((attacked["seg"][fake, 1:] > 0.5).float(), mask[fake]).mean()
    assert after < before  # the decoded zone follows the predicted class


def test_iap_seg_descends_its_objective_toward_the_triangles(trained_ffm):
    model, x, y, mask = trained_ffm
    fake = y == 1
    xf, yf, mf = x[fake], y[fake], mask[fake]
    adv_mask = random_triangle_masks(torch.arange(len(xf)), 32, seed=0)
    attack = IAP(model, eps=16, alpha=1e6, steps=30, objective=ZoneSegmentation())
    ctx = Context(adv_mask=adv_mask, mask=mf)
    out = attack.run(xf, yf, ctx)
    objective = attack.objective
    full = objective.bind(xf, yf).update(ctx)
    with torch.no_grad():
        before, after = objective.score(model(xf), full), objective.score(model(out.x_adv), full)
    assert after.mean() > before.mean() and (after >= before - 1e-4).float().mean() >= 0.9
    assert (out.x_adv - xf).abs().max() <= 16 / 255 + 1e-6
    pred = (model(out.x_adv)["seg"][:, 1:] > 0.5).float()  # success: closer to the triangle than to the own mask
    assert torch.equal(out.success, iou(pred, adv_mask) > iou(pred, mf))
    with pytest.raises(ConfigError, match="fake images only"):
        attack.run(x, y, Context(adv_mask=random_triangle_masks(torch.arange(len(x)), 32)))
    with pytest.raises(ConfigError, match="adversarial masks"):
        attack.run(xf, yf)


def test_overfire_loss_keeps_its_gradient_past_the_cap_and_at_a_silent_zone():
    # row 0: zone 0 silent (a_0 = 0) while zone 1 fires -- the flat capped loss had a zero gradient there
    energies = torch.tensor([[0.0, 0.9], [0.5, 0.4]], requires_grad=True)
    loss = overfire_loss(energies, torch.tensor([0, 0]), 2.0)
    assert torch.isfinite(loss).all()
    (grad,) = torch.autograd.grad(loss.sum(), energies)
    assert torch.isfinite(grad).all() and grad[0, 1] > 0  # descending lowers the firing wrong zone
    # below the cap it is Eq. 3 itself, and the tangent past it joins continuously
    assert torch.allclose(loss[1], torch.exp(torch.tensor(2.0 * 0.4 / 0.5)) - 0.5)
    at_cap = torch.tensor([[1.0, 25.0]])  # exponent exactly 50
    just_past = torch.tensor([[1.0, 25.0 + 1e-3]])
    z = torch.tensor([0])
    assert torch.allclose(overfire_loss(just_past, z, 2.0), overfire_loss(at_cap, z, 2.0), rtol=1e-2)


def test_overfire_sign_steps_are_alpha_on_the_pixel_scale(tiny_ffm):
    eps = 32
    one = OverFire(tiny_ffm, eps=eps, steps=1, alpha=1.0, sign=True, pixel_scale=255)
    xi = one.universal((3, 32, 32))
    start = (torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1) * (eps / 255)
    moved = (xi - start).abs()
    inside = (start.abs() < eps / 255 - 1 / 255)  # pixels the step cannot push past the budget
    assert torch.allclose(moved[inside], torch.full_like(moved[inside], 1 / 255), atol=1e-6)


def test_overfire_crafts_data_free_universal_perturbations(tiny_ffm, images):
    model, (x, y) = tiny_ffm, images
    attack = OverFire(model, eps=32, steps=60, alpha=1.0, sign=True, pixel_scale=255)
    xi = attack.universal((3, 32, 32))
    assert xi.shape == (2, 3, 32, 32) and xi.abs().max() <= 32 / 255 + 1e-7
    net_in = attack.encoder_input(xi, model)
    energies = model.energies(model.encode(net_in))
    start = (torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1) * (32 / 255)
    start_energies = model.energies(model.encode(attack.encoder_input(start, model)))
    zones = torch.arange(2)
    assert (overfire_loss(energies, zones, 2.0) < overfire_loss(start_energies, zones, 2.0)).all()
    assert energies[0, 0] > energies[0, 1] and energies[1, 1] > energies[1, 0]  # zone c fires on row c
    out = attack.run(x, y)
    calls = attack.craft_grad_calls
    assert calls == 60 and torch.equal(attack.run(x, y).x_adv, out.x_adv) and attack.craft_grad_calls == calls
    assert torch.allclose(out.x_adv, (x + xi[1 - zone_of_label(y)]).clamp(0, 1))  # the flip's zone per image


def test_universal_attacks_refuse_what_they_cannot_do(tiny_model, tiny_ffm):
    with pytest.raises(ConfigError, match="latent zones"):
        OverFire(tiny_model)
    with pytest.raises(ConfigError, match="kappa"):
        OverFire(tiny_ffm, kappa=0)
    with pytest.raises(ConfigError, match="eps"):
        OverFire(tiny_ffm, eps=-1)
    with pytest.raises(ConfigError, match="carrier"):
        OverFire(tiny_ffm, carrier="gray")
    with pytest.raises(ConfigError, match="forensic autoencoder"):
        IAP(tiny_model, steps=1)(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="level"):
        ZoneActivation(level=1.5)


def test_urn_adds_one_seeded_pattern_of_the_same_strength(tiny_model):
    x = torch.full((3, 3, 32, 32), 0.5)
    out = URN(tiny_model, eps=10).run(x, torch.tensor([0, 1, 1]))
    delta = out.x_adv - x
    assert delta.abs().max() <= 10 / 255 + 1e-7 and delta.abs().max() > 9 / 255
    assert torch.equal(delta[0], delta[1]) and torch.equal(delta[1], delta[2])
    assert torch.equal(URN(tiny_model, eps=10).apply(x), out.x_adv)
    assert not torch.equal(URN(tiny_model, eps=10, seed=1).apply(x), out.x_adv)
    assert out.logits.shape == (3, 2)


# --- data and training -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ffm_run(tmp_path_factory):
    """``train.py task=ffm`` on the tiny synthetic tree: a 32 px ClassNSeg on Face2Face, 2 epochs."""
    artifacts = tmp_path_factory.mktemp("ffm")
    proc = run_script("train", ["task=ffm", "model=classnseg", "model.input_size=32", *TINY_DATA,
                                "data.manipulation=Face2Face", "trainer.max_epochs=2", "logger=none"], artifacts)
    return artifacts, proc


@pytest.mark.slow
def test_masks_come_with_the_frames_and_one_manipulation_is_balanced(ffm_run):
    artifacts, _ = ffm_run
    (prepared,) = (artifacts / "data" / "prepared").glob("*/index.csv")
    rows = read_index(prepared.parent)
    train = [r for r in rows if r["split"] == "train"]
    chosen = one_manipulation(train, "Face2Face")
    labels = [r["label"] for r in chosen]
    assert labels.count(0) == labels.count(1) and {r["manipulation"] for r in chosen if r["label"]} == {"Face2Face"}
    data = FrameDataset(chosen, prepared.parent, 32, masks=True)
    items = [data[i] for i in range(len(data))]
    assert all(it["mask"].shape == (1, 32, 32) for it in items)
    assert all(it["mask"].sum() == 0 for it in items if it["label"] == 0)
    assert sum(bool(it["mask"].sum() > 0) for it in items if it["label"] == 1) >= 0.8 * labels.count(1)
    broken = [dict(r, mask_path="") for r in chosen]
    with pytest.raises(DataError, match="no mask") as err:
        check_masks(broken, prepared.parent)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="no frames of manipulation"):
        one_manipulation(train, "NoSuchMethod")


@pytest.mark.slow
def test_train_task_ffm_writes_its_run_and_reports_mask_metrics(ffm_run):
    artifacts, _ = ffm_run
    (run,) = (artifacts / "checkpoints").glob("*/ffm/classnseg_32px_Face2Face-*")
    summary = json.loads((run / "train_summary.json").read_text())
    assert {"test/acc", "test/iou", "test/pixel_acc", "test/rec_err", "test/act", "test/seg"} <= set(summary["metrics"])
    assert 0 <= summary["metrics"]["test/iou"] <= 1
    model = create_forensic("classnseg", input_size=32, checkpoint_path=run / "detector.safetensors")
    assert isinstance(model, ClassNSeg)
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["kind"] == "ffm" and recorded["settings"]["model"]["init"] is None
    assert recorded["settings"]["data"]["manipulation"] == "Face2Face" and recorded["settings"]["data"]["masks"]
    # fine-tuning another data set's model from it: its own run, keyed by the starting weights' digest
    run_script("train", ["task=ffm", "model=classnseg", "model.input_size=32", *TINY_DATA,
                         "data.manipulation=Deepfakes", f"model.checkpoint_path={run / 'detector.safetensors'}",
                         "trainer.max_epochs=1", "logger=none"], artifacts)
    (tuned,) = (artifacts / "checkpoints").glob("*/ffm/classnseg_32px_Deepfakes-*")
    init = json.loads((tuned / "run.json").read_text())["settings"]["model"]["init"]
    assert init is not None and len(init) == 64


def test_universal_perturbations_of_a_forensic_autoencoder_cache_as_shards(tiny_ffm, images):
    from advdf.jobs.attack import attack_shard

    x, y = images
    batch = {"image": x, "label": y, "position": torch.arange(len(x)), "index": torch.arange(len(x)),
             "video": torch.arange(len(x))}
    for attack in (URN(tiny_ffm, eps=10), OverFire(tiny_ffm, eps=10, steps=2, sign=True)):
        shard = attack_shard(attack, [batch], torch.device("cpu"), "classnseg")
        with torch.no_grad():
            expected = tiny_ffm(x)["logits"].argmax(1)
        assert torch.equal(shard["clean_pred"], expected)  # the model's (N, 2) logits, not its result dict
        assert torch.allclose(shard["x_adv"], attack.apply(x, y))
