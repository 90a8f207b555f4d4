"""Architecture checks for MesoInception4 and GramNet (tiny inputs, random weights, no downloads)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import advdf.models.gramnet
import advdf.models.mesoinception
from advdf.errors import ConfigError
from advdf.models import create_detector, list_detectors
from advdf.models.base import IMAGENET_MEAN, IMAGENET_STD
from advdf.models.gramnet import DEFAULT_TAPS, GramNet
from advdf.models.mesoinception import InceptionLayer, MesoInception4

SIZE = 64


def test_both_detectors_are_registered():
    assert {"mesoinception4", "gramnet"} <= set(list_detectors())


# ---------------------------------------------------------------- MesoInception4


@pytest.mark.parametrize("size", [64, 256])
def test_mesoinception_gives_two_opposite_logits(size):
    torch.manual_seed(0)
    detector = create_detector("mesoinception4", input_size=size).eval()
    logits = detector(torch.rand(2, 3, size, size))
    assert logits.shape == (2, 2)
    assert torch.equal(logits[:, 0], -logits[:, 1])


def test_mesoinception_defaults_256_px_and_half_normalization():
    detector = advdf.models.mesoinception.mesoinception4()
    assert detector.input_size == 256 and detector.single_logit
    assert detector.mean.flatten().tolist() == [0.5] * 3 and detector.std.flatten().tolist() == [0.5] * 3


def test_inception_modules_give_11_and_12_channels_at_half_resolution():
    features = MesoInception4(SIZE).eval().features
    first, second = features[0], features[1]
    assert isinstance(first, InceptionLayer) and isinstance(second, InceptionLayer)
    x = torch.rand(2, 3, SIZE, SIZE)
    y1 = first(x)
    assert y1.shape == (2, 11, SIZE // 2, SIZE // 2)
    assert second(y1).shape == (2, 12, SIZE // 4, SIZE // 4)


@pytest.mark.parametrize(("index", "widths"), [(0, (1, 4, 4, 2)), (1, (2, 4, 4, 2))])
def test_inception_branches_are_1x1_then_dilated_3x3(index, widths):
    layer = MesoInception4(SIZE).features[index]
    convs = [[m for m in branch.modules() if isinstance(m, nn.Conv2d)] for branch in layer.branches]
    assert [len(c) for c in convs] == [1, 2, 2, 2]
    assert [c[-1].out_channels for c in convs] == list(widths)
    assert all(c[0].kernel_size == (1, 1) for c in convs)
    dilated = [c[1] for c in convs[1:]]
    assert [m.kernel_size for m in dilated] == [(3, 3)] * 3
    assert [m.dilation for m in dilated] == [(1, 1), (2, 2), (3, 3)]
    assert [m.padding for m in dilated] == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("size", [100, 48, 0])
def test_mesoinception_rejects_sizes_not_multiple_of_32(size):
    with pytest.raises(ConfigError, match="divisible by 32"):
        create_detector("mesoinception4", input_size=size)


# ---------------------------------------------------------------- GramNet


@pytest.fixture(scope="module")
def gram_detector():
    torch.manual_seed(0)
    return create_detector("gramnet", input_size=SIZE).eval()


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_gramnet_defaults(gram_detector):
    assert advdf.models.gramnet.gramnet.__defaults__[:3] == (False, 224, "resnet18")
    assert DEFAULT_TAPS == ("stem", "layer1", "layer2", "layer3", "layer4")
    assert not gram_detector.single_logit
    assert gram_detector.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert gram_detector.std.flatten().tolist() == pytest.approx(IMAGENET_STD)


def test_gram_matrices_are_symmetric_and_match_direct_formula(gram_detector, x):
    with torch.no_grad():
        outs = gram_detector.backbone.branch_outputs(gram_detector.normalize(x))
    assert tuple(outs) == DEFAULT_TAPS
    # the stem is tapped before the max-pool (stride 2), layer1 after it (stride 4)
    assert outs["stem"]["features"].shape[-1] == SIZE // 2
    assert outs["layer1"]["features"].shape[-1] == SIZE // 4
    for out in outs.values():
        f, gram = out["features"], out["gram"]
        n, c, h, w = f.shape
        assert c == 32 and gram.shape == (2, 32, 32)
        assert torch.allclose(gram, gram.transpose(1, 2), atol=1e-6)
        flat = f.reshape(n, c, h * w)
        direct = torch.einsum("nik,njk->nij", flat, flat) / (c * h * w)
        assert torch.allclose(gram, direct, rtol=1e-4, atol=1e-6)
        assert gram.abs().sum() > 0
        assert out["vector"].shape == (2, 32)


def test_features_concatenate_pooled_backbone_and_branch_vectors(gram_detector, x):
    with torch.no_grad():
        feats = gram_detector.forward_features(x)
        outs = gram_detector.backbone.branch_outputs(gram_detector.normalize(x))
        pooled = gram_detector.backbone.backbone.forward_features(gram_detector.normalize(x)).mean((2, 3))
    assert feats.shape == (2, 512 + 32 * len(DEFAULT_TAPS))
    assert torch.allclose(feats[:, :512], pooled, atol=1e-5)
    vectors = torch.cat([o["vector"] for o in outs.values()], dim=1)
    assert torch.allclose(feats[:, 512:], vectors, atol=1e-5)


@pytest.mark.parametrize("taps", [("layer4",), ("input", "stem", "layer2")])
def test_feature_width_follows_taps(taps):
    net = GramNet(taps=taps).eval()
    with torch.no_grad():
        assert net.forward_features(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 512 + 32 * len(taps))
    assert net.head.in_features == 512 + 32 * len(taps)


def test_gramnet_forward_equals_head_of_features(gram_detector, x):
    with torch.no_grad():
        logits = gram_detector(x)
        split = gram_detector.forward_head(gram_detector.forward_features(x))
    assert logits.shape == (2, 2)
    assert torch.allclose(logits, split, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(gram_detector.classify(gram_detector.embed(x)), logits, atol=1e-5)


def test_gramnet_gradient_reaches_input(gram_detector):
    x = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    gram_detector(x)[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gramnet_branch_gradient_reaches_input():
    """The Gram path alone (head weights on the backbone features zeroed) still carries a gradient to the input."""
    torch.manual_seed(0)
    net = GramNet(taps=("stem",)).eval()
    with torch.no_grad():
        net.head.weight[:, :512] = 0
    x = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    net(x)[:, 1].sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"taps": ("layer5",)}, "taps"), ({"taps": ("stem", "stem")}, "taps"),
     ({"arch": "no_such_net"}, "unknown"), ({"arch": "mobilenetv2_050"}, "ResNet")],
)
def test_gramnet_rejects_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_detector("gramnet", input_size=SIZE, **kwargs)
