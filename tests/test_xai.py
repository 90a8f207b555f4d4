"""Attribution maps, Detect-ResNet50 and the routing of seed 001's pipeline (Figure 3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advdf.errors import ConfigError
from advdf.jobs.xai_data import FrameSet
from advdf.lit import AdversarialDetectorModule
from advdf.papers.pinhasov2024.adv_detect import score_sets
from advdf.xai import DetectResNet50, create_xai, list_xai, normalize_maps

METHODS = ("guided_backprop", "input_x_gradient", "integrated_gradients", "saliency")


def test_the_four_methods_are_registered():
    assert set(METHODS) <= set(list_xai())


@pytest.mark.parametrize("name", METHODS)
def test_maps_have_the_input_shape_are_finite_and_normalized(name, tiny_model, images):
    x, _ = images
    kwargs = {"n_steps": 4, "internal_batch_size": 8} if name == "integrated_gradients" else {}
    maps = create_xai(name, **kwargs)(tiny_model.eval(), x)
    assert maps.shape == x.shape
    assert torch.isfinite(maps).all()
    assert maps.abs().max() <= 1 and maps.abs().amax(dim=(1, 2, 3)).min() > 0.5  # scaled per sample
    if name == "saliency":
        assert (maps >= 0).all()


def test_maps_target_the_predicted_class_by_default(tiny_model, images):
    x, _ = images
    method, model = create_xai("input_x_gradient", percentile=100), tiny_model.eval()
    pred = model(x).argmax(1)
    assert torch.equal(method(model, x), method(model, x, pred))
    assert not torch.allclose(method(model, x), method(model, x, 1 - pred))


def test_input_x_gradient_is_input_times_gradient(tiny_model, images):
    x, _ = images
    model = tiny_model.eval()
    target = torch.zeros(len(x), dtype=torch.long)
    xr = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model(xr)[:, 0].sum(), xr)
    expected = normalize_maps(x * grad, 100)
    assert torch.allclose(create_xai("input_x_gradient", percentile=100)(model, x, target), expected, atol=1e-6)


def test_integrated_gradients_internal_batching_does_not_change_maps(tiny_model, images):
    x, _ = images
    a = create_xai("integrated_gradients", n_steps=6, internal_batch_size=None)(tiny_model.eval(), x)
    b = create_xai("integrated_gradients", n_steps=6, internal_batch_size=5)(tiny_model.eval(), x)
    assert torch.allclose(a, b, atol=1e-5)


def test_normalize_keeps_zero_maps_zero():
    maps = normalize_maps(torch.zeros(2, 3, 4, 4), 99)
    assert torch.equal(maps, torch.zeros(2, 3, 4, 4))


def test_maps_need_eval_mode(tiny_model, images):
    with pytest.raises(Exception, match="eval mode"):
        create_xai("saliency")(tiny_model.train(), images[0])


def _tiny_detect(freeze: bool) -> DetectResNet50:
    torch.manual_seed(0)
    return DetectResNet50(backbone="resnet18", pretrained=False, hidden=8, freeze_backbone=freeze)


def test_detect_resnet_embeds_image_and_map_and_classifies_two_ways():
    d = _tiny_detect(False).eval()
    x, h = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    assert d.embed(x, h).shape == (3, 2 * 512)
    assert d(x, h).shape == (3, 2)
    assert d.head[0].in_features == 1024 and d.head[-1].out_features == 2
    # the map is an input: changing it changes the output
    assert not torch.allclose(d(x, h), d(x, torch.zeros_like(h)))


def _step(d: DetectResNet50) -> AdversarialDetectorModule:
    module = AdversarialDetectorModule(d, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    opt = module.configure_optimizers()
    module.train()
    batch = {"image": torch.rand(4, 3, 32, 32), "map": torch.rand(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    logits = module(batch["image"], batch["map"])
    nn.functional.cross_entropy(logits, batch["label"]).backward()
    opt.step()
    return module


def test_head_only_leaves_the_backbone_unchanged_after_a_step():
    d = _tiny_detect(True)
    backbone = {k: v.clone() for k, v in d.backbone.state_dict().items()}  # weights and batch-norm statistics
    head = {k: v.clone() for k, v in d.head.state_dict().items()}
    _step(d)
    assert all(torch.equal(v, d.backbone.state_dict()[k]) for k, v in backbone.items())
    assert any(not torch.equal(v, d.head.state_dict()[k]) for k, v in head.items())
    assert not d.backbone.training


def test_finetuned_configuration_updates_the_backbone():
    d = _tiny_detect(False)
    conv = d.backbone.conv1.weight.clone()
    _step(d)
    assert not torch.equal(conv, d.backbone.conv1.weight)


class _Recorder(nn.Module):
    """A stand-in adversarial detector that remembers every (image, map) batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.maps = [], []

    def forward(self, image, xai_map):
        self.images.append(image.clone())
        self.maps.append(xai_map.clone())
        return torch.stack([image.mean((1, 2, 3)), xai_map.mean((1, 2, 3))], 1)


class _FakeData:
    """XaiData's interface: maps are the image itself (non-zero), on CPU."""

    device = torch.device("cpu")

    def maps(self, frames, method, split):
        return frames.images + 0.5


def _frames(label: int, g_pred: list[int], offset: float) -> FrameSet:
    n = len(g_pred)
    images = torch.full((n, 3, 8, 8), offset) + torch.arange(n).view(-1, 1, 1, 1) * 0.01
    return FrameSet("clean" if label == 0 else "pgd-x", images, torch.full((n,), label), torch.arange(n),
                    torch.arange(n), torch.tensor(g_pred))


def test_frames_g_calls_fake_never_reach_d_and_pgd_b_zeroes_every_map():
    real = _frames(0, [0, 1, 0, 0], 0.1)         # g wrongly calls real crop 1 fake
    attacked = _frames(1, [0, 1, 1, 0, 0], 0.6)  # g catches attacked crops 1 and 2 itself
    d = _Recorder()
    scored = {s.attack: s for s in score_sets(d, _FakeData(), None, real, {"pgd": attacked}, batch_size=2)}
    seen = torch.cat(d.images)
    for frames in (real, attacked):
        for i in torch.nonzero(frames.g_pred == 1).flatten():
            assert not (seen == frames.images[i]).flatten(1).all(1).any(), "a crop g called fake reached d"
    pgd, black = scored["pgd"], scored["pgd_black"]
    assert len(pgd.label) == len(black.label) == 3 + 3
    assert (pgd.real_total, pgd.attacked_total, pgd.attacked_caught) == (4, 5, 2)
    # PGD-B: the maps d received for its scores are all zeros; with maps, none are
    zero = [m for m in d.maps if not m.any()]
    assert sum(len(m) for m in zero) == 6 and all(m.abs().sum() > 0 for m in d.maps if m.any())
    assert not torch.allclose(pgd.scores, black.scores)
    m = pgd.metrics()
    assert m["n_routed"] == 6 and m["caught_by_g"] == 2
    assert 0 <= m["acc"] <= 1 and 0 <= m["pipeline_acc"] <= 1 and 0 <= m["vid_acc"] <= 1


def test_head_only_training_on_cached_embeddings_equals_training_through_the_frozen_backbone():
    from advdf.papers.pinhasov2024.adv_detect import frozen_embeddings

    batch = {"image": torch.rand(4, 3, 32, 32), "map": torch.rand(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    heads = []
    for cached in (False, True):
        d = _tiny_detect(True)
        module = AdversarialDetectorModule(d, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
        opt = module.configure_optimizers()
        module.train()
        if cached:
            z = frozen_embeddings(d, batch["image"], batch["map"], torch.device("cpu"), 3)
            logits = d.head(z)
        else:
            logits = module(batch["image"], batch["map"])
        nn.functional.cross_entropy(logits, batch["label"]).backward()
        opt.step()
        heads.append(d.head.state_dict())
    assert all(torch.allclose(heads[0][k], heads[1][k], atol=1e-6) for k in heads[0])


def test_recalibrated_batchnorm_holds_the_statistics_of_the_current_weights():
    from advdf.lit.batchnorm import recalibrate_batchnorm

    d = _tiny_detect(False).train()
    batches = [(torch.rand(4, 3, 32, 32) * 3, torch.rand(4, 3, 32, 32)) for _ in range(3)]
    assert recalibrate_batchnorm(d, batches) == 3
    with torch.no_grad():  # the first batch norm normalizes conv1's output over image and map stacks alike
        acts = torch.cat([d.backbone.conv1(torch.cat([(x - d.mean) / d.std, h * d.map_scale])) for x, h in batches])
    bn = d.backbone.bn1
    assert torch.allclose(bn.running_mean, acts.mean((0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1
    frozen = _tiny_detect(True)
    before = frozen.backbone.bn1.running_mean.clone()
    assert recalibrate_batchnorm(frozen, batches) == 0 and torch.equal(before, frozen.backbone.bn1.running_mean)


class _Counting:
    """An attribution method that records its batch sizes and can be killed on a given call."""

    def __init__(self, method, kill_on: int | None = None) -> None:
        self.method, self.kill_on, self.calls = method, kill_on, []
        self.name = method.name

    def config(self) -> dict:
        return self.method.config()

    def __call__(self, model, x, target):
        self.calls.append(len(x))
        if len(self.calls) == self.kill_on:
            raise KeyboardInterrupt  # the job is killed here
        return self.method(model, x, target)


def test_maps_are_cached_per_shard_and_a_killed_run_resumes_at_the_missing_shard(tmp_path, tiny_model):
    from omegaconf import OmegaConf

    from advdf.jobs.xai_data import XaiData

    weights = tmp_path / "g.safetensors"
    weights.write_bytes(b"weights of g")
    cfg = OmegaConf.create({"model": {"name": "tiny_cnn"}, "data": {"name": "synthetic"}, "checkpoint": str(weights),
                            "paths": {"cache_dir": str(tmp_path / "cache")}, "shard_size": 4, "batch_size": 3})
    data = XaiData(cfg, None, tiny_model.eval(), torch.device("cpu"))
    frames = _frames(0, [0] * 10, 0.3)
    frames.images = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    method = create_xai("saliency")
    with pytest.raises(KeyboardInterrupt):
        data.maps(frames, _Counting(method, kill_on=3), "test")  # shard 0 = batches of 3 + 1; killed in shard 1
    resumed = _Counting(method)
    maps = data.maps(frames, resumed, "test")
    assert resumed.calls == [3, 1, 2]  # shards 1 (4 crops) and 2 (2 crops) only
    expected = method(tiny_model.eval(), frames.images, frames.g_pred)
    assert torch.allclose(maps, expected, atol=1e-3)  # stored as float16
    again = _Counting(method)
    assert torch.equal(data.maps(frames, again, "test"), maps) and not again.calls


def test_guided_backprop_equals_captums_on_relu_networks(tiny_model, images):
    from captum.attr import GuidedBackprop as CaptumGuidedBackprop

    from advdf.xai.guided_backprop import _GuidedGradient

    x, _ = images
    model = tiny_model.eval()
    target = model(x).argmax(1)
    ours = _GuidedGradient(model).attribute(x.clone().requires_grad_(True), target)
    theirs = CaptumGuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=target)
    torch.testing.assert_close(ours, theirs)


def test_guided_backprop_is_guided_through_silu_in_closed_form():
    """f = v . silu(W x): the guided gradient is W^T relu(silu'(W x) * v), not the plain W^T (silu'(W x) * v)."""
    from advdf.xai.guided_backprop import _GuidedGradient

    torch.manual_seed(0)
    lin, head = nn.Linear(12, 16, bias=False), nn.Linear(16, 2, bias=False)
    model = nn.Sequential(nn.Flatten(), lin, nn.SiLU(), head).eval()
    x = torch.randn(5, 3, 2, 2)
    target = torch.zeros(5, dtype=torch.long)
    pre = x.flatten(1) @ lin.weight.T
    s = torch.sigmoid(pre)
    local = (s * (1 + pre * (1 - s))) * head.weight[0]  # silu'(Wx) * v
    expected = (torch.relu(local) @ lin.weight).view_as(x)
    ours = _GuidedGradient(model).attribute(x.clone().requires_grad_(True), target)
    torch.testing.assert_close(ours, expected)
    plain = (local @ lin.weight).view_as(x)
    assert not torch.allclose(ours, plain)


def test_guided_backprop_on_an_efficientnet_and_its_refusal_without_activation_modules():
    timm = pytest.importorskip("timm")
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=2).eval()  # SiLU everywhere
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    inplace_before = [getattr(m, "inplace", None) for m in model.modules()]
    maps = create_xai("guided_backprop", percentile=100)(model, x)
    plain = create_xai("saliency", percentile=100)
    assert torch.isfinite(maps).all() and maps.shape == x.shape
    assert not torch.allclose(maps.abs(), plain(model, x), atol=1e-3)  # not the plain gradient
    assert [getattr(m, "inplace", None) for m in model.modules()] == inplace_before

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 2)

        def forward(self, x):
            return self.fc(torch.relu(x.flatten(1)))

    with pytest.raises(ConfigError, match="functional activations"):
        create_xai("guided_backprop")(Functional().eval(), torch.rand(2, 3, 2, 2))
