"""Run identity of every trained artifact: a detector, a denoiser in front of one, an adversarial detector on one.

Each training run lives in ``<prefix>-<digest>/`` (prefixes in ``conf/paths/default.yaml``). The digest covers
what determines the run's weights, never where anything lies: the model, the data identity
(:attr:`advdf.data.datamodule.FFPPDataModule.identity`) and the loader settings, the module (optimizer,
scheduler, losses), the trainer fields that change results, the seed and variant, and for denoisers and
adversarial detectors the weights of the frozen detector they sit on and their own data settings. ``run.json``
records those settings; a run directory is reused or resumed only when its recorded settings are the ones asked
for, so a sweep over seeds or a second data root gets directories of its own.
Seed 003's generators and the attribute classifier that checks them (:data:`GENERATIVE`) are keyed the same way,
with the CelebA data module's identity.

Consumers find a run either from the directory a reproduce plan got back from training (``checkpoint=<path>``),
or, at the command line, as the only run under the config's prefix (the ``advdf.detector`` and ``advdf.denoiser``
config resolvers); several runs there stop with one line that lists them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from advdf.data.source import data_identity, prepared_name
from advdf.errors import CheckpointError, ConfigError
from advdf.models.checkpoint import file_digest
from advdf.utils.io import atomic_write_json, digest

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
WEIGHTS = {"detector": "detector.safetensors", "denoiser": "denoiser.safetensors",
           "adv_detector": "adv_detector.safetensors", "ffm": "detector.safetensors",
           "generator": "generator.safetensors", "attribute_classifier": "attribute_classifier.safetensors"}
KINDS = {"detector": "a detector", "denoiser": "a denoiser", "adv_detector": "an adversarial detector",
         "ffm": "a forensic autoencoder", "generator": "a generator", "attribute_classifier": "an attribute classifier"}
# Seed 003's kinds: trained on CelebA (advdf.data.celeba), whose data module names its own identity.
GENERATIVE = ("generator", "attribute_classifier")
# Trainer fields that only change what is shown or where it goes, never the weights or metrics.
TRAINER_COSMETIC = ("default_root_dir", "enable_progress_bar", "enable_model_summary", "log_every_n_steps",
                    "logger", "callbacks", "profiler")
DATA_PATHS = ("root", "prepared_dir")  # where the data lies: the data identity stands for it
# Data options that change only what a finished run is tested on, never its weights: recorded, not hashed (a reused
# run tested on another subset is tested again, see advdf.jobs.train.retest_detector).
DATA_EVALUATION = ("test_per_class",)
_DIGEST = re.compile(r"[0-9a-f]{12}")
# The callbacks (conf/callbacks) whose options change a run's weights: which epoch's weights are exported (the best
# checkpoint) and a training-time budget; the others (the last checkpoint, the LR monitor, requeue) never do. Their
# options enter a run's settings only when they differ from these, the ones every run had before callbacks came
# from config, so those runs keep their digest.
CALLBACK_BASELINE = {"model_checkpoint": {"_target_": "advdf.lit.callbacks.BestCheckpoint", "monitor": "val/loss",
                                          "mode": "min", "save_top_k": 1}}
CALLBACK_COSMETIC = ("dirpath", "filename", "verbose", "enable_version_counter", "auto_insert_metric_name",
                     "save_last", "save_weights_only")


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def _pick(node: DictConfig, exclude: tuple[str, ...] = ()) -> dict:
    """``node`` as plain values, without the keys in ``exclude`` (never resolved: they may name other runs)."""
    return {k: _plain(node[k]) for k in node.keys() if k not in exclude}


def config_data_identity(data: DictConfig) -> dict:
    """The identity of the prepared set ``data`` (a data config) asks for, read without preparing anything."""
    return data_identity(data.root if data.get("synthetic") is None else "", _plain(data.get("synthetic")),
                         data.compression, list(data.manipulations), data.frames_per_video_real,
                         data.frames_per_video_fake, data.crop_size, data.get("face_detector", "haar"))


def data_settings(cfg: DictConfig, identity_digest: str | None = None) -> dict:
    """The data part of a run's settings: the prepared set's identity digest and every option that changes
    training (all but the paths and :data:`DATA_EVALUATION`)."""
    return {**_pick(cfg.data, DATA_PATHS + DATA_EVALUATION), "identity": identity_digest or digest(config_data_identity(cfg.data))}


def trainer_settings(trainer: DictConfig) -> dict:
    """The Lightning trainer fields that change results (epochs, precision, devices, accumulation, ...)."""
    return _pick(trainer, TRAINER_COSMETIC)


def callback_settings(cfg: DictConfig) -> dict:
    """``{"callbacks": ...}``: the options of the best checkpoint and of a time budget (a timer with a duration),
    when they differ from :data:`CALLBACK_BASELINE`; else nothing (as for a config without callbacks, which trains
    with conf/callbacks' checkpoints)."""
    callbacks = cfg.get("callbacks")
    if not callbacks:
        return {}
    picked = {}
    for key in ("model_checkpoint", "timer"):
        node = callbacks.get(key)
        if node is not None and (key != "timer" or node.get("duration") is not None):
            picked[key] = _pick(node, CALLBACK_COSMETIC)
    return {} if picked == CALLBACK_BASELINE else {"callbacks": picked}


def frozen_detector(cfg: DictConfig) -> dict:
    """The identity of the trained detector a denoiser or adversarial detector sits on: its weights."""
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise CheckpointError(f"no trained detector at {path}; train it first: python train.py "
                              f"model={cfg.model.name} (with the same data/model settings)")
    return {"name": cfg.model.name, "weights_sha256": file_digest(path)}


def starting_weights(model: DictConfig) -> str | None:
    """The sha256 of the weights a model starts from (``model.checkpoint_path``: fine-tuning), or None."""
    path = model.get("checkpoint_path")
    if not path:
        return None
    if not Path(path).is_file():
        raise CheckpointError(f"model.checkpoint_path={path}: no such file (the weights to start from)")
    return file_digest(path)


def settings_of(cfg: DictConfig, identity_digest: str | None = None) -> dict:
    """What determines the weights of the run ``cfg`` trains (its ``trains`` kind), as plain JSON."""
    kind = cfg.get("trains", "detector")
    if kind in GENERATIVE:
        return json.loads(json.dumps(generative_settings(cfg, identity_digest), default=str))
    pick = {k: _plain(cfg[k]) for k in ("model", "module") if k in cfg}
    if kind in ("detector", "ffm"):  # a model fine-tuned from local weights: their sha256, not where they lie
        pick["model"] = {**_pick(cfg.model, ("checkpoint_path",)), "init": starting_weights(cfg.model)}
    common = {"kind": kind, "train_fn": cfg.get("train_fn"), **pick, "data": data_settings(cfg, identity_digest),
              "trainer": trainer_settings(cfg.trainer), "seed": cfg.seed, **callback_settings(cfg)}
    if kind == "detector":
        out = {**common, "variant": cfg.variant}
    elif kind == "ffm":
        out = common
    elif kind == "denoiser":
        out = {**common, "detector": frozen_detector(cfg), "defense": _pick(cfg.defense, ("checkpoint",)),
               **{k: _plain(cfg[k]) for k in ("denoiser_data", "split", "limit", "batch_size", "shard_size")}}
    elif kind == "adv_detector":
        out = {**common, "detector": frozen_detector(cfg),
               **{k: _plain(cfg[k]) for k in ("adv_detector", "xai", "adv_data", "split", "batch_size",
                                              "shard_size")}}
    else:
        raise ConfigError(f"trains={kind!r}: advdf trains a detector, ffm, denoiser, adv_detector, generator or "
                          "attribute_classifier")
    return json.loads(json.dumps(out, default=str))


def prefix_of(cfg: DictConfig) -> Path:
    """Where the runs of ``cfg``'s kind lie: ``<prefix>-<digest>`` (see ``conf/paths/default.yaml``)."""
    kind = cfg.get("trains", "detector")
    if kind == "detector":
        return Path(cfg.paths.detector_prefix)
    if kind == "ffm":
        return Path(cfg.paths.ffm_prefix)
    if kind == "denoiser":
        return denoiser_prefix(cfg.checkpoint, cfg.defense.name)
    if kind == "generator":
        return Path(cfg.paths.generator_prefix)
    if kind == "attribute_classifier":
        return Path(cfg.paths.classifier_prefix)
    return Path(cfg.checkpoint).parent / "adv_detectors" / cfg.adv_detector.name / cfg.xai.name


def generative_settings(cfg: DictConfig, identity_digest: str | None = None) -> dict:
    """The settings of a seed 003 run (:data:`GENERATIVE`): the module (losses, optimizers and the networks it
    builds: discriminators, the attribute classifier), the data options but its root, with the CelebA data module's
    identity (``identity_digest``, or computed from ``cfg.data`` without preparing anything), the trainer, the seed
    and, for a generator, its config without ``checkpoint_path`` plus the sha256 of the weights it starts from."""
    if identity_digest is None:
        identity_digest = instantiate(cfg.data).identity_digest
    out = {"kind": cfg.trains, "train_fn": cfg.get("train_fn"), "module": _plain(cfg.module),
           "data": {**_pick(cfg.data, DATA_PATHS + DATA_EVALUATION), "identity": identity_digest},
           "trainer": trainer_settings(cfg.trainer), "seed": cfg.seed, **callback_settings(cfg)}
    if cfg.trains == "generator":
        path = cfg.generator.get("checkpoint_path")
        if path and not Path(path).is_file():
            raise CheckpointError(f"generator.checkpoint_path={path}: no such file (the weights to start from)")
        out["generator"] = {**_pick(cfg.generator, ("checkpoint_path",)), "init": file_digest(path) if path else None}
    return out


def denoiser_prefix(detector_checkpoint: str | Path, name: str) -> Path:
    """Denoiser runs named ``name`` for the detector whose weights are ``detector_checkpoint``."""
    return Path(detector_checkpoint).parent / "denoisers" / name


@dataclass(frozen=True)
class Run:
    """One training run: its kind, where runs of its kind lie, and the settings its digest covers."""

    kind: str
    prefix: Path
    settings: dict

    @property
    def digest(self) -> str:
        return digest(self.settings)

    @property
    def directory(self) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}-{self.digest}")

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS[self.kind]

    def recorded(self) -> dict | None:
        path = self.directory / RUN_FILE
        return json.loads(path.read_text()).get("settings") if path.is_file() else None

    def check(self) -> None:
        """Raise ConfigError (one line) when the directory records other settings than this run's."""
        old = self.recorded()
        if old is not None and old != self.settings:
            was, now = _flat(old), _flat(self.settings)
            changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
            raise ConfigError(f"{self.directory} records {KINDS[self.kind]} trained with other settings "
                              f"({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}); it is neither "
                              "reused nor resumed: move it away to train these settings")

    def open(self) -> Path:
        """The run directory, created and recorded (``run.json``) if new, checked if not; training goes here."""
        self.check()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.recorded() is None:
            atomic_write_json(self.directory / RUN_FILE, {"kind": self.kind, "digest": self.digest,
                                                         "settings": self.settings})
        return self.directory

    def finished(self) -> dict | None:
        """The run's ``train_summary.json`` when it finished (summary and weights written), else None; a
        directory recording other settings raises ConfigError."""
        self.check()
        summary = self.directory / "train_summary.json"
        if summary.is_file() and self.weights.is_file() and self.recorded() is not None:
            return json.loads(summary.read_text())
        return None


def run_of(cfg: DictConfig, identity_digest: str | None = None) -> Run:
    """The run ``cfg`` trains; ``identity_digest`` is the data module's (computed from ``cfg.data`` if absent)."""
    return Run(cfg.get("trains", "detector"), prefix_of(cfg), settings_of(cfg, identity_digest))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def list_runs(prefix: str | Path) -> list[Path]:
    """The run directories ``<prefix>-<digest>`` (each with its ``run.json``), sorted by name."""
    prefix = Path(prefix)
    if not prefix.parent.is_dir():
        return []
    return sorted(p for p in prefix.parent.iterdir() if p.name.startswith(f"{prefix.name}-")
                  and _DIGEST.fullmatch(p.name[len(prefix.name) + 1:]) and (p / RUN_FILE).is_file())


def _describe(runs: list[Path]) -> str:
    """Each run's name with the settings in which the runs differ (a few of them)."""
    flat = [_flat(json.loads((r / RUN_FILE).read_text()).get("settings", {})) for r in runs]
    keys = sorted({k for f in flat for k in f if len({json.dumps(g.get(k), sort_keys=True) for g in flat}) > 1})
    parts = []
    for run, f in zip(runs, flat, strict=True):
        diff = ", ".join(f"{k}={json.dumps(f.get(k))}" for k in keys[:3])
        parts.append(f"{run.name}" + (f" ({diff}{', ...' if len(keys) > 3 else ''})" if diff else ""))
    return "; ".join(parts)


def find_run(prefix: str | Path, select: str | None = None, what: str = "detector", train: str = "",
             key: str = "checkpoint", pick: str = "") -> Path:
    """The one run directory under ``prefix`` (or the one whose digest starts with ``select``).

    Raises CheckpointError with one line when there is none, or when several are left and nothing picks one;
    ``train`` says how to train one, ``key`` is the config key that names weights directly, ``pick`` another way
    to choose among several.
    """
    prefix = Path(prefix)
    runs = list_runs(prefix)
    if select is not None:
        picked = [r for r in runs if r.name[len(prefix.name) + 1:].startswith(str(select))]
        if len(picked) != 1:
            raise CheckpointError(f"{select!r} names {'several' if picked else 'none'} of the {what} runs under "
                                  f"{prefix}: {_describe(runs) or 'there are none'}")
        return picked[0]
    if not runs:
        raise CheckpointError(f"no trained {what} under {prefix}-<digest>; " + (f"train it first: {train}, or "
                                                                               if train else "") + f"set {key}=<path>")
    if len(runs) > 1:
        raise CheckpointError(f"{len(runs)} trained {what} runs under {prefix}: {_describe(runs)}; choose one with "
                              + (f"{pick} or " if pick else "") + f"{key}=<run directory>/{prefix_weights(what)}")
    return runs[0]


def prefix_weights(what: str) -> str:
    """The weights file of a run described as ``what`` (``detector``, ``hgd denoiser``, ...)."""
    return WEIGHTS["denoiser" if what.endswith("denoiser") else "adv_detector" if "adversarial" in what
                   else "detector"]


# --- OmegaConf resolvers (registered by advdf.utils.entry.register_resolvers) -------------------------------------
def _context(_node_, _root_) -> tuple[str, str]:
    model = _root_.model.name if _root_ is not None and "model" in _root_ else "<model>"
    return model, (_node_._get_full_key(None) if _node_ is not None else "checkpoint")


def resolve_detector(prefix: str, select: str | None = None, *, _node_=None, _root_=None, **_) -> str:
    """``${advdf.detector:<prefix>,<select>}``: the weights of the only (or the selected) detector run."""
    model, key = _context(_node_, _root_)
    run = find_run(prefix, select, "detector", f"python train.py model={model} (with the same data/model settings)",
                   key, "paths.detector_run=<digest>")
    return str(run / WEIGHTS["detector"])


def resolve_denoiser(detector_checkpoint: str, name: str, *, _node_=None, _root_=None, **_) -> str:
    """``${advdf.denoiser:<detector checkpoint>,<name>}``: the weights of the only denoiser run ``name`` trained
    in front of that detector."""
    model, key = _context(_node_, _root_)
    run = find_run(denoiser_prefix(detector_checkpoint, name), None, f"{name} denoiser",
                   f"python train.py task=denoiser defense={name} model={model}", key)
    return str(run / WEIGHTS["denoiser"])


def resolve_prepared_dir(base: str, *, _parent_=None, **_) -> str:
    """``${advdf.prepared_dir:<base>}`` inside a data config: ``<base>/<readable prefix>-<identity digest>``."""
    return str(Path(base) / prepared_name(_parent_.name, config_data_identity(_parent_)))


def path_override(key: str, path: str | Path) -> str:
    """A Hydra override setting ``key`` to ``path``, quoted (paths may hold commas, spaces or brackets)."""
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{text}'"
