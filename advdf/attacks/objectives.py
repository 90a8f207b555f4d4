"""What an attack optimizes, kept apart from how it optimizes.

An :class:`Objective` says how the model is evaluated at a point, scores the result (one value per sample, the
quantity the attack *maximizes*), says which samples reached their goal and which per-sample tensors are
worth returning. Attacks (:mod:`advdf.attacks.base` and its subclasses) own the threat model and the search;
they only ever touch the model's output through their objective, so one attack runs unchanged on a
classifier, a segmenter or a masked model.

Everything an objective needs per sample (a goal class, a target mask, the clean image and a pixel mask, ...)
travels in a :class:`Context`: a dict of tensors whose first dimension is the batch. Attacks index a context
exactly like they index ``x`` when they compact their batch (early exit, sub-batches) or stack copies of it
(SIM), so sample ``i``'s context always stays with sample ``i``.

Model outputs (:data:`Output`) are a tensor or a dict of tensors, each with the batch as first dimension and
any trailing shape; the helpers below select, write and concatenate their rows.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping

import torch

from advdf.attacks.losses import get_loss

Output = torch.Tensor | dict[str, torch.Tensor]
Rows = torch.Tensor | slice


class Context:
    """Per-sample tensors, batch first, indexed and repeated together.

    ``ctx["goal"]`` reads a field; ``ctx[rows]`` (an index tensor, a bool mask or a slice) selects samples of
    every field; ``ctx.repeat(k)`` stacks ``k`` whole-batch copies, copy-major, like ``torch.cat([x] * k)``.

    Args:
        fields: name -> tensor; all tensors share their first dimension.
        **more: more fields, given by keyword.
    """

    def __init__(self, fields: Mapping[str, torch.Tensor] | None = None, **more: torch.Tensor) -> None:
        self.fields = {**(fields or {}), **more}
        sizes = {k: v.shape[0] for k, v in self.fields.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"context fields must share their batch size, got {sizes}")

    def __getitem__(self, key: str | Rows) -> torch.Tensor | Context:
        if isinstance(key, str):
            return self.fields[key]
        return Context({k: v[key] for k, v in self.fields.items()})

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __repr__(self) -> str:
        return f"Context({', '.join(f'{k}: {tuple(v.shape)}' for k, v in self.fields.items())})"

    def repeat(self, k: int) -> Context:
        """``k`` copies of the batch stacked along the first dimension (copy-major)."""
        return Context({n: v.repeat(k, *([1] * (v.ndim - 1))) for n, v in self.fields.items()})

    def update(self, other: Context | Mapping[str, torch.Tensor]) -> Context:
        """A new context with ``other``'s fields added (they win over fields of the same name)."""
        return Context({**self.fields, **(other.fields if isinstance(other, Context) else other)})


# --- model outputs: a tensor or a dict of tensors, batch first ---------------------------------------------
def map_output(fn: Callable[[torch.Tensor], torch.Tensor], out: Output) -> Output:
    """``fn`` applied to every tensor of ``out``."""
    return {k: fn(v) for k, v in out.items()} if isinstance(out, Mapping) else fn(out)


def take_rows(out: Output, rows: Rows) -> Output:
    """The rows ``rows`` of every tensor of ``out``."""
    return map_output(lambda t: t[rows], out)


def put_rows(dst: Output, rows: Rows, src: Output) -> Output:
    """Write ``src`` into the rows ``rows`` of ``dst`` in place; returns ``dst``."""
    if isinstance(dst, Mapping):
        for k, v in dst.items():
            v[rows] = src[k]
    else:
        dst[rows] = src
    return dst


def zeros_rows(out: Output, n: int) -> Output:
    """Zeros shaped like ``out`` with ``n`` rows (dtype and device of each tensor kept)."""
    return map_output(lambda t: t.new_zeros((n, *t.shape[1:])), out)


def cat_outputs(outs: list[Output]) -> Output:
    """Concatenate outputs of consecutive sub-batches."""
    if isinstance(outs[0], Mapping):
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    return torch.cat(outs)


class Objective(abc.ABC):
    """What an attack maximizes, per sample; subclasses implement :meth:`score` and :meth:`success`."""

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        """The per-sample context of clean images ``x`` and targets ``y`` (those :meth:`Attack.run` got)."""
        return Context(target=y)

    def output(self, model_call: Callable[[torch.Tensor], Output], z: torch.Tensor, ctx: Context) -> Output:
        """The model's output at the points ``z`` of the samples in ``ctx`` (``model_call`` is the attack's).

        Overridden by objectives that evaluate the model on something derived from ``z`` (KRA's masked image).
        """
        return model_call(z)

    @abc.abstractmethod
    def score(self, output: Output, ctx: Context) -> torch.Tensor:
        """Per-sample value the attack maximizes, shape (N,), differentiable in the output."""

    @abc.abstractmethod
    def success(self, output: Output, ctx: Context) -> torch.Tensor:
        """Per-sample bool (N,): the sample reached its goal at this output."""

    def report(self, output: Output) -> dict[str, torch.Tensor]:
        """Per-sample tensors the attack's result carries (``AttackOutput.extras``)."""
        return dict(output) if isinstance(output, Mapping) else {"output": output}


class Classification(Objective):
    """Logits (N, C) and a class per sample: away from the true class, or toward ``target``.

    Args:
        loss: ``"ce"`` or ``"margin"`` (see :mod:`advdf.attacks.losses`).
        targeted: aim for ``target`` instead of away from the true label.
        target: class index a targeted attack aims for (0 = "real").

    The context holds ``goal``: the target class when targeted, else the true label. Success is the argmax
    reaching the goal (targeted) or leaving it (untargeted); the report is ``{"logits": logits}``.
    """

    def __init__(self, loss: str = "ce", targeted: bool = False, target: int = 0) -> None:
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.targeted = targeted
        self.target = target

    def __repr__(self) -> str:
        return f"Classification(loss={self.loss_name}, targeted={self.targeted}, target={self.target})"

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        return Context(goal=torch.full_like(y, self.target) if self.targeted else y)

    def score(self, output: torch.Tensor, ctx: Context) -> torch.Tensor:
        return self.loss_fn(output, ctx["goal"], self.targeted)

    def success(self, output: torch.Tensor, ctx: Context) -> torch.Tensor:
        pred = output.argmax(1)
        return pred == ctx["goal"] if self.targeted else pred != ctx["goal"]

    def report(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": output}
