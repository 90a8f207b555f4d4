"""Compose every main config and every file of every config group; instantiate what builds an object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from advdf.attacks import Attack
from advdf.data.celeba import CelebADataModule
from advdf.data.datamodule import FFPPDataModule
from advdf.defenses.base import DEFENSES
from advdf.errors import CheckpointError
from advdf.forensics import DetectorView, ZoneAutoencoder
from advdf.models import Detector
from advdf.utils.entry import CONF_DIR, register_resolvers, user_error

MAIN = ("train", "attack", "evaluate")
WEIGHTS = "/runs/ffpp_synthetic/tiny_cnn_32px_base-0123456789ab/detector.safetensors"  # a detector run's weights


def group_files(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str], hydra_cfg: bool = False):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=name):
        return compose(name, overrides=overrides, return_hydra_config=hydra_cfg)


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))


@pytest.fixture
def real_root(tmp_path) -> Path:
    """A real-layout root without videos: a real root is identified by its split files and videos."""
    root = tmp_path / "FaceForensics++"
    (root / "splits").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}.json").write_text("[]")
    return root


def _fake_run(cfg, digest: str = "0123456789ab") -> Path:
    prefix = Path(cfg.paths.detector_prefix)
    run = prefix.with_name(f"{prefix.name}-{digest}")
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"kind": "detector", "settings": {"seed": int(digest[-1], 16)}}))
    return run


@pytest.mark.parametrize("name", MAIN)
def test_main_configs_resolve(name):
    cfg = _compose(name, [])
    if "checkpoint" in cfg.keys():  # attack.py and evaluate.py read the only detector run under the prefix
        run = _fake_run(cfg)
    OmegaConf.resolve(cfg)
    assert cfg.paths.detector_prefix.startswith(cfg.paths.artifacts_dir)
    assert Path(cfg.data.prepared_dir).parent == Path(cfg.paths.data_dir) / "prepared"
    assert Path(cfg.data.prepared_dir).name.startswith("ffpp_synthetic_c23_crop64_r8f2-")
    if "checkpoint" in cfg:
        assert cfg.checkpoint == str(run / "detector.safetensors")


def test_attack_config_finds_the_only_run_and_names_several():
    cfg = _compose("attack", [])
    with pytest.raises(Exception) as err:
        _ = cfg.checkpoint
    assert "no trained detector under" in str(user_error(err.value))
    first, second = _fake_run(cfg), _fake_run(cfg, "fedcba987654")
    with pytest.raises(Exception) as err:
        _ = cfg.checkpoint
    message = str(user_error(err.value))
    assert isinstance(user_error(err.value), CheckpointError) and "\n" not in message
    assert f"2 trained detector runs under {cfg.paths.detector_prefix}" in message
    assert f"{first.name} (seed=11)" in message and f"{second.name} (seed=4)" in message
    assert "paths.detector_run=<digest>" in message and "checkpoint=<run directory>/detector.safetensors" in message
    assert _compose("attack", ["paths.detector_run=fed"]).checkpoint == str(second / "detector.safetensors")
    assert _compose("attack", [f"checkpoint={WEIGHTS}"]).checkpoint == WEIGHTS


@pytest.mark.parametrize("model", group_files("model"))
def test_model_configs_build_detectors(model):
    # 96: a multiple of 32 (MesoNet) above Inception-v3's minimum of 75
    cfg = _compose("attack", [f"model={model}", "model.input_size=96"])
    detector = instantiate(cfg.model).eval()
    with torch.no_grad():
        if isinstance(detector, ZoneAutoencoder):  # seed 002's forensic autoencoders: a result, and a detector view
            out = detector(torch.rand(1, 3, 96, 96))
            assert out["logits"].shape == (1, 2) and out["recon"].shape == (1, 3, 96, 96)
            assert ("seg" in out) == detector.has_segmentation
            assert DetectorView(detector)(torch.rand(1, 3, 96, 96)).shape == (1, 2)
        else:
            assert isinstance(detector, Detector)
            assert detector(torch.rand(1, 3, 96, 96)).shape == (1, 2)
    # the normalization written in the config is the one inside the detector
    assert detector.mean.flatten().tolist() == pytest.approx(list(cfg.model.mean))
    assert detector.std.flatten().tolist() == pytest.approx(list(cfg.model.std))


def test_augment_augmix_sets_views_loss_and_variant():
    from advdf.data.augmix import AugMixViews

    plain, augmix = _compose("train", []), _compose("train", ["augment=augmix"])
    assert plain.variant == "base" and plain.data.augmix is None
    assert augmix.variant == "augmix" and augmix.module.jsd_weight == 12.0
    assert Path(augmix.paths.detector_prefix).name.endswith("_augmix")
    views = instantiate(augmix.data.augmix)
    assert isinstance(views, AugMixViews)
    datamodule = instantiate(augmix.data)
    assert datamodule.augmix is not None


def test_evaluate_config_finds_the_denoiser_run_of_its_detector():
    cfg = _compose("evaluate", ["+defense@defenses.hgd=hgd"])
    detector = _fake_run(cfg)
    denoiser = detector / "denoisers" / "hgd-00000000abcd"
    denoiser.mkdir(parents=True)
    (denoiser / "run.json").write_text(json.dumps({"kind": "denoiser", "settings": {}}))
    (detector / "denoisers" / "hgd_narrow-00000000abcd").mkdir()  # another name: not a run of hgd
    assert cfg.defenses.hgd.checkpoint == str(denoiser / "denoiser.safetensors")


@pytest.mark.parametrize("attack", group_files("attack"))
def test_attack_configs_build_attacks(attack, tiny_model, tiny_ffm, tiny_translators):
    cfg = _compose("attack", [f"attack={attack}"])
    cls = get_class(cfg.attack._target_)
    model = tiny_translators if cls.needs_generators else tiny_ffm if cls.needs_zones else tiny_model
    built = instantiate(cfg.attack)(model=model)
    assert isinstance(built, Attack) and built.name == attack
    if built.eps is None:  # minimum-norm attacks (C&W, DeepFool) run uncapped unless asked
        assert built.norm == "l2"
    elif cls.needs_generators:  # seed 003's budgets, given on the generators' [-1, 1] scale
        assert built.eps == pytest.approx(0.05 / 2) and cfg.attack.scale == 2
    elif "pixel_scale" in cfg.attack:  # seed 002's budgets, given on the 0-255 scale
        assert built.eps == pytest.approx(float(cfg.attack.eps) / cfg.attack.pixel_scale)
        assert cfg.attack.pixel_scale == 255
    else:
        assert built.eps == pytest.approx(16 / 255)


@pytest.mark.parametrize("defense", group_files("defense"))
def test_defense_configs_build_defenses(defense):
    cfg = _compose("evaluate", [f"defense@defenses.na={defense}"])
    if "checkpoint" in cfg.defenses.na:  # a learned denoiser: built untrained here (its weights come from train.py)
        cfg.defenses.na.checkpoint = None
    built = instantiate(cfg.defenses.na)
    assert type(built) in DEFENSES.values()


LEARNED = [d for d in group_files("defense") if "checkpoint" in OmegaConf.load(CONF_DIR / "defense" / f"{d}.yaml")]


def test_every_learned_defense_is_in_the_list():
    assert set(LEARNED) == {"dae", "hgd", "td"}


@pytest.mark.parametrize("defense", LEARNED)
def test_denoiser_task_composes_a_denoiser_module(defense, tiny_model):
    from advdf.jobs.runs import prefix_of
    from advdf.lit import DenoiserModule

    cfg = _compose("train", ["task=denoiser", f"defense={defense}", "model=tiny_cnn", f"checkpoint={WEIGHTS}"])
    assert cfg.trains == "denoiser" and list(cfg.denoiser_data.attacks) == ["fgsm", "pgd"]
    assert cfg.trainer.default_root_dir is None  # the job sets it to its run directory
    assert prefix_of(cfg) == Path(WEIGHTS).parent / "denoisers" / defense
    with pytest.raises(Exception) as err:  # evaluation reads the only run of this name for that detector
        _ = cfg.defense.checkpoint
    assert f"no trained {defense} denoiser under {Path(WEIGHTS).parent}/denoisers/{defense}-<digest>" in str(
        user_error(err.value))
    module = instantiate(cfg.module, denoiser=instantiate(cfg.defense.denoiser), detector=tiny_model)
    assert isinstance(module, DenoiserModule) and module.guidance == cfg.defense.training.guidance
    x = torch.rand(2, 3, 32, 32)
    assert module(x).shape == x.shape


@pytest.mark.parametrize("task", group_files("task"))
def test_task_configs_pick_what_train_py_trains(task):
    cfg = _compose("train", [f"task={task}"])
    assert cfg.trains == task
    assert cfg.module._target_ == {"detector": "advdf.lit.DetectorModule", "denoiser": "advdf.lit.DenoiserModule",
                                   "adv_detector": "advdf.lit.AdversarialDetectorModule",
                                   "ffm": "advdf.lit.FFMModule",
                                   "attribute_classifier": "advdf.lit.AttributeClassifierModule",
                                   "generator": "advdf.lit.StarGANModule"}[task]  # the default generator
    # the training function is named by the task, so the generic train job imports no paper's code
    from hydra.utils import get_method

    assert callable(get_method(cfg.train_fn))


@pytest.mark.parametrize("xai", group_files("xai"))
def test_xai_configs_build_attribution_methods_named_as_their_file(xai, tiny_model):
    from advdf.jobs.runs import prefix_of
    from advdf.xai import Attribution

    cfg = _compose("train", ["task=adv_detector", f"xai={xai}", "model=tiny_cnn", f"checkpoint={WEIGHTS}"])
    method = instantiate(cfg.xai)
    assert isinstance(method, Attribution) and method.name == xai
    assert prefix_of(cfg) == Path(WEIGHTS).parent / "adv_detectors" / "detect_resnet50" / xai
    if xai == "integrated_gradients":
        method.n_steps = 2
    x = torch.rand(2, 3, 32, 32)
    assert method(tiny_model.eval(), x).shape == x.shape


@pytest.mark.parametrize("adv_detector", group_files("adv_detector"))
def test_adv_detector_configs_build_detect_resnet(adv_detector):
    from advdf.xai import DetectResNet50

    cfg = _compose("train", ["task=adv_detector", f"adv_detector={adv_detector}"])
    d = instantiate(cfg.adv_detector, pretrained=False, backbone="resnet18")
    assert isinstance(d, DetectResNet50) and d.name == adv_detector
    assert d.freeze_backbone == adv_detector.endswith("_head")
    assert cfg.adv_detector.backbone == "resnet50" and cfg.adv_detector.hidden == 512
    module = instantiate(cfg.module, detector=d)
    opt = module.configure_optimizers()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3) and opt.param_groups[0]["eps"] == pytest.approx(1e-8)
    trained = {id(p) for p in opt.param_groups[0]["params"]}
    assert ({id(p) for p in d.backbone.parameters()} <= trained) != d.freeze_backbone
    assert {id(p) for p in d.head.parameters()} <= trained


@pytest.mark.parametrize("option", group_files("xai_attacks"))
def test_xai_attacks_push_fakes_toward_real_inside_16_255(option, tiny_model):
    cfg = _compose("train", ["task=adv_detector", f"xai_attacks={option}"])
    assert set(cfg.xai_attacks) == {"pgd", "apgd", "square", "nes"}
    for conf in cfg.xai_attacks.values():
        attack = instantiate(conf)(model=tiny_model)
        assert attack.eps == pytest.approx(16 / 255) and attack.targeted and attack.target == 0
    assert OmegaConf.to_container(cfg.adv_data.attack, resolve=True) == OmegaConf.to_container(
        cfg.xai_attacks.pgd, resolve=True)  # the training attack is the PGD test attack


@pytest.mark.parametrize("data", group_files("data"))
def test_data_configs_build_datamodules(data, real_root):
    cfg = _compose("train", [f"data={data}", f"data.root={real_root}"])
    dm = instantiate(cfg.data)
    if data.startswith("celeba"):  # seed 003's face-attribute data (tests/test_celeba.py builds it for real)
        assert isinstance(dm, CelebADataModule) and dm.image_size == cfg.data.image_size
        return
    assert isinstance(dm, FFPPDataModule)
    assert dm.input_size == cfg.model.input_size
    assert dm.prepared_dir.name.startswith(f"{cfg.data.name}_{cfg.data.compression}_crop{cfg.data.crop_size}_")


def test_a_missing_real_root_is_named_when_the_config_is_resolved():
    cfg = _compose("train", ["data=ffpp_real", "data.root=/nonexistent/ffpp"])
    with pytest.raises(Exception) as err:
        instantiate(cfg.data)
    assert "data root /nonexistent/ffpp does not exist" in str(user_error(err.value))


@pytest.mark.parametrize("trainer", group_files("trainer"))
def test_trainer_configs_build_trainers(trainer, tmp_path):
    cfg = _compose("train", [f"trainer={trainer}", "trainer.accelerator=cpu", "logger=none"])
    if cfg.trainer.get("strategy") == "ddp":
        pytest.skip("a DDP trainer is built for real in test_ddp.py")
    built = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert built.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", group_files("logger"))
def test_logger_configs_build_loggers(logger, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = _compose("train", [f"logger={logger}"])
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    assert all(hasattr(lg, "log_metrics") for lg in loggers)


def test_module_config_builds_lightning_module(tiny_model):
    cfg = _compose("train", [])
    module = instantiate(cfg.module, detector=tiny_model)
    opt = module.configure_optimizers()
    assert opt["optimizer"].param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("experiment", group_files("experiment"))
@pytest.mark.parametrize("name", MAIN)
def test_experiments_compose_for_every_script(experiment, name, real_root):
    overrides = [f"experiment={experiment}", f"data.root={real_root}"]
    cfg = _compose(name, [*overrides, *([f"checkpoint={WEIGHTS}"] if name != "train" else [])])
    OmegaConf.resolve(cfg)
    # seed 002: models per data set; seed 003: generators
    assert cfg.reproduce.get("detectors") or cfg.reproduce.get("datasets") or cfg.reproduce.get("generators")


@pytest.mark.parametrize("launcher", group_files("hydra/launcher"))
def test_launcher_configs_compose(launcher):
    cfg = _compose("attack", [f"hydra/launcher={launcher}", "hydra.launcher.partition=debug"], hydra_cfg=True)
    assert "submitit" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.partition == "debug"


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match="attack.epsilon"):
        _compose("attack", ["attack.epsilon=0.1"])


def test_every_group_file_is_covered():
    covered = {"model", "attack", "defense", "data", "trainer", "logger", "experiment", "module", "augment",
               "paths", "hydra", "hydra/launcher", "task", "xai", "adv_detector", "xai_attacks", "generator",
               "callbacks"}  # callbacks: tests/test_callbacks.py
    groups = {str(p.parent.relative_to(CONF_DIR)) for p in Path(CONF_DIR).rglob("*.yaml") if p.parent != CONF_DIR}
    assert groups <= covered, f"config groups without a composition test: {groups - covered}"


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_shared_detectors_train_identically_across_reproduce_targets(scale, real_root):
    """Reproduce targets share a trained detector through its run directory: a detector listed by several
    experiments of one scale must get the same training overrides and size in each, and so the same run digest
    (the experiments' other settings, such as their test subsets, must not enter it), or it is trained twice."""
    from advdf.jobs.runs import run_of

    seen: dict[tuple[str, str, int], tuple[str, list]] = {}
    digests: dict[tuple[str, str, int], set[str]] = {}
    augmix_schedules: dict[str, object] = {}
    for experiment in (e for e in group_files("experiment") if e.endswith(f"_{scale}")):
        cfg = _compose("train", [f"experiment={experiment}", f"data.root={real_root}"])
        spec = cfg.reproduce
        if "augmix" in (spec.get("variants") or spec.get("columns") or []):
            schedule = spec.get("augmix_from_base")
            augmix_schedules[experiment] = None if schedule is None else list(schedule)
        # seed 002's plan (reproduce.datasets) trains its models on one manipulation's data set each: never shared
        plans = {**(spec.get("detectors") or {}), **(spec.get("seed001") or {})}
        for det, overrides in plans.items():
            size = (spec.get("input_size") or {}).get(det, cfg.model.input_size)
            key = (cfg.data.name, det, size)
            train = _compose("train", [f"experiment={experiment}", f"data.root={real_root}", f"model={det}",
                                       *([f"model.input_size={size}"] if size != cfg.model.input_size else []),
                                       *overrides])
            digests.setdefault(key, set()).add(run_of(train, identity_digest="the data").digest)
            if key in seen:
                other, other_overrides = seen[key]
                assert sorted(overrides) == sorted(other_overrides), (
                    f"{det} at {size} px trains with {list(overrides)} in {experiment} but {other_overrides} in {other}")
            else:
                seen[key] = (experiment, list(overrides))
    shared = {k: v for k, v in digests.items() if len(v) > 1}
    assert not shared, f"detectors shared by experiments of {scale} scale but trained as different runs: {shared}"
    assert len(augmix_schedules) >= 2, f"{scale}: Table 1 and Table 2 both train AugMix detectors"
    assert len({repr(v) for v in augmix_schedules.values()}) == 1, (
        f"{scale}: AugMix runs train differently across experiments ({augmix_schedules}), so they are trained twice")
