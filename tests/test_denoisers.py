"""Denoiser networks: shape and [0, 1] range kept, HGD's DUNET is input plus a residual, and each learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advdf.denoisers import DenoisingAutoencoder, DUNet
from advdf.errors import ConfigError
from tests.helpers.descent import descend

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL_DUNET = {"encoder_widths": (8, 16, 16), "encoder_blocks": (1, 2, 2), "decoder_widths": (8, 16),
               "decoder_blocks": (1, 2)}


@pytest.mark.parametrize("make", [lambda: DUNet(**SMALL_DUNET), lambda: DenoisingAutoencoder((8, 16))])
@pytest.mark.parametrize("side", [32, 36])
def test_shape_and_range_are_kept(make, side):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.rand(2, 3, side, side)
    if isinstance(net, DenoisingAutoencoder) and side % net.factor:
        with pytest.raises(ConfigError, match="divisible"):
            net(x)
        return
    out = net(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_dunet_is_input_plus_residual_with_hgd_layout():
    torch.manual_seed(0)
    net = DUNet(**SMALL_DUNET).eval()
    x = torch.rand(2, 3, 33, 33)  # odd sides: the decoder upsamples to each skip's exact size
    r = net.residual(x)
    assert r.shape == x.shape
    assert torch.equal(net(x), (x + r).clamp(0, 1))
    hgd = DUNet()
    assert [len(s) for s in hgd.encoder] == [2, 3, 3, 3, 3]
    assert [s[0][0].out_channels for s in hgd.encoder] == [64, 128, 256, 256, 256]
    assert [s[0][0].stride[0] for s in hgd.encoder] == [1, 2, 2, 2, 2]
    # decoder runs deep to shallow: widths 256, 256, 128, 64 with 3, 3, 3, 2 blocks, each on skip + upsampled input
    assert [s[0][0].out_channels for s in hgd.decoder] == [256, 256, 128, 64]
    assert [len(s) for s in hgd.decoder] == [3, 3, 3, 2]
    assert [s[0][0].in_channels for s in hgd.decoder] == [256 + 256, 256 + 256, 256 + 128, 128 + 64]
    with pytest.raises(ConfigError, match="decoder"):
        DUNet(decoder_widths=(64,), decoder_blocks=(2,))


@pytest.mark.parametrize("make", [lambda: DUNet(**SMALL_DUNET), lambda: DenoisingAutoencoder((8, 16))])
def test_pixel_loss_decreases_on_a_tiny_batch(make):
    torch.manual_seed(0)
    net = make()
    clean = torch.rand(4, 3, 32, 32)
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = descend(lambda: F.l1_loss(net(noisy), clean), opt, steps=40)
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.fixture
def guided_batch(tiny_model):
    """Clean images, their PGD examples against the tiny detector, and labels."""
    from advdf.attacks import PGD

    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    y = torch.arange(8) % 2
    adv = PGD(tiny_model.eval(), eps=16 / 255, alpha=4 / 255, steps=5)(x, y)
    return {"image": x, "adv": adv, "label": y}


@pytest.mark.parametrize("guidance", ["logits", "features", "label", "pixel"])
def test_each_guided_loss_decreases_and_the_detector_stays_frozen(guidance, tiny_model, guided_batch):
    from functools import partial

    from advdf.lit import DenoiserModule

    torch.manual_seed(0)
    module = DenoiserModule(DUNet(**SMALL_DUNET), tiny_model, optimizer=partial(torch.optim.Adam, lr=3e-3),
                            guidance=guidance).train()
    assert not tiny_model.training  # train() leaves the frozen detector in eval mode
    weights = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    optimizer = module.configure_optimizers()
    losses = descend(lambda: module.guided_loss(guided_batch)[0], optimizer, steps=15)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(p.grad is None for p in tiny_model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in tiny_model.state_dict().items())


def test_unknown_guidance_is_a_config_error(tiny_model):
    from advdf.lit import DenoiserModule

    with pytest.raises(ConfigError, match="guidance"):
        DenoiserModule(DUNet(**SMALL_DUNET), tiny_model, optimizer=torch.optim.Adam, guidance="perceptual")
