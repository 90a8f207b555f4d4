"""Denoiser networks: shape and [0, 1] range kept, HGD's DUNET is input plus a residual, and each learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advdf.denoisers import DenoisingAutoencoder, DUNet, TransferableDenoiser
from advdf.errors import ConfigError
from tests.helpers.descent import descend

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL_DUNET = {"encoder_widths": (8, 16, 16), "encoder_blocks": (1, 2, 2), "decoder_widths": (8, 16),
               "decoder_blocks": (1, 2)}


@pytest.mark.parametrize("make", [lambda: DUNet(**SMALL_DUNET), lambda: DenoisingAutoencoder((8, 16)),
                                  lambda: TransferableDenoiser((8, 16))])
@pytest.mark.parametrize("side", [32, 36])
def test_shape_and_range_are_kept(make, side):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.rand(2, 3, side, side)
    if isinstance(net, DenoisingAutoencoder | TransferableDenoiser) and side % net.factor:
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


@pytest.mark.parametrize("make", [lambda: DUNet(**SMALL_DUNET), lambda: DenoisingAutoencoder((8, 16)),
                                  lambda: TransferableDenoiser((8, 16))])
def test_pixel_loss_decreases_on_a_tiny_batch(make):
    torch.manual_seed(0)
    net = make()
    clean = F.interpolate(torch.rand(4, 3, 8, 8), size=32, mode="bilinear")  # smooth images, like face crops
    noisy = (0.6 * clean + 0.2 + 0.05 * torch.randn_like(clean)).clamp(0, 1)  # washed out and noisy
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = descend(lambda: F.l1_loss(net(noisy), clean), opt, steps=60)
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


@pytest.mark.parametrize("guidance", ["logits", "features", "label", "pixel", "td"])
def test_each_guided_loss_decreases_and_the_detector_stays_frozen(guidance, tiny_model, guided_batch):
    from functools import partial

    from advdf.lit import DenoiserModule

    torch.manual_seed(0)
    module = DenoiserModule(DUNet(**SMALL_DUNET), tiny_model, optimizer=partial(torch.optim.Adam, lr=3e-3),
                            guidance=guidance).train()
    assert not tiny_model.training  # train() leaves the frozen detector in eval mode
    weights = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    optimizer = module.configure_optimizers()
    losses = descend(lambda: module.guided_loss(guided_batch)[0], optimizer, steps=30)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(p.grad is None for p in tiny_model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in tiny_model.state_dict().items())


def test_unknown_guidance_is_a_config_error(tiny_model):
    from advdf.lit import DenoiserModule

    with pytest.raises(ConfigError, match="guidance"):
        DenoiserModule(DUNet(**SMALL_DUNET), tiny_model, optimizer=torch.optim.Adam, guidance="perceptual")


def test_td_latent_noise_only_in_training():
    torch.manual_seed(0)
    net = TransferableDenoiser((8, 16), latent_noise=0.5, residual=False)
    x = torch.rand(2, 3, 16, 16)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x)) and not torch.equal(net.encode(x), net.encode(x))
    quiet = TransferableDenoiser((8, 16), latent_noise=0.0).train()
    assert quiet.encode(x).shape == (2, 16, 4, 4) and torch.equal(quiet.encode(x), quiet.encode(x))
    with pytest.raises(ConfigError, match="latent_noise"):
        TransferableDenoiser((8,), latent_noise=-1)


@pytest.mark.parametrize("make", [lambda: DUNet(**SMALL_DUNET), lambda: TransferableDenoiser((8, 16))])
def test_residual_denoisers_start_as_the_identity_and_then_learn(make):
    """A new HGD / residual TD passes images through unchanged (the detector's clean accuracy is intact from the
    first step), yet gradients reach every layer that predicts the correction."""
    torch.manual_seed(0)
    net = make().train()
    x = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    assert torch.equal(net(x), x)
    F.l1_loss(net(x), x.flip(0)).backward()
    last = net.to_residual if isinstance(net, DUNet) else net.to_image
    assert last.weight.grad.abs().sum() > 0


class _Counting(torch.nn.Module):
    """A detector wrapper that counts the images it is called on."""

    def __init__(self, detector):
        super().__init__()
        self.detector, self.images = detector, 0

    def forward(self, x):
        self.images += len(x)
        return self.detector(x)


@pytest.mark.parametrize("guidance, gaussian_std, seen", [
    ("logits", 0.0, 8),    # the denoised adversarial images only: the clean logits come with the batch
    ("td", 0.0, 8),        # the reconstruction term needs no detector call
    ("logits", 0.1, 16),   # DAE-style: the noisy copies of the clean images join the batch
])
def test_cached_clean_logits_save_detector_calls(guidance, gaussian_std, seen, tiny_model, guided_batch):
    from advdf.lit import DenoiserModule

    counting = _Counting(tiny_model)
    module = DenoiserModule(DUNet(**SMALL_DUNET), counting, optimizer=torch.optim.Adam, guidance=guidance,
                            gaussian_std=gaussian_std)
    with torch.no_grad():
        batch = {**guided_batch, "clean_logits": tiny_model(guided_batch["image"])}
    loss, logits = module.guided_loss(batch)
    assert counting.images == seen and len(logits) == seen and torch.isfinite(loss)
    counting.images = 0
    module.guided_loss(guided_batch)  # without them, one extra call on the clean images
    assert counting.images == seen + 8
