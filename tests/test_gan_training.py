"""Training of seed 003's generators and of their attribute classifier through the real job (``ensure_run``): run
directories and exported weights that load strictly, reuse, resumption after a kill, finite losses, the gradient
penalty, StarGAN's target labels, a classifier that learns, and the edit report's keys and ranges."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from advdf.data.celeba_faces import HAIR_COLOURS
from advdf.data.synthetic_celeba import generate_synthetic_celeba
from advdf.errors import ConfigError
from advdf.generators import create_generator
from advdf.jobs.generator_eval import ATTRIBUTE_KEYS, STYLE_KEYS, edit_report
from advdf.jobs.plan import compose_config, ensure_run
from advdf.jobs.train_generator import load_classifier
from advdf.lit import GANModule, StarGANModule, gradient_penalty

N_IMAGES = 64
# Tiny versions at 32 px: two training batches of 8, one generator step (n_critic 2), one validation batch.
TRAINER = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
           "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none"]
TINY = {
    "stargan": ["generator.conv_dim=8", "generator.repeat_num=1", "module.discriminator.conv_dim=8",
                "module.discriminator.repeat_num=4"],
    "attgan": ["generator.enc_dim=8", "generator.dec_dim=8", "generator.enc_layers=3", "generator.dec_layers=3",
               "module.discriminator.dim=8", "module.discriminator.fc_dim=16", "module.discriminator.n_layers=4"],
    "stgan": ["generator.enc_dim=8", "generator.dec_dim=8", "generator.stu_dim=8", "generator.n_layers=3",
              "module.discriminator.dim=8", "module.discriminator.fc_dim=16", "module.discriminator.n_layers=4"],
    "ugatit": ["generator.ngf=8", "generator.n_blocks=1", "generator.light=true", "module.discriminator.ndf=8",
               "module.discriminator.n_layers=5", "module.discriminator_local.ndf=8",
               "module.discriminator_local.n_layers=4"],
}
NAMES = tuple(TINY)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An artifacts directory, a synthetic tree of 64 images, and one intra-op thread (tiny networks)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    root = generate_synthetic_celeba(artifacts / "celeba", n_images=N_IMAGES)
    saved = {k: os.environ.get(k) for k in ("ADVDF_ARTIFACTS", "WANDB_MODE")}
    os.environ.update(ADVDF_ARTIFACTS=str(artifacts), WANDB_MODE="disabled")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"artifacts": artifacts, "data": [f"data.root={root}", f"data.synthetic.n_images={N_IMAGES}",
                                            "data.image_size=32", "data.batch_size=8"]}
    torch.set_num_threads(threads)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def generator_cfg(env, name: str, *extra: str):
    return compose_config("train", ["task=generator", f"generator={name}", *env["data"], *TRAINER, *TINY[name],
                                    "module.n_critic=2", *extra])


def classifier_cfg(env, *extra: str):
    return compose_config("train", ["task=attribute_classifier", *env["data"], *TRAINER,
                                    "module.classifier.width=8", "module.classifier.depth=3", *extra])


@pytest.fixture(scope="module")
def classifier(env):
    """The attribute classifier (with its style logit) after a short fit on the 52 training images."""
    return ensure_run(classifier_cfg(env, "trainer.max_epochs=8", "~trainer.limit_train_batches"))


@pytest.fixture(scope="module")
def trained(env, classifier):
    """Each generator after its two training batches (trained after the classifier, so it is judged)."""
    return {name: ensure_run(generator_cfg(env, name)) for name in NAMES}


# --- the gradient penalty and the target labels ----------------------------------------------------------------
def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4) * 0.3  # ||w|| is about 1.2, so the penalty is far from 0 and from 1

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1) + 0.7

    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    expected = (w.norm() - 1) ** 2
    gp = gradient_penalty(critic, real, fake)
    assert gp > 0 and gp.item() == pytest.approx(expected.item(), rel=1e-5)
    # a PatchGAN map is differentiated through its sum: two patches scoring <w, x> each double the gradient
    gp2 = gradient_penalty(lambda x: critic(x)[:, None].expand(-1, 2), real, fake)
    assert gp2.item() == pytest.approx(((2 * w.norm() - 1) ** 2).item(), rel=1e-5)
    # the penalty trains the critic: it has a gradient with respect to the critic's weights
    w.requires_grad_(True)
    (grad,) = torch.autograd.grad(gradient_penalty(critic, real, fake), w)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_stargan_targets_are_the_batch_labels_reordered_so_hair_stays_one_hot(env):
    cfg = generator_cfg(env, "stargan")
    module = instantiate(cfg.module, generator=instantiate(cfg.generator))
    dm = instantiate(cfg.data)
    _, labels = next(iter(dm.loader("train", batch_size=40)))
    attrs = module.generator_attributes(labels)
    hair = [module.generator.attributes.index(h) for h in HAIR_COLOURS if h in module.generator.attributes]
    assert attrs[:, hair].sum(1).max() <= 1  # the data: at most one hair colour
    torch.manual_seed(0)
    for _ in range(5):
        targets = module.sample_targets(attrs)
        assert targets[:, hair].sum(1).max() <= 1
        assert sorted(map(tuple, targets.tolist())) == sorted(map(tuple, attrs.tolist()))  # the same rows
    assert not torch.equal(targets, attrs)


@pytest.mark.parametrize("name", NAMES)
def test_losses_are_finite_and_the_penalty_positive(env, name):
    cfg = generator_cfg(env, name)
    torch.manual_seed(0)
    module: GANModule = instantiate(cfg.module, generator=instantiate(cfg.generator))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    attrs = module.generator_attributes(torch.randint(0, 2, (4, len(cfg.data.attributes))).float())
    targets = module.sample_targets(attrs)
    d_parts, g_parts = module.discriminator_losses(x, attrs, targets), module.generator_losses(x, attrs, targets)
    assert all(torch.isfinite(v) for v in [*d_parts.values(), *g_parts.values()])
    if "gp" in d_parts:  # the WGAN-GP models (U-GAT-IT trains with LSGAN)
        assert d_parts["gp"] > 0


# --- the job ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_generator_run_exports_weights_that_load_strictly(env, trained, name):
    run = trained[name]
    assert not run.reused and run.kind == "generator"
    assert run.directory.parent == env["artifacts"] / "checkpoints" / "celeba_synthetic" / "generators"
    assert run.directory.name.startswith(f"{name}_32px-") and run.weights.name == "generator.safetensors"
    cfg = generator_cfg(env, name)
    generator = instantiate(cfg.generator, checkpoint_path=str(run.weights))  # strict: raises on any mismatch
    assert generator.name == name
    state = load_file(str(run.weights))
    assert all(torch.equal(state[k], v) for k, v in generator.state_dict().items())
    kwargs = {k.split(".", 1)[1].split("=")[0]: json.loads(k.split("=", 1)[1]) for k in TINY[name]
              if k.startswith("generator.")}
    assert create_generator(name, image_size=32, checkpoint_path=run.weights, **kwargs).name == name
    instantiate(cfg.module.discriminator, checkpoint_path=str(run.directory / "discriminator.safetensors"))
    summary = json.loads((run.directory / "train_summary.json").read_text())
    assert summary["best_checkpoint"] is None  # a GAN exports its last weights
    assert {"test/rec_l1", "test/moved_l1", "test/edit_success", "test/edit_success_identity",
            "test/edit_moved_l1", "test/edit_preservation"} <= set(summary["metrics"])
    assert all(v == v and abs(v) < 1e6 for v in summary["metrics"].values())  # finite
    assert summary["evaluation"]["classifier"]["run"] == classifier_run(env).name


def classifier_run(env) -> Path:
    (run,) = (env["artifacts"] / "checkpoints" / "celeba_synthetic" / "attribute_classifiers").iterdir()
    return run


def test_a_rerun_reuses_the_finished_runs(env, trained, classifier):
    again = ensure_run(generator_cfg(env, "attgan"))
    assert again.reused and again.directory == trained["attgan"].directory
    assert ensure_run(classifier_cfg(env, "trainer.max_epochs=8", "~trainer.limit_train_batches")).reused
    other_seed = generator_cfg(env, "attgan", "seed=1")
    from advdf.jobs.runs import run_of

    assert run_of(other_seed).directory != trained["attgan"].directory  # another seed: a run of its own


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_its_last_checkpoint(env, monkeypatch, caplog):
    cfg = generator_cfg(env, "stargan", "trainer.max_epochs=2", "seed=7")

    def kill_in_second_epoch(self):
        if self.current_epoch == 1:
            raise Killed

    monkeypatch.setattr(StarGANModule, "on_train_epoch_start", kill_in_second_epoch, raising=False)
    with pytest.raises(Killed):
        ensure_run(cfg)
    from advdf.jobs.runs import run_of

    run = run_of(cfg)
    assert (run.directory / "last.ckpt").is_file() and not run.weights.is_file()
    assert torch.load(run.directory / "last.ckpt", weights_only=True)["gan_iterations"] == 2
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="advdf.jobs.common"):
        resumed = ensure_run(generator_cfg(env, "stargan", "trainer.max_epochs=2", "seed=7"))
    assert not resumed.reused and resumed.directory == run.directory
    assert f"resuming from {run.directory / 'last.ckpt'}" in caplog.text
    last = torch.load(run.directory / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and last["gan_iterations"] == 4  # the second epoch's two steps on top of the first's
    assert json.loads((run.directory / "train_summary.json").read_text())["epochs"] == 2


def test_a_mismatched_image_size_is_a_one_line_error(env):
    cfg = generator_cfg(env, "stargan", "generator.image_size=64")
    with pytest.raises(ConfigError, match="generator.image_size=64 but data.image_size=32"):
        ensure_run(cfg)


# --- the classifier and the edit report ------------------------------------------------------------------------
def test_the_attribute_classifier_learns_the_synthetic_attributes(env, classifier):
    model = load_classifier(classifier.weights)
    cfg = classifier_cfg(env)
    dm = instantiate(cfg.data)
    x, labels = next(iter(dm.loader("train", batch_size=64)))
    with torch.no_grad():
        logits = model(x)
    n_attrs = len(model.attributes)
    accuracy = ((logits[:, :n_attrs] > 0) == labels.bool()).float().mean(0)
    chance = torch.maximum(labels.mean(0), 1 - labels.mean(0))  # always answering the majority value
    assert accuracy.mean() > chance.mean() + 0.05, (accuracy, chance)
    with torch.no_grad():
        style = model(instantiate(cfg.module.domain_b)(x))[:, n_attrs]
    assert ((style > 0).float().mean() + (logits[:, n_attrs] <= 0).float().mean()) / 2 > 0.6  # tells the domains


@pytest.mark.parametrize("name", NAMES)
def test_the_edit_report_has_its_keys_and_values_in_range(env, trained, classifier, name):
    cfg = generator_cfg(env, name)
    module = instantiate(cfg.module, generator=instantiate(cfg.generator, checkpoint_path=str(trained[name].weights)))
    dm = instantiate(cfg.data)
    report = edit_report(module.generator, load_classifier(classifier.weights), dm,
                         domain_b=getattr(module, "domain_b", None))
    assert report["generator"] == name and report["n_images"] == len(dm.dataset("test"))
    assert list(report["domains"]) == list(module.generator.domains)
    keys = STYLE_KEYS if name == "ugatit" else ATTRIBUTE_KEYS
    assert report["kind"] == ("style" if name == "ugatit" else "attributes")
    for numbers in [*report["domains"].values(), report["mean"]]:
        assert set(numbers) == set(keys) - ({"n_edited"} if numbers is report["mean"] else set())
        for key, value in numbers.items():
            if key == "n_edited":
                assert 0 <= value <= report["n_images"]
            elif value is not None:
                assert 0 <= value <= (2 if "l1" in key or "distance" in key else 1), (key, value)
    assert module.generator.training  # the report restores the mode it found
