"""U-GAT-IT — Kim et al., "U-GAT-IT: Unsupervised Generative Attentional Networks with Adaptive Layer-Instance
Normalization for Image-to-Image Translation", ICLR 2020; the layout of the official PyTorch code
(znxlwm/UGATIT-pytorch, networks.py: ``ResnetGenerator``, ``Discriminator``).

Generator (CelebA -> anime, the A -> B generator ``genA2B``): ``DownBlock`` = reflection pad, conv 7x7 to ``ngf``,
InstanceNorm, ReLU; two reflection-padded conv 3x3 stride 2 (x2 channels each); ``n_blocks`` residual blocks. The
class activation map: ``gap_fc`` and ``gmp_fc`` (linear, no bias) score the average- and max-pooled features, their
weights scale the feature map, and ``conv1x1`` (with ReLU) fuses the two; the heatmap is its channel sum. ``FC`` (two
linear + ReLU, on the whole flattened map, or on its average in the ``light`` version) gives ``gamma`` and ``beta``
for ``n_blocks`` AdaILN residual blocks ``UpBlock1_1`` ...; ``UpBlock2`` = twice (nearest upsampling x2, conv 3x3,
ILN, ReLU), then conv 7x7 to 3 and tanh. No convolution but ``conv1x1`` has a bias. Official: ngf 64, n_blocks 4
(``--n_res``), 256 px, full (not light) version.

Discriminators: a global (``n_layers=7``) and a local (``n_layers=5``) one, each a stack of reflection-padded,
spectrally normalized conv 4x4 with LeakyReLU(0.2) (``model``), the same CAM (``gap_fc``, ``gmp_fc``, ``conv1x1``) and a
last spectrally normalized conv 4x4 to one channel (``conv``). Spectral norm is ``torch.nn.utils.spectral_norm``, whose
state-dict keys (``weight_orig``, ``weight_u``, ``weight_v``) are those of the official checkpoints.

AdaILN / ILN normalize with the instance statistics over (H, W) and the layer statistics over (C, H, W) (unbiased
variance), the form the public ports of the code use. One version of the official networks.py takes
the variance one dimension at a time (a variance of variances); ``nested_variance=True`` reproduces that form, for
weights trained with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from advdf.errors import ConfigError
from advdf.generators.base import Generator, check_image_size, check_positive
from advdf.generators.registry import register_discriminator, register_generator


def _variance(x: torch.Tensor, dims: tuple[int, ...], nested: bool) -> torch.Tensor:
    if not nested:
        return x.var(dims, keepdim=True)
    for d in dims:
        x = x.var(d, keepdim=True)
    return x


def _instance_layer_norm(x: torch.Tensor, rho: torch.Tensor, eps: float, nested: bool) -> torch.Tensor:
    """rho * instance-normalized x + (1 - rho) * layer-normalized x."""
    x_in = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(_variance(x, (2, 3), nested) + eps)
    x_ln = (x - x.mean((1, 2, 3), keepdim=True)) / torch.sqrt(_variance(x, (1, 2, 3), nested) + eps)
    return rho * x_in + (1 - rho) * x_ln


class AdaILN(nn.Module):
    """Adaptive layer-instance normalization: the mix ``rho`` is learned, the affine (gamma, beta) comes from the
    CAM features (the official ``adaILN``)."""

    def __init__(self, channels: int, eps: float = 1e-5, nested_variance: bool = False) -> None:
        super().__init__()
        self.eps, self.nested_variance = eps, nested_variance
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        x = _instance_layer_norm(x, self.rho, self.eps, self.nested_variance)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


class ILN(nn.Module):
    """Layer-instance normalization with learned ``rho``, ``gamma`` and ``beta`` (the official ``ILN``)."""

    def __init__(self, channels: int, eps: float = 1e-5, nested_variance: bool = False) -> None:
        super().__init__()
        self.eps, self.nested_variance = eps, nested_variance
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _instance_layer_norm(x, self.rho, self.eps, self.nested_variance) * self.gamma + self.beta


class ResnetBlock(nn.Module):
    """Reflection-padded conv 3x3, InstanceNorm, ReLU, again without the ReLU, plus the input (``conv_block``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False), nn.InstanceNorm2d(dim), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False), nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetAdaILNBlock(nn.Module):
    """The residual block of the decoder, normalized by AdaILN with the CAM's gamma and beta."""

    def __init__(self, dim: int, nested_variance: bool = False) -> None:
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False)
        self.norm1 = AdaILN(dim, nested_variance=nested_variance)
        self.relu1 = nn.ReLU()
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False)
        self.norm2 = AdaILN(dim, nested_variance=nested_variance)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(out)), gamma, beta)


def _cam(x: torch.Tensor, gap_fc: nn.Module, gmp_fc: nn.Module, gap_weight: torch.Tensor,
         gmp_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The CAM logits (N, 2) and the two weighted feature maps concatenated (N, 2C, H, W)."""
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
    weighted = torch.cat([x * gap_weight[:, :, None, None], x * gmp_weight[:, :, None, None]], dim=1)
    return torch.cat([gap_logit, gmp_logit], dim=1), weighted


class UGATIT(Generator):
    """U-GAT-IT's CelebA -> anime generator (unconditional: its one domain is "anime").

    Args:
        image_size: side of the square input, divisible by 4; the full version's ``FC`` is built for it.
        ngf: width of the first convolution (official 64).
        n_blocks: residual blocks before and after the CAM (official 4).
        light: the light version (``FC`` on the pooled features; official full).
        attributes: must be empty (accepted so that every generator config lists its attributes).
        nested_variance: (Ada)ILN with the variance of variances of one official version (module docstring).

    :meth:`forward` returns the image; :meth:`forward_full` also the CAM logits and the heatmap, which training
    needs.
    """

    name = "ugatit"
    checkpoint_key = "genA2B"

    def __init__(self, image_size: int = 256, ngf: int = 64, n_blocks: int = 4, light: bool = False,
                 attributes: Sequence[str] = (), nested_variance: bool = False) -> None:
        if len(attributes):
            raise ConfigError(f"{self.name} is unconditional: it takes no attributes, got {list(attributes)}")
        check_image_size(self.name, image_size, 4, minimum=8)
        check_positive(self.name, ngf=ngf)
        if not isinstance(n_blocks, int) or n_blocks < 0:
            raise ConfigError(f"{self.name} needs a non-negative integer n_blocks, got {n_blocks!r}")
        super().__init__(image_size, (), ("anime",))
        self.light = bool(light)
        self.n_blocks = n_blocks
        dim = ngf * 4
        down: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, 1, 0, bias=False),
                                 nn.InstanceNorm2d(ngf), nn.ReLU()]
        for i in range(2):
            width = ngf * 2**i
            down += [nn.ReflectionPad2d(1), nn.Conv2d(width, width * 2, 3, 2, 0, bias=False),
                     nn.InstanceNorm2d(width * 2), nn.ReLU()]
        down += [ResnetBlock(dim) for _ in range(n_blocks)]
        self.DownBlock = nn.Sequential(*down)
        self.gap_fc = nn.Linear(dim, 1, bias=False)
        self.gmp_fc = nn.Linear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(dim * 2, dim, 1, 1)
        self.relu = nn.ReLU()
        fc_in = dim if self.light else (image_size // 4) ** 2 * dim
        self.FC = nn.Sequential(nn.Linear(fc_in, dim, bias=False), nn.ReLU(), nn.Linear(dim, dim, bias=False),
                                nn.ReLU())
        self.gamma = nn.Linear(dim, dim, bias=False)
        self.beta = nn.Linear(dim, dim, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(dim, nested_variance))
        up: list[nn.Module] = []
        for i in range(2):
            width = ngf * 2**(2 - i)
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(width, width // 2, 3, 1, 0, bias=False), ILN(width // 2, nested_variance=nested_variance),
                   nn.ReLU()]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, 1, 0, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def condition(self, attrs: torch.Tensor, domain: int) -> None:
        if not 0 <= int(domain) < len(self.domains):
            raise ConfigError(f"{self.name} has {len(self.domains)} domain, got domain {domain}")
        return None

    def forward_full(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image, cam_logit, heatmap)`` as the official forward returns: the translated image (N, 3, S, S), the
        CAM logits (N, 2) and the heatmap (N, 1, S/4, S/4)."""
        self._check_input(x, 4)
        if not self.light and x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"{self.name} (full version) is built for {self.image_size} px, got {tuple(x.shape)}")
        h = self.DownBlock(x)
        cam_logit, h = _cam(h, self.gap_fc, self.gmp_fc, self.gap_fc.weight, self.gmp_fc.weight)
        h = self.relu(self.conv1x1(h))
        heatmap = h.sum(1, keepdim=True)
        style = self.FC(F.adaptive_avg_pool2d(h, 1).flatten(1) if self.light else h.flatten(1))
        gamma, beta = self.gamma(style), self.beta(style)
        for i in range(self.n_blocks):
            h = getattr(self, f"UpBlock1_{i + 1}")(h, gamma, beta)
        return self.UpBlock2(h), cam_logit, heatmap

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The translated image; ``c`` is ignored (U-GAT-IT is unconditional)."""
        return self.forward_full(x)[0]

    def clip_rho_(self) -> None:
        """Clamp every (Ada)ILN ``rho`` to [0, 1], as the official training does after each generator step."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (AdaILN, ILN)):
                    module.rho.clamp_(0, 1)


class UGATITDiscriminator(nn.Module):
    """One of U-GAT-IT's discriminators (the official ``Discriminator``).

    Args:
        image_size: side of the square input, divisible by 2**(n_layers - 2) with at least 3 pixels left there.
        ndf: width of the first convolution (official 64).
        n_layers: 7 for the global discriminator, 5 for the local one (set by ``kind`` when not given).
        kind: ``"global"`` or ``"local"``; picks the default ``n_layers`` and the official checkpoint entry:
            ``disGB`` / ``disLB``, the discriminators of domain B, which judge genA2B's outputs (the generator advdf
            attacks).

    Returns ``(out, cam_logit, heatmap)``: patch logits (N, 1, h, w), CAM logits (N, 2) and the heatmap (N, 1, h', w').
    """

    name = "ugatit discriminator"

    def __init__(self, image_size: int = 256, ndf: int = 64, n_layers: int | None = None,
                 kind: str = "global") -> None:
        if kind not in ("global", "local"):
            raise ConfigError(f"{self.name} kind must be 'global' or 'local', got {kind!r}")
        n_layers = (7 if kind == "global" else 5) if n_layers is None else n_layers
        if not isinstance(n_layers, int) or n_layers < 3:
            raise ConfigError(f"{self.name} needs an integer n_layers >= 3, got {n_layers!r}")
        check_positive(self.name, ndf=ndf)
        check_image_size(self.name, image_size, 2 ** (n_layers - 2), minimum=3 * 2 ** (n_layers - 2))
        super().__init__()
        self.image_size, self.kind = image_size, kind
        self.checkpoint_key = "disGB" if kind == "global" else "disLB"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(3, ndf, 4, 2, 0)),
                                   nn.LeakyReLU(0.2)]
        for i in range(1, n_layers - 2):
            width = ndf * 2 ** (i - 1)
            layers += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(width, width * 2, 4, 2, 0)), nn.LeakyReLU(0.2)]
        width = ndf * 2 ** (n_layers - 3)
        layers += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(width, width * 2, 4, 1, 0)), nn.LeakyReLU(0.2)]
        dim = width * 2
        self.gap_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.gmp_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.conv1x1 = nn.Conv2d(dim * 2, dim, 1, 1)
        self.leaky_relu = nn.LeakyReLU(0.2)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = spectral_norm(nn.Conv2d(dim, 1, 4, 1, 0, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.model(x)
        # The official code weights the feature map by the first parameter of each head, which under spectral
        # norm is the unnormalized ``weight_orig`` (the logits use the normalized weight).
        cam_logit, h = _cam(h, self.gap_fc, self.gmp_fc, self.gap_fc.weight_orig, self.gmp_fc.weight_orig)
        h = self.leaky_relu(self.conv1x1(h))
        heatmap = h.sum(1, keepdim=True)
        return self.conv(self.pad(h)), cam_logit, heatmap


@register_generator
def ugatit(image_size: int = 256, **kwargs) -> UGATIT:
    return UGATIT(image_size=image_size, **kwargs)


@register_discriminator
def ugatit_discriminator(image_size: int = 256, **kwargs) -> UGATITDiscriminator:
    return UGATITDiscriminator(image_size=image_size, **kwargs)
