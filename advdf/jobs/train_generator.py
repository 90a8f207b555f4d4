"""Train seed 003's generators (``trains: generator``) and the attribute classifier that checks them
(``trains: attribute_classifier``) into their run directories: fit (resuming from the run's ``last.ckpt``), test,
export the weights and, for a generator, its edit report on the test split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.errors import CheckpointError, ConfigError
from advdf.generators import load_weights, save_weights
from advdf.jobs.common import fit_resumable, record_run_dir
from advdf.jobs.generator_eval import edit_report
from advdf.jobs.runs import RUN_FILE, WEIGHTS, list_runs, run_of
from advdf.models.checkpoint import file_digest
from advdf.utils.io import atomic_write_json

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.trains`` (a generator of the ``generator`` group, or the attribute classifier) on ``cfg.data``;
    returns the test metrics (validation ones with ``test=false``), a generator's with its edit report's means over
    the domains as ``test/edit_<key>`` (``test/edit_success``, ``test/edit_success_identity``, ``test/edit_moved_l1``,
    ...).

    The run directory ``<paths.generator_prefix>-<digest>`` (or ``<paths.classifier_prefix>-<digest>``, see
    :mod:`advdf.jobs.runs`) receives ``run.json``, ``last.ckpt`` and ``train_summary.json``, and:

    - a generator: ``generator.safetensors`` (what ``create_generator(checkpoint_path=...)`` loads) and
      ``discriminator.safetensors``, both the last weights (no validation number picks a better GAN epoch); the
      summary holds :func:`advdf.jobs.generator_eval.edit_report` on the test split when an attribute classifier
      judges it (``cfg.classifier``, or the only classifier run trained on the same data; U-GAT-IT needs none);
    - the classifier: ``best.ckpt`` (lowest val loss) and ``attribute_classifier.safetensors`` (its weights).
    """
    kind = cfg.trains
    if kind not in ("generator", "attribute_classifier"):
        raise ConfigError(f"advdf.jobs.train_generator.train trains a generator or an attribute_classifier, "
                          f"not trains={kind!r}")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    if kind == "generator":
        if cfg.generator.image_size != cfg.data.image_size:
            raise ConfigError(f"generator.image_size={cfg.generator.image_size} but data.image_size="
                              f"{cfg.data.image_size}; set data.image_size (task=generator makes the generator "
                              "follow it)")
        module = instantiate(cfg.module, generator=instantiate(cfg.generator))
    else:
        module = instantiate(cfg.module)
    datamodule.prepare_data()  # draws nothing at random: the weights above and the training below are unchanged
    run = run_of(cfg, datamodule.identity_digest)
    judge = find_classifier(cfg, datamodule.identity_digest) if kind == "generator" else None
    out_dir = run.open()
    record_run_dir(cfg, out_dir)
    log.info("run directory: %s", out_dir)
    trainer, checkpoint = fit_resumable(cfg, module, out_dir, datamodule=datamodule)
    chosen = checkpoint.best_model_path or str(out_dir / "last.ckpt")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        results = trainer.test(module, datamodule=datamodule, ckpt_path=chosen, weights_only=True, verbose=False)
        metrics = {k: float(v) for k, v in results[0].items()}
    if not trainer.is_global_zero:
        return metrics
    summary: dict = {"best_checkpoint": chosen if checkpoint.best_model_path else None}
    if kind == "generator":
        load_weights(module.generator, chosen, lightning_prefix="generator.")
        load_weights(module.discriminator, chosen, lightning_prefix="discriminator.")
        save_weights(module.generator, out_dir / WEIGHTS["generator"])
        save_weights(module.discriminator, out_dir / "discriminator.safetensors")
        summary["evaluation"] = None
        if cfg.test and (judge is not None or not module.generator.attributes):
            classifier = load_classifier(judge) if judge is not None else None
            report = edit_report(module.generator, classifier, datamodule.test_dataloader(),
                                 attributes=datamodule.attributes, domain_b=getattr(module, "domain_b", None),
                                 device=module.device)
            metrics.update({f"test/edit_{k}": v for k, v in report["mean"].items() if v is not None})
            summary["edit_report"] = report
            summary["evaluation"] = {"classifier": None if judge is None else
                                     {"run": judge.parent.name, "weights_sha256": file_digest(judge)}}
    else:
        load_weights(module.classifier, chosen, lightning_prefix="classifier.")
        save_weights(module.classifier, out_dir / WEIGHTS["attribute_classifier"])
    atomic_write_json(out_dir / "train_summary.json", {
        "metrics": metrics, **summary, "epochs": trainer.current_epoch, "run": run.digest,
        "config": OmegaConf.to_container(cfg, resolve=True)})
    log.info("%s weights: %s", kind, out_dir / WEIGHTS[kind])
    return metrics


def find_classifier(cfg: DictConfig, identity_digest: str) -> Path | None:
    """The attribute classifier's weights that judge a generator's edits: ``cfg.classifier`` when set, else those
    of the only finished classifier run under ``paths.classifier_prefix`` trained on data of this identity; None
    when there is none. Several raise a one-line CheckpointError. U-GAT-IT's judge must have a style logit trained
    on its very domain B (the same ``domain_b`` settings); another is not used (the report keeps its distances)."""
    explicit = cfg.get("classifier")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CheckpointError(f"classifier={path}: no such file (an attribute_classifier.safetensors of "
                                  "python train.py task=attribute_classifier)")
    else:
        path = _only_classifier(cfg, identity_digest)
    if path is None or "domain_b" not in cfg.module:
        return path
    record = path.parent / RUN_FILE
    module = json.loads(record.read_text())["settings"]["module"] if record.is_file() else {}
    if not module.get("classifier", {}).get("style") or \
            module.get("domain_b") != OmegaConf.to_container(cfg.module.domain_b, resolve=True):
        log.warning("the attribute classifier %s was not trained on this generator's domain B (module.domain_b): "
                    "the edit report gives distances only", path)
        return None
    return path


def _only_classifier(cfg: DictConfig, identity_digest: str) -> Path | None:
    prefix = Path(cfg.paths.classifier_prefix)
    runs = [r for r in list_runs(prefix) if (r / WEIGHTS["attribute_classifier"]).is_file()
            and json.loads((r / RUN_FILE).read_text())["settings"]["data"].get("identity") == identity_digest]
    if not runs:
        log.warning("no attribute classifier trained on this data under %s-<digest>: the edit report is left out "
                    "(python train.py task=attribute_classifier with the same data settings, or classifier=<path>)",
                    prefix)
        return None
    if len(runs) > 1:
        raise CheckpointError(f"{len(runs)} attribute classifier runs trained on this data under {prefix}: "
                              f"{', '.join(r.name for r in runs)}; choose one with classifier=<run directory>/"
                              f"{WEIGHTS['attribute_classifier']}")
    return runs[0] / WEIGHTS["attribute_classifier"]


def load_classifier(weights: str | Path):
    """The attribute classifier whose weights are ``weights``, built from its run's recorded module settings (so it
    is the network that was trained, whatever the config says now), in eval mode."""
    weights = Path(weights)
    record = weights.parent / RUN_FILE
    if not record.is_file():
        raise CheckpointError(f"{weights} has no {RUN_FILE} beside it: pass the weights of a task="
                              "attribute_classifier run directory")
    conf = json.loads(record.read_text())["settings"]["module"]["classifier"]
    return instantiate(OmegaConf.create(conf), checkpoint_path=str(weights)).eval()
