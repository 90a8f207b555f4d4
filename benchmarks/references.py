"""The attack benchmark's optional references beyond torchattacks: IBM's Adversarial Robustness Toolbox and foolbox.

Each reference is optional (``pip install advdf[bench]``, which ``make bench-attacks`` installs). Where one has an
attack of the bench, it runs it with the budget of advdf's options for that attack (:class:`Spec.ours
<benchmarks.bench_attacks.Spec>`), on the same model and inputs, with torch's and numpy's generators seeded right
before it runs:

* ART (``art``): the detector wrapped in a ``PyTorchClassifier`` (input in [0, 1], ``clip_values=(0, 1)``,
  ``nb_classes=2``, cross-entropy loss, on the bench's device); its attacks take and return numpy arrays, so the
  timed call includes ART's own host <-> device copies. FGSM ``FastGradientMethod``, BIM ``BasicIterativeMethod``,
  PGD ``ProjectedGradientDescentPyTorch``, MI-FGSM ``MomentumIterativeMethod``, APGD ``AutoProjectedGradientDescent``
  (``loss_type="cross_entropy"``), C&W ``CarliniL2Method``, DeepFool ``DeepFool``, Square ``SquareAttack``.
* foolbox (``foolbox``): the detector wrapped in a ``PyTorchModel(bounds=(0, 1))``. FGSM ``FGSM``, BIM
  ``LinfBasicIterativeAttack``, PGD ``LinfPGD``, C&W ``L2CarliniWagnerAttack``, DeepFool ``L2DeepFoolAttack`` (or
  ``LinfDeepFoolAttack`` for an L-inf DeepFool).

A reference that is not installed, or that has no such attack, gets no number: the report prints "—" for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import torch
from torch import nn

NB_CLASSES = 2  # every advdf detector has two logits (real, fake)
INSTALL_HINT = "pip install advdf[bench]"


@dataclass(frozen=True)
class RefAttack:
    """How one reference runs one of the bench's attacks.

    ``kwargs(ours, batch)`` maps advdf's options of the attack (the bench's :class:`Spec.ours`) to the reference
    class's constructor arguments; ``epsilons(ours)`` is foolbox's ``epsilons`` argument (``None``: a
    minimum-norm attack, unbounded).
    """

    cls: str | Callable[[dict], str]  # the class name in the reference's attack module, or (ours) -> it
    kwargs: Callable[[dict, int], dict]
    epsilons: Callable[[dict], float | None] = field(default=lambda o: o.get("eps"))
    differences: str = ""
    zeros_mean_failure: bool = False  # foolbox's C&W returns an all-zero image for a sample it did not fool

    def class_name(self, ours: dict) -> str:
        return self.cls(ours) if callable(self.cls) else self.cls


@dataclass(frozen=True)
class Reference:
    label: str  # the report's impl column
    module: str  # the import name
    attacks: dict[str, RefAttack]
    # (loaded module, RefAttack, advdf's options, model, x, y, device) -> (a call to time, its output -> x_adv)
    prepare: Callable[..., tuple[Callable[[], object], Callable[[object], torch.Tensor]]]
    submodules: tuple[str, ...] = ()


@dataclass
class Loaded:
    """A reference as found on this machine: its module, or why it is missing."""

    ref: Reference
    module: ModuleType | None
    version: str  # the installed version, or "not installed"
    error: str = ""

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def installed(self) -> bool:
        return self.module is not None

    def note(self) -> str:
        """The report's one line for a reference that is missing."""
        return f"{self.label} not installed: {INSTALL_HINT}" + (f" ({self.error})" if self.error else "")


# --- ART ----------------------------------------------------------------------------------------------------
def _art_prepare(art: ModuleType, ra: RefAttack, ours: dict, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 device: torch.device):
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=NB_CLASSES, clip_values=(0.0, 1.0),
                                   device_type="gpu" if device.type == "cuda" else "cpu")
    attack = getattr(art.attacks.evasion, ra.class_name(ours))(classifier, **ra.kwargs(ours, len(x)))
    xn, yn = x.detach().cpu().numpy(), y.detach().cpu().numpy()
    return (lambda: attack.generate(xn, yn)), (lambda out: torch.from_numpy(np.asarray(out)).to(device, x.dtype))


def _inf(o: dict) -> dict:
    return {"norm": np.inf, "eps": o["eps"]}


ART = Reference("ART", "art", {
    "fgsm": RefAttack("FastGradientMethod", lambda o, n: {
        **_inf(o), "targeted": False, "num_random_init": 0, "batch_size": n, "minimal": False}),
    "bim": RefAttack("BasicIterativeMethod", lambda o, n: {
        "eps": o["eps"], "eps_step": o["alpha"], "max_iter": o["steps"], "targeted": False, "batch_size": n,
        "verbose": False}),
    "pgd": RefAttack("ProjectedGradientDescentPyTorch", lambda o, n: {
        **_inf(o), "eps_step": o["alpha"], "max_iter": o["steps"], "targeted": False,
        "num_random_init": int(bool(o.get("random_start"))), "batch_size": n, "random_eps": False, "verbose": False},
        differences="its random start is drawn from numpy's generator (seeded alike, other draws)"),
    "mifgsm": RefAttack("MomentumIterativeMethod", lambda o, n: {
        **_inf(o), "eps_step": o["alpha"], "decay": o["decay"], "max_iter": o["steps"], "targeted": False,
        "batch_size": n, "verbose": False},
        differences="the gradient is divided by its L1 norm as advdf's; ART's PGD loop underneath"),
    "apgd": RefAttack("AutoProjectedGradientDescent", lambda o, n: {
        **_inf(o), "eps_step": 2 * o["eps"], "max_iter": o["steps"], "targeted": False,
        "nb_random_init": o.get("n_restarts", 1), "batch_size": n, "loss_type": "cross_entropy", "verbose": False},
        differences="initial step 2*eps as advdf's; rho and the momentum 0.75 are fixed in ART; a random start "
                    "from numpy's generator always, even with one restart; one more forward per step for the "
                    "loss of the new iterate"),
    "cw": RefAttack("CarliniL2Method", lambda o, n: {
        "confidence": o["kappa"], "targeted": False, "learning_rate": o["lr"],
        "binary_search_steps": o["binary_search_steps"], "max_iter": o["steps"], "initial_const": o["c"],
        "batch_size": n, "verbose": False},
        differences="not Adam: gradient steps with a line search on the learning rate (up to 5 halvings and 5 "
                    "doublings per iteration, a forward each), in numpy; same c, kappa, steps and binary-search "
                    "steps; a sample it does not fool is returned unchanged"),
    "deepfool": RefAttack("DeepFool", lambda o, n: {
        "max_iter": o["steps"], "epsilon": o["overshoot"], "nb_grads": NB_CLASSES, "batch_size": n,
        "verbose": False},
        differences="the gradients of both logits at each step (one backward each); the overshoot scales the "
                    "accumulated perturbation, as advdf"),
    "square": RefAttack("SquareAttack", lambda o, n: {
        **_inf(o), "max_iter": o["n_queries"], "p_init": o["p_init"], "nb_restarts": 1, "batch_size": n,
        "verbose": False},
        differences="margin loss on the logits; max_iter = advdf's query budget; random squares from numpy's "
                    "generator"),
}, _art_prepare, submodules=("art.attacks.evasion", "art.estimators.classification"))


# --- foolbox ------------------------------------------------------------------------------------------------
def _foolbox_prepare(fb: ModuleType, ra: RefAttack, ours: dict, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     device: torch.device):
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    attack = getattr(fb.attacks, ra.class_name(ours))(**ra.kwargs(ours, len(x)))
    epsilons = ra.epsilons(ours)

    def run() -> torch.Tensor:
        _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=epsilons)
        return clipped

    def x_adv(out: object) -> torch.Tensor:
        out = out.detach()
        if ra.zeros_mean_failure:  # an all-zero "adversarial" is foolbox's placeholder for "not found"
            failed = (out.flatten(1) == 0).all(1) & ~(x.flatten(1) == 0).all(1)
            out = torch.where(failed.view(-1, *[1] * (x.dim() - 1)), x, out)
        return out

    return run, x_adv


def _deepfool_class(o: dict) -> str:
    return "LinfDeepFoolAttack" if str(o.get("norm", "l2")).lower() in ("linf", "inf") else "L2DeepFoolAttack"


FOOLBOX = Reference("foolbox", "foolbox", {
    "fgsm": RefAttack("FGSM", lambda o, n: {"random_start": False}),
    "bim": RefAttack("LinfBasicIterativeAttack", lambda o, n: {
        "abs_stepsize": o["alpha"], "steps": o["steps"], "random_start": False}),
    "pgd": RefAttack("LinfPGD", lambda o, n: {
        "abs_stepsize": o["alpha"], "steps": o["steps"], "random_start": bool(o.get("random_start"))},
        differences="its random start is drawn from torch's generator through eagerpy (seeded alike, other draws)"),
    "cw": RefAttack("L2CarliniWagnerAttack", lambda o, n: {
        "binary_search_steps": o["binary_search_steps"], "steps": o["steps"], "stepsize": o["lr"],
        "confidence": o["kappa"], "initial_const": o["c"], "abort_early": bool(o.get("abort_early", True))},
        epsilons=lambda o: None, zeros_mean_failure=True,
        differences="Adam in tanh space as advdf, same c, kappa, steps, lr; aborts early for the whole batch once "
                    "the summed loss fell by less than 0.01 % since the last check (every steps/10); a sample it does not fool comes "
                    "back as an all-zero image, which the bench scores as the clean input"),
    "deepfool": RefAttack(_deepfool_class, lambda o, n: {
        "steps": o["steps"], "candidates": NB_CLASSES, "overshoot": o["overshoot"], "loss": "logits"},
        epsilons=lambda o: None,
        differences="logit-difference loss over both classes; the overshoot scales the accumulated perturbation"),
}, _foolbox_prepare)

REFERENCES: tuple[Reference, ...] = (ART, FOOLBOX)


def import_reference(module: str) -> ModuleType:
    """The one place a reference is imported (tests make it fail to simulate a missing package)."""
    return importlib.import_module(module)


def load_references() -> list[Loaded]:
    """Every reference, imported where installed; an import that fails for any reason counts as not installed."""
    out = []
    for ref in REFERENCES:
        try:
            module = import_reference(ref.module)
            for sub in ref.submodules:  # ``import art`` does not import its attacks and estimators
                import_reference(sub)
        except Exception as err:  # noqa: BLE001 - ImportError, or a broken install: reported, never fatal
            absent = isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] == ref.module
            why = "" if absent else f"{type(err).__name__}: {err}".splitlines()[0][:160]  # a broken install
            out.append(Loaded(ref, None, "not installed", why))
            continue
        out.append(Loaded(ref, module, str(getattr(module, "__version__", "?"))))
    return out
