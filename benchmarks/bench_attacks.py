"""Time advdf's attacks against torchattacks, ART and foolbox on one model, one batch and one set of inputs.

``make bench-attacks ARGS="..."``, or::

    python -m benchmarks.bench_attacks [--model resnet50] [--input-size 224] [--batch 8]
        [--checkpoint PATH [--data PREPARED_DIR]] [--attacks pgd,deepfool,...] [--repeats N]
        [--device auto|cpu|cuda] [--budget auto|full|small] [--out artifacts/bench/attacks.md]

One run, one model, one batch, three parts:

1. One forward+backward with respect to the input (cross-entropy, eager fp32) -- the median of ``--repeats``
   timed calls after one warm-up call -- and the same for channels_last, bf16 autocast, channels_last + bf16,
   torch.compile fp32 and compile + channels_last + bf16, each as a ratio to eager fp32 (the warm-up call is
   reported as the first-call cost, which for torch.compile is the compilation).
2. Each advdf attack against torchattacks' implementation of it, with the same hyper-parameters (where they
   cannot be the same, the table's notes say how they differ), on the same inputs, each random attack seeded
   identically right before it runs; then, in the same table, the Adversarial Robustness Toolbox's (ART) and
   foolbox's implementations where they have the attack, with the same budget (:mod:`benchmarks.references`).
   Columns: time, advdf's time / that row's time, robust accuracy, success rate, mean L2 and mean L-inf of the
   fooled samples' perturbations, advdf's gradient calls (or queries) per sample, iterations, and the overhead
   ratio ``time / (passes x one eager fp32 forward+backward)`` of the fixed-budget gradient attacks. A
   reference without the attack, or not installed, prints "—" (never a number it did not measure).
3. advdf's PGD with the runtime options of :class:`advdf.attacks.base.Attack` (channels_last, bf16, compile,
   and their combination): speed-up over torchattacks' PGD and robust-accuracy difference to advdf's fp32 PGD.

It closes with the targets (overhead <= 1.02x; fast PGD >= 3x faster than torchattacks at robust accuracy
within 0.01; DeepFool and C&W >= 5x faster than torchattacks at >= its success rate), each measured value
marked met or not met, and writes the report as markdown (``--out``) plus the raw numbers as JSON beside it.

Labels: without ``--checkpoint`` the detector is randomly initialized (``pretrained=False``, seeded), the
inputs are real faces (scikit-image's LFW subset and astronaut) composed on random backgrounds, and the labels
are the model's own clean predictions, so clean accuracy is 100 % by construction. With ``--checkpoint`` the
inputs are frames of the prepared (synthetic) data the detector was trained on, balanced real/fake, with their
true labels.

Attacks not registered (modules not written yet) are skipped with a note; every attack of the list below whose
module is importable is benchmarked. torchattacks is optional: install it with
``.venv/bin/pip install --no-deps -c constraints.txt torchattacks`` (its metadata pins ``requests~=2.25``, which
conflicts with the project's pins; it does not use requests at run time). Without it the comparison columns
are skipped with a note. ART and foolbox are optional too: ``pip install -c constraints.txt ".[bench]"`` (which
``make bench-attacks`` runs once); a missing one is named in one note and its rows print "—".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from advdf.attacks.base import parse_budget
from advdf.errors import AdvdfError, ConfigError
from advdf.utils.io import atomic_write_json, atomic_write_text
from benchmarks import references

OPTIONAL_ATTACK_MODULES = ("apgd", "cw", "deepfool", "nes", "square")
TARGET_OVERHEAD = 1.02
TARGET_FAST_PGD = 3.0
TARGET_MIN_NORM = 5.0
ACC_TOLERANCE = 0.01


# --- budgets ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Iteration counts of one bench run (the attacks' own defaults are paper-scale and far too long here)."""

    steps: int  # BIM, MI-FGSM, TI-FGSM
    pgd_steps: int  # PGD and its fast-option variants
    sim_steps: int  # SI-NI-FGSM, each step costs m passes
    sim_m: int
    apgd_steps: int
    cw_steps: int
    deepfool_steps: int  # a maximum: DeepFool stops a sample once it is fooled
    square_queries: int
    nes_steps: int
    nes_samples: int

    def describe(self) -> str:
        return (f"BIM/MI-FGSM/TI-FGSM {self.steps} steps, PGD {self.pgd_steps} steps, SI-NI-FGSM {self.sim_steps} "
                f"steps x m={self.sim_m}, APGD {self.apgd_steps} steps, C&W {self.cw_steps} Adam steps (c=1, no "
                f"binary search), DeepFool at most {self.deepfool_steps} steps, Square {self.square_queries} queries, "
                f"NES {self.nes_steps} steps x {self.nes_samples} samples")


BUDGETS = {
    # a GPU run: PGD-10 and friends, C&W with torchattacks' default 50 steps, Square with a few hundred queries
    "full": Budget(steps=10, pgd_steps=10, sim_steps=10, sim_m=5, apgd_steps=10, cw_steps=50, deepfool_steps=50,
                   square_queries=300, nes_steps=10, nes_samples=20),
    # a CPU run of ResNet-50 at 224 px (seconds per forward+backward): PGD-10, shorter everything else
    "small": Budget(steps=5, pgd_steps=10, sim_steps=2, sim_m=5, apgd_steps=5, cw_steps=10, deepfool_steps=50,
                    square_queries=50, nes_steps=2, nes_samples=10),
}


# --- inputs -------------------------------------------------------------------------------------------------
def face_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` real faces (the astronaut first, then LFW faces tinted with skin tones) on random backgrounds.

    Returns a float tensor (n, 3, size, size) in [0, 1]. Offline: scikit-image ships the images.
    """
    import skimage.data

    rng = np.random.default_rng(seed)
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 of the subset are faces
    astronaut = skimage.data.astronaut()[66:161, 177:272].astype(np.float64) / 255
    side = max(4, int(round(size * 0.6)))
    picks = rng.choice(len(lfw), size=max(n - 1, 0), replace=n - 1 > len(lfw))
    tints = rng.uniform(0.85, 1.1, (len(picks), 1, 1, 1)) * np.array([1.0, 0.80, 0.66])
    grey = np.stack([cv2.resize(lfw[i], (side, side), interpolation=cv2.INTER_CUBIC) for i in picks]) \
        if len(picks) else np.zeros((0, side, side))
    faces = np.concatenate([cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)[None],
                            np.clip(grey[..., None] * tints, 0, 1)])[:n]
    ramp = np.linspace(0, 1, size)[None, :, None, None]
    colours = rng.uniform(0.15, 0.85, (n, 2, 1, 1, 3))
    images = colours[:, 0] * (1 - ramp) + colours[:, 1] * ramp  # (n, size, 1, 3): a vertical gradient
    images = np.broadcast_to(images, (n, size, size, 3)).copy()
    yy, xx = (np.mgrid[:side, :side] + 0.5) / side - 0.5
    alpha = np.clip((1 - np.sqrt((yy / 0.5) ** 2 + (xx / 0.42) ** 2)) / 0.15, 0, 1)[None, ..., None]
    top = (size - side) // 2
    window = images[:, top:top + side, top:top + side]
    images[:, top:top + side, top:top + side] = alpha * faces + (1 - alpha) * window
    images = np.clip(images + rng.normal(0, 1.5 / 255, images.shape), 0, 1)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous()


def prepared_frames(prepared_dir: Path, n: int, input_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test frames of a prepared tree, half real and half fake (fakes spread over manipulations)."""
    from advdf.data.dataset import FrameDataset, balanced_subset, read_index

    test = [r for r in read_index(prepared_dir) if r["split"] == "test"]
    subset = balanced_subset(test, per_class=math.ceil(n / 2))
    real = [r for r in subset if r["label"] == 0][:math.ceil(n / 2)]
    fake = [r for r in subset if r["label"] == 1][:n - len(real)]
    rows = real + fake
    if len(rows) < n:
        raise ConfigError(f"--data {prepared_dir} has only {len(rows)} balanced test frames, --batch needs {n}")
    dataset = FrameDataset(rows, prepared_dir, input_size)
    items = [dataset[i] for i in range(len(rows))]
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])


def _training_config(checkpoint: Path) -> dict:
    summary = checkpoint.parent / "train_summary.json"
    return json.loads(summary.read_text()).get("config", {}) if summary.is_file() else {}


def build_setup(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, torch.Tensor, torch.Tensor, str]:
    """(detector in eval mode, images, labels, a sentence saying where both come from)."""
    from advdf.models import create_detector
    from advdf.models.checkpoint import load_detector_weights

    torch.manual_seed(args.seed)
    model = create_detector(args.model, pretrained=False, input_size=args.input_size)
    if args.checkpoint is None:
        x = face_images(args.batch, args.input_size, args.seed)
        model = model.to(device).eval()
        x = x.to(device)
        with torch.no_grad():
            y = model(x).argmax(1)
        note = (f"randomly initialized {args.model} (pretrained=False, seed {args.seed}); inputs: {args.batch} real "
                f"faces (scikit-image LFW subset and astronaut) on random backgrounds; labels: the model's own clean "
                f"predictions, so clean accuracy is 100 % by construction")
        return model, x, y, note
    checkpoint = Path(args.checkpoint)
    load_detector_weights(model, checkpoint)
    data = args.data or _training_config(checkpoint).get("data", {}).get("prepared_dir")
    if not data:
        raise ConfigError(f"--checkpoint {checkpoint} has no train_summary.json naming its data; pass --data "
                          f"PREPARED_DIR (a directory with index.csv)")
    x, y = prepared_frames(Path(data), args.batch, args.input_size)
    model = model.to(device).eval()
    x, y = x.to(device), y.to(device)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    note = (f"{args.model} with the weights of {checkpoint}; inputs: {args.batch} test frames of {data} "
            f"({int((y == 0).sum())} real, {int((y == 1).sum())} fake); labels: the true labels (clean accuracy "
            f"{acc:.3f})")
    return model, x, y, note


# --- timing -------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """(result, wall seconds) of ``fn()``, with the device synchronized on both sides."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


@dataclass(frozen=True)
class Runtime:
    """A way of running the model: memory format, autocast dtype, compilation."""

    label: str
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False

    @property
    def options(self) -> frozenset[str]:
        return frozenset(k for k in ("channels_last", "bf16", "compile") if getattr(self, k))


RUNTIMES = (
    Runtime("eager fp32"),
    Runtime("channels_last", channels_last=True),
    Runtime("bf16 autocast", bf16=True),
    Runtime("channels_last + bf16", channels_last=True, bf16=True),
    Runtime("compile fp32", compile=True),
    Runtime("compile + channels_last + bf16", channels_last=True, bf16=True, compile=True),
)


@dataclass
class RuntimeResult:
    label: str
    options: list[str]
    first_s: float | None = None  # the warm-up call (torch.compile: the compilation)
    median_s: float | None = None  # median of the timed calls; None when no call was timed
    timed_calls: int = 0
    note: str = ""

    @property
    def per_call(self) -> float | None:
        """Steady-state seconds per call: the median, else the first call (never for compile)."""
        if self.median_s is not None:
            return self.median_s
        return None if "compile" in self.options else self.first_s


@contextlib.contextmanager
def memory_format(model: nn.Module, channels_last: bool) -> Iterator[None]:
    if not channels_last:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def measure_fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rt: Runtime, device: torch.device,
                    repeats: int, max_call_s: float) -> RuntimeResult:
    """One cross-entropy forward+backward w.r.t. the input under ``rt``: a warm-up call, then timed calls.

    Timed calls stop early once they add up to ``max_call_s``; a non-compiled runtime whose warm-up call alone
    exceeds ``max_call_s`` gets no timed call (its first call stands for it).
    """
    result = RuntimeResult(rt.label, sorted(rt.options))
    if rt.compile:
        torch._dynamo.reset()  # every compiled runtime pays its own compilation
    with memory_format(model, rt.channels_last):
        xin = x.contiguous(memory_format=torch.channels_last) if rt.channels_last else x.contiguous()
        net = torch.compile(model) if rt.compile else model

        def step() -> torch.Tensor:
            xr = xin.detach().requires_grad_(True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=rt.bf16):
                logits = net(xr)
            loss = F.cross_entropy(logits.float(), y, reduction="sum")
            return torch.autograd.grad(loss, xr)[0]

        try:
            _, result.first_s = timed(step, device)
            times: list[float] = []
            if rt.compile or not rt.options or result.first_s <= max_call_s:
                for _ in range(repeats):
                    times.append(timed(step, device)[1])
                    if sum(times) >= max_call_s:
                        break
        except Exception as err:  # noqa: BLE001 - e.g. no C++ compiler for inductor: reported, not fatal
            result.note = f"failed: {type(err).__name__}: {str(err).strip().splitlines()[0][:160]}"
            return result
    if times:
        result.median_s, result.timed_calls = statistics.median(times), len(times)
    else:
        result.note = f"first call {result.first_s:.1f} s > --max-call-s {max_call_s:g}: no timed repeat"
    return result


def measure_forward(model: nn.Module, x: torch.Tensor, device: torch.device, repeats: int) -> float:
    """Median seconds of one eager fp32 forward without gradients (the final forward attacks spend)."""
    with torch.no_grad():
        model(x)
        return statistics.median(timed(lambda: model(x), device)[1] for _ in range(max(1, repeats)))


# --- attacks ------------------------------------------------------------------------------------------------
@dataclass
class Spec:
    """One benchmarked attack: advdf's options and torchattacks' equivalent.

    ``passes`` is the forward+backward passes per sample of a fixed-budget gradient attack (the overhead
    ratio's denominator); ``None`` for minimum-norm and black-box attacks.
    """

    name: str
    ours: dict
    theirs: str | None
    theirs_kwargs: dict
    iterations: str
    passes: int | None = None
    differences: str = ""


def attack_specs(b: Budget, eps: float, seed: int) -> dict[str, Spec]:
    sign = {"eps": eps}
    specs = [
        Spec("fgsm", dict(sign), "FGSM", dict(sign), "1", passes=1),
        Spec("bim", {**sign, "alpha": 2 / 255, "steps": b.steps}, "BIM", {**sign, "alpha": 2 / 255, "steps": b.steps},
             str(b.steps), passes=b.steps),
        Spec("pgd", {**sign, "alpha": 2 / 255, "steps": b.pgd_steps, "random_start": True}, "PGD",
             {**sign, "alpha": 2 / 255, "steps": b.pgd_steps, "random_start": True}, str(b.pgd_steps),
             passes=b.pgd_steps),
        Spec("mifgsm", {**sign, "alpha": eps / b.steps, "steps": b.steps, "decay": 1.0}, "MIFGSM",
             {**sign, "alpha": eps / b.steps, "steps": b.steps, "decay": 1.0}, str(b.steps), passes=b.steps,
             differences="torchattacks divides the gradient by its mean |g| instead of its L1 norm: a per-sample "
                         "constant factor, the same signs and steps"),
        Spec("tifgsm", {**sign, "alpha": eps / b.steps, "steps": b.steps, "decay": 0.0, "kernel": "gaussian",
                        "kernel_size": 15, "nsig": 3.0}, "TIFGSM",
             {**sign, "alpha": eps / b.steps, "steps": b.steps, "decay": 0.0, "kernel_name": "gaussian",
              "len_kernel": 15, "nsig": 3, "diversity_prob": 0.0, "random_start": False}, str(b.steps),
             passes=b.steps,
             differences="torchattacks' input diversity is off (diversity_prob=0) but its resize code still runs"),
        Spec("sim", {**sign, "alpha": eps / b.sim_steps, "steps": b.sim_steps, "decay": 1.0, "m": b.sim_m,
                     "nesterov": True}, "SINIFGSM",
             {**sign, "alpha": eps / b.sim_steps, "steps": b.sim_steps, "decay": 1.0, "m": b.sim_m},
             f"{b.sim_steps} x m={b.sim_m}", passes=b.sim_steps * b.sim_m,
             differences="SI-NI-FGSM in both, but torchattacks' momentum is normalized by mean |g| (C*H*W times "
                         "the paper's L1 normalization, which advdf uses), so its Nesterov look-ahead "
                         "x + alpha*decay*g reaches C*H*W times further: the attacks differ after the first step. "
                         "torchattacks runs the m scale copies as m passes of N images, advdf too on a CPU (one pass "
                         "of m*N on a GPU: scales_per_pass)"),
        Spec("apgd", {**sign, "steps": b.apgd_steps, "n_restarts": 1, "rho": 0.75, "loss": "ce"}, "APGD",
             {"norm": "Linf", **sign, "steps": b.apgd_steps, "n_restarts": 1, "seed": seed, "loss": "ce",
              "rho": 0.75}, str(b.apgd_steps), passes=b.apgd_steps,
             differences="random starts are drawn from different generators (torchattacks reseeds with its seed)"),
        Spec("cw", {"eps": None, "c": 1.0, "kappa": 0.0, "steps": b.cw_steps, "binary_search_steps": 1, "lr": 0.01,
                    "abort_early": True}, "CW", {"c": 1.0, "kappa": 0.0, "steps": b.cw_steps, "lr": 0.01},
             f"{b.cw_steps}, c=1",
             differences="no binary search over c in either (torchattacks has none); both abort early, torchattacks "
                         "for the whole batch once the summed loss rises at a check (every steps/10), advdf per "
                         "sample once its objective stalls (relative 1e-4 per steps/10). torchattacks' margin takes "
                         "its max over the logits with the other class's entry zeroed, not removed, so with negative "
                         "logits it optimizes max(Z_y, 0) - max(Z_other, 0), not C&W's Z_y - Z_other: another "
                         "objective, not the same points"),
        Spec("deepfool", {"eps": None, "steps": b.deepfool_steps, "overshoot": 0.02}, "DeepFool",
             {"steps": b.deepfool_steps, "overshoot": 0.02}, f"<= {b.deepfool_steps}",
             differences="torchattacks attacks one sample at a time (a forward and one backward per class each), "
                         "scales every step by 1 + overshoot (advdf, as the paper: the accumulated perturbation) and "
                         "adds no 1e-4 to the step length"),
        Spec("square", {**sign, "n_queries": b.square_queries, "p_init": 0.8, "loss": "margin"}, "Square",
             {"norm": "Linf", **sign, "n_queries": b.square_queries, "n_restarts": 1, "p_init": 0.8,
              "loss": "margin", "resc_schedule": True, "seed": seed}, f"{b.square_queries} queries",
             differences="random squares are drawn from different generators"),
        Spec("nes", {**sign, "steps": b.nes_steps, "restarts": 1, "n_samples": b.nes_samples}, None, {},
             f"{b.nes_steps} x {b.nes_samples} samples"),
    ]
    return {s.name: s for s in specs}


def registered_attacks() -> tuple[dict[str, type], dict[str, str]]:
    """advdf's registered attack classes (after importing every optional module that imports) and why the
    optional ones that did not import are missing."""
    import advdf.attacks  # noqa: F401 - registers the core attacks
    from advdf.attacks.registry import ATTACKS

    missing = {}
    for name in OPTIONAL_ATTACK_MODULES:
        try:
            importlib.import_module(f"advdf.attacks.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"advdf.attacks.{name}":
                missing[name] = f"advdf.attacks.{name} does not import: {err}"
        except Exception as err:  # noqa: BLE001 - a module being written may be broken: skip it, say why
            missing[name] = f"advdf.attacks.{name} does not import: {type(err).__name__}: {err}"
    return {n: ATTACKS.get(n) for n in ATTACKS.names()}, missing


def accepted_options(cls: type) -> set[str]:
    """Keyword names a constructor accepts, following ``**kwargs`` up the class hierarchy."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names - {"self", "model"}


def our_options(cls: type, wanted: dict) -> tuple[dict, list[str]]:
    """The options of ``wanted`` that ``cls`` accepts, and the names it does not (left at its defaults)."""
    accepted = accepted_options(cls)
    options = {k: v for k, v in wanted.items() if k in accepted}
    if options.get("eps", 0) is None and not getattr(cls, "eps_optional", False):
        options.pop("eps")  # a capped attack: keep its own default budget
    return options, sorted(set(wanted) - accepted)


@dataclass
class AttackResult:
    attack: str
    impl: str
    time_s: float
    robust_acc: float
    success_rate: float
    l2_fooled: float  # NaN when no sample was fooled
    grad_calls: float | None
    queries: float | None
    iterations: str
    overhead: float | None = None
    first_call_s: float | None = None
    note: str = ""
    passes: int | None = None  # forward+backward passes per sample of a fixed-budget gradient attack
    linf_fooled: float = float("nan")  # mean L-inf of the fooled samples' perturbations; NaN when none was fooled
    timed_runs: int = 1  # rounds whose median time_s is (--attack-repeats)


def _scores(x: torch.Tensor, x_adv: torch.Tensor, logits: torch.Tensor,
            y: torch.Tensor) -> tuple[float, float, float, float]:
    """(robust accuracy, success rate, mean L2 and mean L-inf of the fooled samples' perturbations)."""
    pred = logits.argmax(1)
    fooled = pred != y
    delta = (x_adv - x).flatten(1)
    l2, linf = delta.norm(dim=1), delta.abs().amax(dim=1)
    if not bool(fooled.any()):
        return (pred == y).float().mean().item(), 0.0, float("nan"), float("nan")
    return ((pred == y).float().mean().item(), fooled.float().mean().item(), l2[fooled].mean().item(),
            linf[fooled].mean().item())


def run_ours(cls: type, name: str, options: dict, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             seed: int, device: torch.device, impl: str = "advdf", iterations: str = "") -> AttackResult:
    torch.manual_seed(seed)
    attack = cls(model, **options)
    out, seconds = timed(lambda: attack.run(x, y), device)
    acc, success, l2, linf = _scores(x, out.x_adv, out.logits, y)
    black_box = getattr(cls, "black_box", False)
    return AttackResult(name, impl, seconds, acc, success, l2,
                        None if black_box else out.grad_calls.float().mean().item(),
                        out.queries.float().mean().item() if black_box else None, iterations, linf_fooled=linf)


def run_theirs(ta_module, spec: Spec, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int,
               device: torch.device) -> AttackResult:
    """torchattacks' attack, timed alone; the bench then spends one forward (not timed) to score its output."""
    attack = getattr(ta_module, spec.theirs)(model, **spec.theirs_kwargs)
    torch.manual_seed(seed)
    x_adv, seconds = timed(lambda: attack(x, y), device)
    with torch.no_grad():
        logits = model(x_adv)
    acc, success, l2, linf = _scores(x, x_adv, logits, y)
    return AttackResult(spec.name, "torchattacks", seconds, acc, success, l2, None, None, spec.iterations,
                        linf_fooled=linf)


def run_reference(loaded: references.Loaded, spec: Spec, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  seed: int, device: torch.device) -> AttackResult:
    """ART's or foolbox's attack with the budget of advdf's options, timed alone (its construction, the wrapper
    and the bench's scoring forward are not timed); torch's and numpy's generators seeded right before it."""
    ra = loaded.ref.attacks[spec.name]
    go, to_tensor = loaded.ref.prepare(loaded.module, ra, spec.ours, model, x, y, device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    out, seconds = timed(go, device)
    x_adv = to_tensor(out)
    with torch.no_grad():
        logits = model(x_adv)
    acc, success, l2, linf = _scores(x, x_adv, logits, y)
    return AttackResult(spec.name, loaded.label, seconds, acc, success, l2, None, None, spec.iterations,
                        note=ra.class_name(spec.ours), linf_fooled=linf)


# --- PGD with the runtime options ---------------------------------------------------------------------------
FAST_VARIANTS = (
    ("channels_last", {"channels_last": True}, "channels_last"),
    ("bf16", {"precision": "bf16"}, "bf16 autocast"),
    ("compile", {"compile": True}, "compile fp32"),
    ("compile+channels_last+bf16", {"compile": True, "channels_last": True, "precision": "bf16"},
     "compile + channels_last + bf16"),
)
FALLBACK_COMBINATION = ("compile+channels_last", {"compile": True, "channels_last": True}, None)


def run_fast_pgd(cls: type, spec: Spec, options: dict, fast: dict, label: str, model: nn.Module, x: torch.Tensor,
                 y: torch.Tensor, seed: int, device: torch.device) -> AttackResult:
    """advdf's PGD with runtime options; a compiled variant first runs a 1-step warm-up (its compilation)."""
    first = None
    if fast.get("compile"):
        # No dynamo reset: graphs compiled in section 1 for the same model and shapes are reused, the warm-up
        # compiles what is new (the gradient-free forward, other strides), so its time is this variant's extra cost.
        warm = {**options, **fast, "steps": 1}
        first = run_ours(cls, "pgd", warm, model, x, y, seed, device).time_s
    result = run_ours(cls, "pgd", {**options, **fast}, model, x, y, seed, device, impl=f"advdf+{label}",
                      iterations=spec.iterations)
    result.first_call_s = first
    return result


# --- the report ---------------------------------------------------------------------------------------------
def _f(value: float | None, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}{suffix}"


def _secs(value: float | None) -> str:
    """Seconds with at least three significant digits."""
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 10 else f"{value:.3g}" if value >= 1e-3 else f"{value:.2e}"


ATTACK_COLUMNS = ["attack", "impl", "time s", "advdf time / this", "robust acc", "success rate", "mean L2 (fooled)",
                  "mean L-inf (fooled)", "grad calls / queries (ours)", "iterations", "overhead", "note"]
REFERENCE_IMPLS = ("torchattacks", *(ref.label for ref in references.REFERENCES))
IMPL_RANK = {"advdf": 0, **{impl: i + 1 for i, impl in enumerate(REFERENCE_IMPLS)}}


def _ratio(value: float) -> str:
    """A ratio with at least three significant digits (``0.0736x``, ``0.525x``, ``1.00x``, ``12.35x``)."""
    return f"{value:.2f}x" if value >= 1 else f"{value:#.3g}x"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Report:
    header: list[str]
    runtimes: list[RuntimeResult]
    forward_s: float
    results: list[AttackResult]
    fast: list[AttackResult]
    skipped_fast: list[str]
    notes: list[str]
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (attack, reference, why no number)

    def eager(self) -> float:
        return next(r.median_s for r in self.runtimes if not r.options)

    def render(self) -> str:
        eager = self.eager()
        rt_rows = []
        for r in self.runtimes:
            ratio = r.per_call / eager if r.per_call is not None else None
            rt_rows.append([r.label, _secs(r.median_s), _f(ratio, 2, "x"), _secs(r.first_s), str(r.timed_calls),
                            r.note])
        rt_rows.append(["eager fp32, forward only (no grad)", _secs(self.forward_s), _f(self.forward_s / eager, 2, "x"),
                        "—", "", "the final forward an attack spends on its result"])
        ours_time = {r.attack: r.time_s for r in self.results if r.impl == "advdf"}
        order = list(dict.fromkeys([r.attack for r in self.results] + [m[0] for m in self.missing]))
        keyed = []  # (attack's position, impl's rank, position): each attack's rows together, fast PGD last
        for i, r in enumerate(self.results):
            calls = _f(r.grad_calls, 1) if r.grad_calls is not None else (
                f"{r.queries:.1f} queries" if r.queries is not None else "—")
            ratio = _ratio(ours_time[r.attack] / r.time_s) \
                if r.impl in REFERENCE_IMPLS and r.attack in ours_time and r.time_s > 0 else "—"
            rank = IMPL_RANK.get(r.impl)
            key = (order.index(r.attack), rank, i) if rank is not None else (len(order), 0, i)
            keyed.append((key, [r.attack, r.impl, _secs(r.time_s), ratio, _f(r.robust_acc), _f(r.success_rate),
                                _f(r.l2_fooled), _f(r.linf_fooled, 4), calls, r.iterations, _f(r.overhead, 3, "x"),
                                r.note]))
        for i, (attack, impl, why) in enumerate(self.missing):
            keyed.append(((order.index(attack), IMPL_RANK[impl], len(self.results) + i),
                          [attack, impl, *["—"] * 9, why]))
        attack_rows = [row for _, row in sorted(keyed, key=lambda kr: kr[0])]
        parts = ["# Attack benchmark: advdf vs torchattacks, ART and foolbox", "", *[f"- {h}" for h in self.header],
                 "",
                 "## 1. One forward+backward w.r.t. the input",
                 "", "Cross-entropy loss, gradient w.r.t. the input batch; median of the timed calls after one "
                 "warm-up call (the first call; for torch.compile the compilation).", "",
                 markdown_table(["runtime", "median s", "vs eager fp32", "first call s", "timed calls", "note"],
                                rt_rows), "",
                 "## 2. Attacks", "",
                 "advdf time / this: advdf's time over a reference's (below 1: advdf is faster); robust acc: "
                 "share of samples still classified as their label; success rate: share whose prediction left the "
                 "label; mean L2 and L-inf: of the perturbation, over the fooled samples; grad calls / queries: "
                 "advdf's per-sample count; overhead: time / (passes x one eager fp32 forward+backward) for the "
                 "fixed-budget gradient attacks (advdf's time includes the forward that yields the logits of "
                 "its result; the references' times exclude the forward the bench spends to score their output; "
                 "ART's include its numpy <-> torch copies). \"—\": not measured (a reference without the "
                 "attack, or not installed; see the note).", "",
                 markdown_table(ATTACK_COLUMNS, attack_rows), ""]
        parts += ["## 3. PGD with the fast runtime options", ""]
        ours = next((r for r in self.results if r.attack == "pgd" and r.impl == "advdf"), None)
        theirs = next((r for r in self.results if r.attack == "pgd" and r.impl == "torchattacks"), None)
        if ours is None:
            parts += ["PGD was not run.", ""]
        else:
            rows = []
            for r in [ours, *self.fast]:
                rows.append([r.impl, _secs(r.time_s), _f(theirs.time_s / r.time_s, 2, "x") if theirs else "—",
                             _f(ours.time_s / r.time_s, 2, "x"), _f(r.robust_acc),
                             _f(r.robust_acc - ours.robust_acc, 3), _secs(r.first_call_s)])
            parts += [markdown_table(["variant", "time s", "speed-up vs torchattacks PGD", "speed-up vs advdf fp32",
                                      "robust acc", "Δ robust acc vs fp32", "first call s (compile warm-up)"], rows),
                      ""]
            parts += [f"- skipped: {s}" for s in self.skipped_fast] + ([""] if self.skipped_fast else [])
        parts += ["## Targets", "", markdown_table(["target", "measured", "status"], [list(t) for t in self.targets]),
                  ""]
        if self.notes:
            parts += ["## Notes", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(parts)


def evaluate_targets(report: Report) -> list[tuple[str, str, str]]:
    out = []
    # FGSM is a single step, not an iterative attack: its one final forward is a third of its cost
    overheads = [r for r in report.results if r.impl == "advdf" and r.overhead is not None and r.passes > 1]
    if overheads:
        worst = max(overheads, key=lambda r: r.overhead)
        values = ", ".join(f"{r.attack} {r.overhead:.3f}x" for r in overheads)
        loop_only = ", ".join(f"{r.attack} {(r.time_s - report.forward_s) / (r.time_s / r.overhead):.3f}x"
                              for r in overheads)
        out.append((f"iterative attacks' overhead <= {TARGET_OVERHEAD}x (eager fp32)",
                    f"{values}; worst {worst.attack} {worst.overhead:.3f}x (without the one final forward for the "
                    f"result's logits: {loop_only})",
                    "met" if worst.overhead <= TARGET_OVERHEAD else "not met"))
    else:
        out.append((f"iterative attacks' overhead <= {TARGET_OVERHEAD}x", "not measured", "not measured"))

    theirs_pgd = next((r for r in report.results if r.attack == "pgd" and r.impl == "torchattacks"), None)
    ours_pgd = next((r for r in report.results if r.attack == "pgd" and r.impl == "advdf"), None)
    name = f"PGD with fast options >= {TARGET_FAST_PGD:g}x faster than torchattacks PGD, robust acc within " \
           f"{ACC_TOLERANCE} of fp32"
    if theirs_pgd is None or ours_pgd is None or not report.fast:
        out.append((name, "not measured (needs advdf PGD, torchattacks PGD and a fast variant)", "not measured"))
    else:
        valid = [r for r in report.fast if abs(r.robust_acc - ours_pgd.robust_acc) <= ACC_TOLERANCE + 1e-9]
        pool = valid or report.fast
        best = max(pool, key=lambda r: theirs_pgd.time_s / r.time_s)
        speed = theirs_pgd.time_s / best.time_s
        met = bool(valid) and speed >= TARGET_FAST_PGD
        out.append((name, f"best {best.impl}: {speed:.2f}x, Δ robust acc {best.robust_acc - ours_pgd.robust_acc:+.3f}"
                    + ("" if valid else " (no variant within the accuracy tolerance)"), "met" if met else "not met"))
    for attack, label in (("deepfool", "DeepFool"), ("cw", "C&W")):
        ours = next((r for r in report.results if r.attack == attack and r.impl == "advdf"), None)
        theirs = next((r for r in report.results if r.attack == attack and r.impl == "torchattacks"), None)
        name = f"{label} >= {TARGET_MIN_NORM:g}x faster than torchattacks at >= its success rate"
        if ours is None or theirs is None:
            out.append((name, "not measured (attack not registered or torchattacks missing)", "not measured"))
            continue
        speed = theirs.time_s / ours.time_s
        measured = f"{speed:.2f}x; success {ours.success_rate:.3f} (advdf) vs {theirs.success_rate:.3f}"
        if ours.success_rate == 0 and theirs.success_rate == 0:
            out.append((name, f"{measured}: neither fooled a sample at this budget, the comparison says nothing",
                        "not measured"))
            continue
        met = speed >= TARGET_MIN_NORM and ours.success_rate >= theirs.success_rate
        out.append((name, measured, "met" if met else "not met"))
    return out


# --- the run ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_attacks", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50", help="registered detector (default resnet50)")
    p.add_argument("--input-size", type=int, default=None, help="input side (default 224, or the checkpoint's)")
    p.add_argument("--batch", type=int, default=8, help="images in the batch (default 8)")
    p.add_argument("--checkpoint", default=None, help="trained detector weights (safetensors); else random init")
    p.add_argument("--data", default=None, help="prepared data dir for --checkpoint (default: its training data)")
    p.add_argument("--attacks", default=None, help="comma-separated attack names (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward+backward calls per runtime (default 3)")
    p.add_argument("--attack-repeats", type=int, default=1,
                   help="rounds of every attack run, implementations in alternating order; the median time "
                        "(default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--budget", default="auto", choices=["auto", *BUDGETS],
                   help="iteration counts: full (GPU), small (CPU); auto picks by device")
    p.add_argument("--eps", default="8/255", help="L-inf budget of the L-inf attacks (default 8/255)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch's CPU threads (default: 1 on CPU, where OpenMP threads spin-waiting for each other "
                        "on a shared machine made ResNet-50 3x slower with 2 threads than with 1; torch's own "
                        "choice on CUDA)")
    p.add_argument("--seed", type=int, default=0, help="model init, inputs and every random attack (default 0)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="include the torch.compile runtimes and PGD variants (default on)")
    p.add_argument("--max-call-s", type=float, default=30.0,
                   help="a runtime whose warm-up fwd+bwd exceeds this gets no timed repeats, and runtimes adding "
                        "options to it are skipped (default 30)")
    p.add_argument("--max-run-s", type=float, default=300.0,
                   help="skip a fast PGD variant whose estimated time exceeds this (default 300)")
    p.add_argument("--skip-references", default="",
                   help="comma-separated references left out, of " + ", ".join(r.label for r in references.REFERENCES)
                        + " (default: none; torchattacks always runs)")
    p.add_argument("--out", default="artifacts/bench/attacks.md", help="markdown report (JSON beside it)")
    return p.parse_args(argv)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _validate(args: argparse.Namespace, specs: dict[str, Spec]) -> list[str]:
    if args.batch < 1:
        raise ConfigError(f"--batch must be positive, got {args.batch}")
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {args.repeats}")
    if args.attack_repeats < 1:
        raise ConfigError(f"--attack-repeats must be at least 1, got {args.attack_repeats}")
    known = {r.label.lower() for r in references.REFERENCES}
    args.skip_references = {r.strip().lower() for r in args.skip_references.split(",") if r.strip()}
    if args.skip_references - known:
        raise ConfigError(f"--skip-references: unknown {', '.join(sorted(args.skip_references - known))}; choose from "
                          + ", ".join(r.label for r in references.REFERENCES))
    if args.input_size is not None and args.input_size < 8:
        raise ConfigError(f"--input-size must be at least 8, got {args.input_size}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be positive, got {args.threads}")
    names = list(specs) if not args.attacks else [a.strip().lower() for a in args.attacks.split(",") if a.strip()]
    unknown = [n for n in names if n not in specs]
    if unknown or not names:
        raise ConfigError(f"--attacks: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(specs)}")
    return names


def bench(args: argparse.Namespace) -> Report:
    from advdf.jobs.common import resolve_device

    started = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    device = resolve_device(args.device)
    eps = parse_budget(args.eps, "--eps")
    if not 0 < eps <= 1:
        raise ConfigError(f"--eps must be in (0, 1], got {args.eps}")
    budget_name = args.budget if args.budget != "auto" else ("full" if device.type == "cuda" else "small")
    budget = BUDGETS[budget_name]
    specs = attack_specs(budget, eps, args.seed)
    names = _validate(args, specs)
    if args.threads is None and device.type == "cpu":
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.checkpoint is not None and args.input_size is None:
        args.input_size = _training_config(Path(args.checkpoint)).get("model", {}).get("input_size")
    args.input_size = args.input_size or 224
    classes, import_errors = registered_attacks()
    try:
        import torchattacks
    except ImportError as err:
        torchattacks, ta_version = None, f"not installed ({err}); comparison skipped"
    else:
        ta_version = torchattacks.__version__
    refs = references.load_references()
    skipped_refs = [ref.label for ref in refs if ref.label.lower() in args.skip_references]
    refs = [ref for ref in refs if ref.label not in skipped_refs]

    model, x, y, label_note = build_setup(args, device)
    notes: list[str] = []
    runnable = []
    for n in names:
        if n in classes:
            runnable.append(n)
        else:
            notes.append(f"{n}: skipped, not registered"
                         + (f" ({import_errors[n]})" if n in import_errors else " (its module is not written yet)"))

    # 1. forward+backward under each runtime
    runtimes: list[RuntimeResult] = []
    slow: list[frozenset[str]] = []
    for rt in RUNTIMES:
        if rt.compile and not args.compile:
            runtimes.append(RuntimeResult(rt.label, sorted(rt.options), note="skipped (--no-compile)"))
            continue
        blocker = next((s for s in slow if s and s <= rt.options), None)
        if blocker is not None:
            runtimes.append(RuntimeResult(rt.label, sorted(rt.options),
                                          note=f"skipped: {' + '.join(sorted(blocker))} alone exceeded --max-call-s"))
            continue
        res = measure_fwd_bwd(model, x, y, rt, device, args.repeats, args.max_call_s)
        runtimes.append(res)
        if res.per_call is not None and res.per_call > args.max_call_s and rt.options:
            slow.append(rt.options)
        if not rt.options and res.median_s is None:
            raise ConfigError(f"eager fp32 forward+backward could not be timed: {res.note}")
    forward_s = measure_forward(model, x, device, args.repeats)
    eager = runtimes[0].median_s
    per_call = {r.label: r.per_call for r in runtimes}

    # 2. and 3. the attacks, then PGD's fast variants
    jobs = []
    for n in runnable:
        jobs.append((n, "advdf"))
        if specs[n].theirs is not None and torchattacks is not None:
            jobs.append((n, "torchattacks"))
        jobs += [(n, ref.label) for ref in refs if ref.installed and n in ref.ref.attacks]
    fast_plan, skipped_fast = [], []
    if "pgd" in runnable:
        variants = list(FAST_VARIANTS)
        while variants:
            label, fast, rt_label = variants.pop(0)
            reason = None
            estimate_call = per_call.get(rt_label or "compile fp32")
            if fast.get("compile") and not args.compile:
                reason = "--no-compile"
            elif estimate_call is None:
                reason = "its forward+backward was not measured (see section 1)"
            else:
                estimate = budget.pgd_steps * estimate_call + forward_s
                if estimate > args.max_run_s:
                    reason = (f"estimated {estimate:.0f} s ({budget.pgd_steps} x {estimate_call:.1f} s per "
                              f"forward+backward) > --max-run-s {args.max_run_s:g}")
            if reason is None:
                fast_plan.append((label, fast))
                jobs.append(("pgd", f"advdf+{label}"))
                continue
            skipped_fast.append(f"{label}: {reason}")
            if label == FAST_VARIANTS[-1][0] and args.compile:
                variants.append(FALLBACK_COMBINATION)  # the combination without bf16, which is too slow here
    if torchattacks is None:
        notes.append(f"torchattacks {ta_version}")
    elif "nes" in runnable:
        notes.append("nes: torchattacks has no NES: advdf only")
    notes += [ref.note() for ref in refs if not ref.installed]
    notes += [f"{label}: skipped (--skip-references)" for label in skipped_refs]
    missing = [(n, ref.label, "not installed" if not ref.installed else f"{ref.label} has no {n}")
               for n in runnable for ref in refs if not ref.installed or n not in ref.ref.attacks]

    def run_job(name: str, impl: str, first: bool) -> AttackResult | None:
        """One timed run of ``name`` by ``impl``; the first round also records notes and failures."""
        spec, cls = specs[name], classes[name]
        options, dropped = our_options(cls, spec.ours)
        if impl == "advdf":
            res = run_ours(cls, name, options, model, x, y, args.seed, device, iterations=spec.iterations)
            if dropped:
                res.note = f"advdf's {cls.__name__} has no option {', '.join(dropped)}: its default is used"
            if first and spec.differences and spec.theirs and torchattacks is not None:
                notes.append(f"{name}: {spec.differences}")
            return res
        if impl == "torchattacks":
            return run_theirs(torchattacks, spec, model, x, y, args.seed, device)
        if impl in REFERENCE_IMPLS:
            loaded = next(ref for ref in refs if ref.label == impl)
            try:
                res = run_reference(loaded, spec, model, x, y, args.seed, device)
            except Exception as err:  # noqa: BLE001 - a reference's own failure: reported as "—", never fatal
                missing.append((name, impl, f"failed: {type(err).__name__}: {str(err).strip().splitlines()[0][:160]}"
                                if str(err).strip() else f"failed: {type(err).__name__}"))
                return None
            differences = loaded.ref.attacks[name].differences
            if first and differences:
                notes.append(f"{name} ({impl}): {differences}")
            return res
        label, fast = next(f for f in fast_plan if f"advdf+{f[0]}" == impl)
        return run_fast_pgd(cls, spec, options, fast, label, model, x, y, args.seed, device)

    # Rounds: every implementation of an attack runs once per round, in the listed order in even rounds and in
    # the reverse order in odd ones (no implementation always runs first); times are the median over rounds, the
    # scores those of the first round (every random attack is seeded alike in each).
    recorded: dict[tuple[str, str], AttackResult] = {}
    times: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}
    failed: set[tuple[str, str]] = set()
    groups: dict[str, list[tuple[str, str]]] = {}
    for job in jobs:
        groups.setdefault(job[0], []).append(job)
    bar = tqdm(total=len(jobs) * args.attack_repeats, desc="attacks", unit="run", file=sys.stderr)
    for rnd in range(args.attack_repeats):
        order = [job for group in groups.values() for job in (group if rnd % 2 == 0 else group[::-1])]
        for job in order:
            bar.set_postfix_str(f"{job[0]} ({job[1]}), round {rnd + 1}/{args.attack_repeats}")
            bar.update()
            if job in failed:
                continue
            res = run_job(*job, first=rnd == 0)
            if res is None:
                failed.add(job)
                continue
            times[job].append(res.time_s)
            recorded.setdefault(job, res)
    bar.close()
    results = [recorded[job] for job in jobs if job in recorded]
    fast_results = [r for r in results if r.impl.startswith("advdf+")]
    for job, res in recorded.items():
        res.time_s = statistics.median(times[job])
        res.timed_runs = len(times[job])
        spec = specs[job[0]]
        if spec.passes is not None and res.impl in ("advdf", *REFERENCE_IMPLS):
            res.overhead = res.time_s / (spec.passes * eager)
            res.passes = spec.passes

    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({_cpu_name()}, {os.cpu_count()} cores), torch threads: {torch.get_num_threads()} (--threads)"
    header = [
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; device: {device_name}; "
        f"1-min load average {load_start:.1f} at the start, {load_end:.1f} at the end (other processes share the "
        f"machine when it exceeds the core count: timings are then noisier)",
        f"torch {torch.__version__}; torchattacks {ta_version}; "
        + "; ".join(f"{ref.label} {ref.version}" for ref in refs) + f"; python {platform.python_version()}",
        f"model: {label_note}",
        f"input {args.input_size} px, batch {args.batch}, eval mode; untargeted; L-inf eps = {args.eps} for the "
        f"L-inf attacks; C&W and DeepFool are minimum-norm L2 attacks without a cap",
        f"budget preset {budget_name!r}: {budget.describe()}",
        f"every random attack is seeded with {args.seed} right before it runs (advdf and the references alike; "
        f"ART and foolbox: torch's and numpy's generators)",
        f"attack times: the median of {args.attack_repeats} round(s) (--attack-repeats), each running every "
        f"implementation of an attack in turn, in alternating order",
        f"bench wall time: {time.perf_counter() - started:.0f} s",
    ]
    report = Report(header, runtimes, forward_s, results, fast_results, skipped_fast, notes, missing=missing)
    report.targets = evaluate_targets(report)
    return report


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    try:
        report = bench(args)
    except AdvdfError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        torch.set_num_threads(threads)  # --threads is this run's setting only
    text = report.render()
    out = Path(args.out)
    atomic_write_text(out, text)
    atomic_write_json(out.with_suffix(".json"), {
        "header": report.header, "runtimes": [asdict(r) for r in report.runtimes], "forward_s": report.forward_s,
        "results": [asdict(r) for r in report.results], "skipped_fast": report.skipped_fast,
        "targets": [dict(zip(("target", "measured", "status"), t, strict=True)) for t in report.targets],
        "notes": report.notes,
        "missing": [dict(zip(("attack", "impl", "reason"), m, strict=True)) for m in report.missing],
    })
    print(text)
    print(f"written: {out} and {out.with_suffix('.json')}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
