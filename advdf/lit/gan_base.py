"""What the LightningModules of seed 003's generators share: the WGAN-GP gradient penalty, the critic-steps loop with
manual optimization, the two optimizers, and validation / test metrics with an image grid.

A module holds the trained translator as ``generator`` and the discriminator that judges its outputs as
``discriminator``, the names :func:`advdf.generators.create_generator` and ``create_discriminator`` look for in a
Lightning checkpoint.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchvision.utils import make_grid

from advdf.errors import ConfigError
from advdf.generators import Generator


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): ``mean((||d critic(x_hat) / d x_hat||_2 - 1)^2)`` at points
    ``x_hat`` drawn uniformly on the segment between each real sample and the fake one paired with it.

    ``critic`` returns the critic's scores (any shape per sample, e.g. a PatchGAN map); their sum is differentiated,
    as StarGAN's ``gradient_penalty`` does with ``grad_outputs`` of ones. The graph is kept (``create_graph``) so
    the penalty trains the critic. A 1e-12 under the square root keeps its gradient finite at a zero gradient.
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).pow(2).sum(1).add(1e-12).sqrt()
    return (norm - 1).pow(2).mean()


def attribute_columns(data_attributes: Sequence[str], wanted: Sequence[str], who: str) -> list[int]:
    """Column of each of ``wanted`` in the data's attribute vector; a one-line ConfigError names the missing ones."""
    data_attributes = list(data_attributes)
    missing = [a for a in wanted if a not in data_attributes]
    if missing:
        raise ConfigError(f"{who} is conditioned on {missing}, which data.attributes does not list "
                          f"({data_attributes})")
    return [data_attributes.index(a) for a in wanted]


class GANModule(pl.LightningModule, abc.ABC):
    """Adversarial training of a :class:`advdf.generators.Generator` (manual optimization).

    Each training batch first draws the targets of the iteration (:meth:`sample_targets`); the discriminators then
    take one step on :meth:`discriminator_losses`, and after every ``n_critic``-th such step the generators take one
    on :meth:`generator_losses` with the same batch and targets (StarGAN's solver; AttGAN's script gives the
    generator step a batch of its own, which only changes which images it sees). The discriminators are frozen during
    the generator step, so no gradient is spent on them. Losses are logged as ``train/d_<part>`` and
    ``train/g_<part>``.

    Validation and test report ``<stage>/rec_l1``, the mean |x_rec - x| of the model's reconstruction (its own
    definition, :meth:`reconstruct`), and ``<stage>/moved_l1``, the mean |G(x, c) - x| over its attack domains; the
    first batch's translations go to the loggers that take images (TensorBoard, W&B) as ``<stage>/samples``.

    No validation number says which epoch of a GAN is best, so ``selectable_epoch`` is False: no ``best.ckpt`` is
    kept and the job exports the last weights.

    Args:
        generator: the translator being trained (kept as ``generator``).
        discriminator: the discriminator that judges its outputs (kept as ``discriminator``).
        optimizer_g, optimizer_d: ``params -> Optimizer`` (Hydra ``_partial_``) for the generators and the
            discriminators.
        data_attributes: the names of the data's attribute vector, in order; the generator's attributes are picked
            from it by name.
        n_critic: discriminator steps per generator step.
        grid_images: images per row of the logged sample grid (0: none).
    """

    selectable_epoch = False
    generator_type: type = Generator  # what a subclass trains: its generator and discriminator classes
    discriminator_type: type = nn.Module

    def __init__(self, generator: Generator, discriminator: nn.Module,
                 optimizer_g: Callable[..., torch.optim.Optimizer], optimizer_d: Callable[..., torch.optim.Optimizer],
                 data_attributes: Sequence[str], n_critic: int = 5, grid_images: int = 8) -> None:
        super().__init__()
        if not isinstance(generator, self.generator_type) or not isinstance(discriminator, self.discriminator_type):
            raise ConfigError(f"{type(self).__name__} trains a {self.generator_type.__name__} with a "
                              f"{self.discriminator_type.__name__}, got {type(generator).__name__} and "
                              f"{type(discriminator).__name__}")
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ConfigError(f"module.n_critic={n_critic!r}: must be an integer of at least 1")
        if isinstance(grid_images, bool) or not isinstance(grid_images, int) or grid_images < 0:
            raise ConfigError(f"module.grid_images={grid_images!r}: must be a non-negative integer")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_g_factory, self.optimizer_d_factory = optimizer_g, optimizer_d
        self.data_attributes = tuple(data_attributes)
        self.columns = attribute_columns(self.data_attributes, generator.attributes, generator.name)
        self.n_critic = n_critic
        self.grid_images = grid_images
        self.iterations = 0  # discriminator steps taken (saved in checkpoints, so a resumed run keeps the rhythm)
        self.val_means = nn.ModuleDict({"rec_l1": MeanMetric(), "moved_l1": MeanMetric()})
        self.test_means = nn.ModuleDict({"rec_l1": MeanMetric(), "moved_l1": MeanMetric()})

    def check_head(self, width: int, option: str) -> None:
        """ConfigError unless the discriminator's attribute head (``option``, of ``width`` outputs) has one output
        per generator attribute."""
        if width != len(self.generator.attributes):
            raise ConfigError(f"{option}={width} but the generator has {len(self.generator.attributes)} attributes "
                              f"({list(self.generator.attributes)})")

    # --- what each model defines ---------------------------------------------------------------------------
    def sample_targets(self, attrs: torch.Tensor) -> torch.Tensor:
        """The target attributes of an iteration for source attributes ``attrs`` (N, A) in {0, 1}: the batch's own
        rows in a random order (StarGAN's and AttGAN's training scripts), so every target is a real combination."""
        return attrs[torch.randperm(attrs.shape[0], device=attrs.device)]

    @abc.abstractmethod
    def discriminator_losses(self, x: torch.Tensor, attrs: torch.Tensor, targets: torch.Tensor
                             ) -> dict[str, torch.Tensor]:
        """The discriminators' loss parts for images ``x`` with attributes ``attrs`` and ``targets``; ``loss`` is
        what is minimized."""

    @abc.abstractmethod
    def generator_losses(self, x: torch.Tensor, attrs: torch.Tensor, targets: torch.Tensor
                         ) -> dict[str, torch.Tensor]:
        """The generators' loss parts; ``loss`` is what is minimized."""

    @abc.abstractmethod
    def reconstruct(self, x: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """The model's reconstruction of ``x`` (its reconstruction or cycle loss's output)."""

    def translations(self, x: torch.Tensor, attrs: torch.Tensor) -> list[torch.Tensor]:
        """G(x, c) for the condition of each attack domain, in the order of ``generator.domains``."""
        return [self.generator(x, c) for c in self.generator.conditions(attrs)]

    def generator_modules(self) -> list[nn.Module]:
        return [self.generator]

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.discriminator]

    def after_generator_step(self) -> None:
        """Called after each generator step (U-GAT-IT clips its rho there)."""

    # --- training ------------------------------------------------------------------------------------------
    def generator_attributes(self, attrs: torch.Tensor) -> torch.Tensor:
        """The columns of the data's attribute vector that the generator is conditioned on, in its order."""
        return attrs[:, self.columns].float()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, data_attrs = batch
        attrs = self.generator_attributes(data_attrs)
        targets = self.sample_targets(attrs)
        opt_g, opt_d = self.optimizers()
        d_parts = self.discriminator_losses(x, attrs, targets)
        self._check_finite(d_parts, "discriminator")
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_parts["loss"])
        opt_d.step()
        logs = {f"train/d_{k}": v.detach() for k, v in d_parts.items()}
        self.iterations += 1
        if self.iterations % self.n_critic == 0:
            with _frozen(self.discriminator_modules()):
                g_parts = self.generator_losses(x, attrs, targets)
                self._check_finite(g_parts, "generator")
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_parts["loss"])
                opt_g.step()
            self.after_generator_step()
            logs.update({f"train/g_{k}": v.detach() for k, v in g_parts.items()})
        self.log_dict(logs, on_step=True, on_epoch=True, batch_size=x.shape[0])

    def _check_finite(self, parts: dict[str, torch.Tensor], who: str) -> None:
        bad = [k for k, v in parts.items() if not bool(torch.isfinite(v.detach()).all())]
        if bad:
            raise FloatingPointError(f"{self.generator.name}: non-finite {who} loss ({', '.join(bad)}) at iteration "
                                     f"{self.iterations}; the run diverged (try a lower learning rate)")

    def configure_optimizers(self):
        params_g = [p for m in self.generator_modules() for p in m.parameters()]
        params_d = [p for m in self.discriminator_modules() for p in m.parameters()]
        return self.optimizer_g_factory(params_g), self.optimizer_d_factory(params_d)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan_iterations"] = self.iterations

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iterations = int(checkpoint.get("gan_iterations", 0))

    # --- validation and test -------------------------------------------------------------------------------
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str) -> None:
        x, data_attrs = batch
        attrs = self.generator_attributes(data_attrs)
        means = getattr(self, f"{stage}_means")
        means["rec_l1"].update(_l1(self.reconstruct(x, attrs), x))
        outs = self.translations(x, attrs)
        means["moved_l1"].update(torch.stack([_l1(o, x) for o in outs]).mean(0))
        for name, metric in means.items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=x.shape[0])
        if batch_idx == 0:
            self._log_grid(x, outs, stage)

    def _log_grid(self, x: torch.Tensor, outs: list[torch.Tensor], stage: str) -> None:
        """Inputs in the first row, one row per domain below, to the loggers that take images."""
        k = min(self.grid_images, x.shape[0])
        if k == 0 or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        rows = torch.cat([x[:k], *(o[:k] for o in outs)]).detach().float().cpu()
        grid = make_grid(rows.add(1).div(2).clamp(0, 1), nrow=k, padding=1)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # W&B
                logger.log_image(key=f"{stage}/samples", images=[grid], step=self.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
                logger.experiment.add_image(f"{stage}/samples", grid, self.global_step)


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute difference (N,)."""
    return (a - b).abs().flatten(1).mean(1)


class _frozen:
    """Turn off ``requires_grad`` of the modules' parameters inside the block (restored afterwards)."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.params = [p for m in modules for p in m.parameters()]

    def __enter__(self) -> None:
        self.saved = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc) -> None:
        for p, flag in zip(self.params, self.saved, strict=True):
            p.requires_grad_(flag)
