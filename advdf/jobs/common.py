"""Builders shared by the jobs: device, detector with weights, data module, loggers, checks of training options."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint

from advdf.data.datamodule import FFPPDataModule, check_data_options
from advdf.errors import CheckpointError, ConfigError
from advdf.lit.callbacks import BestCheckpoint, in_slurm_step  # noqa: F401 - BestCheckpoint's old import path
from advdf.models import Detector, load_detector_weights
from advdf.utils.entry import CONF_DIR
from advdf.utils.io import digest
from advdf.utils.logging_setup import default_wandb_mode

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} requested but only {torch.cuda.device_count()} CUDA devices exist")
    return device


def build_datamodule(cfg: DictConfig) -> FFPPDataModule:
    """The data module of ``cfg.data``, prepared and set up.

    A config that names a checkpoint resolves it first (its run may be ambiguous or missing), so such a mistake
    stops before any data is prepared.
    """
    datamodule = instantiate(cfg.data)
    if "checkpoint" in cfg.keys():
        _ = cfg.checkpoint
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _at_least(cfg: DictConfig, key: str, least: int, what: str, allowed: tuple = ()) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        extra = f" ({' or '.join(map(str, allowed))} also allowed)" if allowed else ""
        raise ConfigError(f"{key}={value}: must be an integer of at least {least} {what}{extra}")


def check_training_options(cfg: DictConfig) -> None:
    """Raise ConfigError with one line for a training option no run can use (zero epochs, empty batches, a callback
    value, SLURM tasks that are not the trainer's devices, ...), before any data is prepared or weights are read."""
    build_callbacks(cfg.get("callbacks"), out_dir=None)
    check_slurm_tasks(cfg)
    _at_least(cfg, "trainer.max_epochs", 1, "epoch")
    _at_least(cfg, "trainer.max_steps", 1, "step", allowed=(-1,))
    _at_least(cfg, "trainer.accumulate_grad_batches", 1, "batch")
    _at_least(cfg, "trainer.check_val_every_n_epoch", 1, "epoch")
    _at_least(cfg, "trainer.num_nodes", 1, "node")
    devices = OmegaConf.select(cfg, "trainer.devices", default=None)
    if isinstance(devices, int) and not isinstance(devices, bool):
        _at_least(cfg, "trainer.devices", 1, "device", allowed=(-1,))
    for key in ("batch_size", "shard_size", "denoiser_data.batch_size", "adv_data.batch_size",
                "denoiser_data.per_class", "adv_data.per_class", "limit"):
        _at_least(cfg, key, 1, "sample" if "batch" not in key else "sample per batch")
    for key in ("denoiser_data.val_fraction", "adv_data.val_fraction"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not 0 < value < 1:
            raise ConfigError(f"{key}={value}: must lie strictly between 0 and 1 (a share held out for validation)")
    data = cfg.data
    if "frames_per_video_real" not in data:  # CelebA (seed 003): CelebADataModule checks its options when built
        return
    check_data_options(data.batch_size, data.num_workers, data.crop_size, data.frames_per_video_real,
                       data.frames_per_video_fake, data.input_size, data.get("test_per_class"),
                       data.get("limit_per_split"))


def record_run_dir(cfg: DictConfig, run_dir: Path, extra: dict[str, str] | None = None) -> None:
    """Write where this run goes into ``cfg`` (``trainer.default_root_dir`` and the dotted keys of ``extra``), so
    the logged and recorded configs name the run directory rather than a prefix to search."""
    with open_dict(cfg):
        cfg.trainer.default_root_dir = str(run_dir)
        for key, value in (extra or {}).items():
            OmegaConf.update(cfg, key, value, merge=False)


def load_trained_detector(cfg: DictConfig, device: torch.device) -> Detector:
    """The detector of ``cfg.model`` with the weights at ``cfg.checkpoint``, in eval mode on ``device``."""
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"no trained detector at {path}; train it first: python train.py model={cfg.model.name} "
            f"(with the same data/model settings)"
        )
    detector = instantiate(cfg.model)
    try:
        load_detector_weights(detector, path)
    except CheckpointError as err:
        raise CheckpointError(f"model={cfg.model.name}: {err}") from None
    return detector.to(device).eval()


WANDB_GROUP_ENV = "ADVDF_WANDB_GROUP"  # a reproduce run's W&B group: its training jobs join it (papers.reproduce)


def build_loggers(cfg: DictConfig, run_name: str | None = None, group: str | None = None) -> list:
    """Instantiate ``cfg.logger`` entries; W&B gets a per-job name, defaults to offline without a key and, in a
    SLURM job, the job's run id (:func:`slurm_run_id`), so a requeued job continues its W&B run. Inside a reproduce
    run (its group in ``$ADVDF_WANDB_GROUP``, inherited by its stage jobs) the W&B run joins that group."""
    os.environ.setdefault("WANDB_MODE", default_wandb_mode())
    group = os.environ.get(WANDB_GROUP_ENV) or group
    loggers = []
    for conf in (cfg.get("logger") or {}).values():
        extra = {}
        if "WandbLogger" in conf.get("_target_", ""):
            Path(conf.save_dir).mkdir(parents=True, exist_ok=True)
            extra = {"name": run_name, "group": group, "job_type": cfg.task_name}
            run_id = None if conf.get("id") else slurm_run_id(run_name, group)
            if run_id:
                extra.update(id=run_id, resume="allow")
        logger = instantiate(conf, **extra)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def slurm_run_id(run_name: str | None, group: str | None) -> str | None:
    """A W&B run id for this SLURM job: the same in every start of a requeued job (SLURM keeps the job's id), other
    for another job, cluster or Hydra job; None outside a SLURM job step (every start a run of its own)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or not in_slurm_step():
        return None
    return "slurm-" + digest({"cluster": os.environ.get("SLURM_CLUSTER_NAME"), "job": job, "run": run_name,
                              "group": group}, length=16)


def job_identity() -> tuple[str | None, str | None]:
    """(run name, group) for this Hydra job: multirun jobs get their number and overrides, one run each."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    overrides = ",".join(hc.overrides.task) or "defaults"
    if hc.mode.name == "MULTIRUN":
        return f"{hc.job.name}#{hc.job.num}:{overrides}", Path(hc.sweep.dir).name
    return f"{hc.job.name}:{overrides}", None


# The callbacks the jobs need, by their key in conf/callbacks, and the file each writes in the run directory.
REQUIRED_CALLBACKS = {"model_checkpoint": "its best.ckpt holds the weights a run exports",
                      "last_checkpoint": "a resumed or requeued job continues from its last.ckpt"}
CALLBACK_FILES = {"model_checkpoint": "best", "last_checkpoint": "last", "requeue": "last"}


def default_callbacks() -> DictConfig:
    """``conf/callbacks``' two checkpoints, for a config composed without a ``callbacks`` group."""
    return OmegaConf.merge(*(OmegaConf.load(CONF_DIR / "callbacks" / f"{key}.yaml") for key in REQUIRED_CALLBACKS))


def build_callbacks(callbacks: DictConfig | None, out_dir: Path | None, with_logger: bool = True) -> dict:
    """The Lightning callbacks of ``callbacks`` (``cfg.callbacks``) by key, writing into ``out_dir``.

    The jobs set ``dirpath`` (the run directory) and ``filename`` (:data:`CALLBACK_FILES`): they read
    ``<run dir>/best.ckpt`` and ``last.ckpt``, so a config must not move them. A ``null`` entry is off; so is a
    Timer without a duration, and a learning-rate monitor without a logger (Lightning refuses one). A missing
    required checkpoint, a misplaced one or a value the callback refuses is a ConfigError with one line.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import get_class
    from pytorch_lightning.callbacks import Callback, LearningRateMonitor, Timer

    callbacks = default_callbacks() if callbacks is None else callbacks
    for key, why in REQUIRED_CALLBACKS.items():
        if callbacks.get(key) is None:
            raise ConfigError(f"callbacks.{key} is required: {why}")
    built = {}
    for key, node in callbacks.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
            raise ConfigError(f"callbacks.{key} is not a callback: give it a _target_ (a Lightning callback class) "
                              "or set it to null")
        filled = {}
        if key in CALLBACK_FILES:
            placed = [k for k in ("dirpath", "filename") if k in node]
            if placed:
                raise ConfigError(f"callbacks.{key}.{placed[0]} is set by the job (<run dir>/"
                                  f"{CALLBACK_FILES[key]}.ckpt, where the jobs read it): remove it")
            filled = {"dirpath": None if out_dir is None else str(out_dir), "filename": CALLBACK_FILES[key]}
        try:
            cls = get_class(node._target_)
        except Exception as err:  # noqa: BLE001 - Hydra's reason (not found, not a class) goes on the line
            raise ConfigError(f"callbacks.{key}._target_={node._target_}: {_one_line(err)}") from None
        if not (isinstance(cls, type) and issubclass(cls, Callback)):
            raise ConfigError(f"callbacks.{key}._target_={node._target_} is not a Lightning callback")
        if key in REQUIRED_CALLBACKS and not issubclass(cls, ModelCheckpoint):
            raise ConfigError(f"callbacks.{key} must build a ModelCheckpoint: {REQUIRED_CALLBACKS[key]}")
        if issubclass(cls, Timer) and node.get("duration") is None:
            continue
        if issubclass(cls, LearningRateMonitor) and not with_logger:
            log.debug("callbacks.%s is off: the run has no logger", key)
            continue
        try:
            built[key] = instantiate(node, **filled, _convert_="all")  # plain dicts: Timer(duration={hours: 1})
        except InstantiationException as err:
            raise ConfigError(f"callbacks.{key}: {_one_line(err.__cause__ or err)}") from None
    return built


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def checkpoint_callbacks(out_dir: Path, callbacks: DictConfig | None = None) -> tuple[ModelCheckpoint,
                                                                                      ModelCheckpoint]:
    """``best.ckpt`` (lowest val/loss among the selectable epochs) and ``last.ckpt`` (the latest epoch) in
    ``out_dir``, as ``callbacks`` (``cfg.callbacks``, else ``conf/callbacks``' files) configures them.

    Lightning's ``save_last`` only writes when a best checkpoint is written; resuming needs the latest epoch.
    """
    built = build_callbacks(callbacks, out_dir)
    return built["model_checkpoint"], built["last_checkpoint"]


def check_slurm_tasks(cfg: DictConfig) -> None:
    """Under SLURM Lightning runs one process per task, so a job must run ``trainer.devices`` tasks per node on
    ``trainer.num_nodes`` nodes (``hydra/launcher=slurm_ddp`` asks for that); a mismatch is one line here rather
    than Lightning's error once the data is prepared."""
    if not in_slurm_step():
        return
    for key, env, what, default in (("trainer.devices", "SLURM_NTASKS_PER_NODE", "tasks per node", None),
                                    ("trainer.num_nodes", "SLURM_NNODES", "node(s)", 1)):
        want, have = OmegaConf.select(cfg, key, default=default), os.environ.get(env, "")
        if not have.isdigit() or not isinstance(want, int) or isinstance(want, bool) or want < 1:
            continue
        if int(have) != want:
            raise ConfigError(f"{key}={want} but this SLURM job runs {have} {what}: Lightning runs one process per "
                              f"SLURM task; use hydra/launcher=slurm_ddp (tasks per node = trainer.devices, nodes = "
                              f"trainer.num_nodes) or {key}={have}")


def cluster_plugins() -> dict:
    """Trainer arguments for the cluster this process runs in: in a SLURM job step, Lightning's SLURM environment
    without its auto-requeue (advdf's :class:`~advdf.lit.callbacks.RequeueOnSignal` and submitit requeue instead,
    and resume from ``last.ckpt``, never from Lightning's ``hpc_ckpt``)."""
    if not in_slurm_step():
        return {}
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}


def fit_resumable(cfg: DictConfig, module, out_dir: Path, **data) -> tuple:
    """Fit ``module`` with ``cfg.trainer``, ``cfg.logger`` and ``cfg.callbacks``, checkpointing to ``out_dir`` and
    continuing from its ``last.ckpt`` when ``cfg.resume`` (a requeued or killed job); ``data`` is the datamodule or
    the dataloaders.

    Returns the trainer and the best-checkpoint callback.
    """
    run_name, group = job_identity()
    loggers = build_loggers(cfg, run_name, group)
    callbacks = build_callbacks(cfg.get("callbacks"), out_dir, with_logger=bool(loggers))
    trainer = instantiate(cfg.trainer, default_root_dir=str(out_dir), callbacks=list(callbacks.values()),
                          logger=loggers or False, **cluster_plugins())
    last = out_dir / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    trainer.fit(module, ckpt_path=resume_from, weights_only=True, **data)
    return trainer, callbacks["model_checkpoint"]
