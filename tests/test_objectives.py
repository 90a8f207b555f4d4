"""Objectives: attacks run unchanged on a second, non-classification objective; Context; Classification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advdf.attacks import Classification, Context, Objective, create_attack
from advdf.attacks.losses import cross_entropy, margin
from advdf.errors import ConfigError

EPS = 0.2
IOU = 0.7
# small budgets; every attack that takes a step size gets 0.02 so ten steps can cross the ball
BUDGETS = {
    "fgsm": {}, "bim": {"steps": 10, "alpha": 0.02}, "pgd": {"steps": 10, "alpha": 0.02},
    "mifgsm": {"steps": 10},
    "tifgsm": {"steps": 10, "kernel_size": 3}, "apgd": {"steps": 10},
    "nes": {"steps": 5, "restarts": 1, "n_samples": 8, "alpha": 0.02}, "square": {"n_queries": 60},
}
WHITE_BOX = ["fgsm", "bim", "pgd", "mifgsm", "tifgsm", "apgd"]

pytestmark = pytest.mark.usefixtures("one_thread")


class TwoHead(nn.Module):
    """A classification head and a segmentation head on one small conv body; Dropout makes the mode matter."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5))
            self.seg = nn.Conv2d(8, 1, 3, padding=1)
            self.cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
        with torch.no_grad():
            self.seg.weight.mul_(20)  # mask logits that react to a bounded perturbation

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"logits": self.cls(h), "mask": self.seg(h)}


class MaskAgreement(Objective):
    """Maximize the agreement of the predicted mask with each sample's target mask; success: IoU >= ``iou``.

    The context carries the target mask and the clean image of each sample; :meth:`output` checks that every
    row the attack evaluates lies near its own sample's clean image, i.e. that the context stayed with its
    sample through every compaction and sub-batch.
    """

    def __init__(self, iou: float = IOU, radius: float = EPS + 0.05) -> None:
        self.iou, self.radius = iou, radius
        self.batch_sizes: list[int] = []

    def bind(self, x: torch.Tensor, y: torch.Tensor) -> Context:
        return Context(target=y.float(), clean=x)

    def output(self, model_call, z, ctx):
        near = (z - ctx["clean"]).abs().flatten(1).amax(1) <= self.radius
        assert near.all(), "a row met another sample's context"
        self.batch_sizes.append(len(z))
        return model_call(z)

    def score(self, output, ctx):
        bce = F.binary_cross_entropy_with_logits(output["mask"], ctx["target"], reduction="none")
        return -bce.flatten(1).mean(1)

    def success(self, output, ctx):
        pred, tgt = output["mask"] > 0, ctx["target"] > 0.5
        inter, union = (pred & tgt).flatten(1).sum(1), (pred | tgt).flatten(1).sum(1)
        return inter / union.clamp_min(1) >= self.iou

    def report(self, output):
        return {"mask": output["mask"]}


@pytest.fixture
def seg_batch():
    """Six images with target masks the model predicts at points of growing distance (0 for the first two)."""
    model = TwoHead().eval()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1)).sign()
    scale = torch.tensor([0.0, 0.0, 0.05, 0.1, 0.15, 0.4]).view(-1, 1, 1, 1)
    with torch.no_grad():
        target = model((x + scale * noise).clamp(0, 1))["mask"] > 0
    return model, x, target


def seg_attack(name, model, objective, **kw):
    return create_attack(name, model, eps=EPS, objective=objective, **{**BUDGETS[name], **kw})


@pytest.mark.parametrize("name", list(BUDGETS))
def test_attacks_run_unchanged_on_a_segmentation_objective(name, seg_batch):
    model, x, target = seg_batch
    objective = MaskAgreement()
    x_before = x.clone()
    model.train()
    torch.manual_seed(0)
    out = seg_attack(name, model, objective).run(x, target)
    assert torch.equal(x, x_before) and all(m.training for m in model.modules())
    assert out.x_adv.shape == x.shape and torch.isfinite(out.x_adv).all()
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1 and (out.x_adv - x).abs().max() <= EPS + 1e-6
    assert set(out.extras) == {"mask"} and out.extras["mask"].shape == (6, 1, 16, 16)
    assert out.logits is out.extras["mask"]  # no "logits" reported: the main output is the first tensor
    ctx = objective.bind(x, target)
    with torch.no_grad():
        adv, clean = model.eval()(out.x_adv), model(x)
    assert torch.allclose(out.extras["mask"], adv["mask"], atol=1e-5)  # the masks of the returned points
    assert torch.equal(out.success, objective.success(adv, ctx))
    assert objective.score(adv, ctx).mean() > objective.score(clean, ctx).mean()
    assert out.grad_calls.shape == (6,) and out.queries.shape == (6,)
    if name in ("apgd", "nes", "square"):  # they return their best point: never below the clean score
        assert (objective.score(adv, ctx) >= objective.score(clean, ctx) - 1e-6).all()


@pytest.mark.parametrize("name", WHITE_BOX)
def test_early_stop_freezes_samples_with_their_own_context(name, seg_batch):
    model, x, target = seg_batch
    objective = MaskAgreement()
    ctx = objective.bind(x, target)
    torch.manual_seed(0)
    full = seg_attack(name, model, MaskAgreement()).run(x, target)
    torch.manual_seed(0)
    quick = seg_attack(name, model, objective, early_stop=True).run(x, target)
    with torch.no_grad():
        adv = model.eval()(quick.x_adv)
        clean_ok = objective.success(model(x), ctx)
    assert clean_ok[:2].all() and not clean_ok.all()  # some samples start at their goal, some do not
    # each sample was judged against its own target mask, at the point it was frozen at
    assert torch.equal(quick.success, objective.success(adv, ctx)) and quick.success.all()
    assert torch.equal(quick.success, full.success)
    assert torch.allclose(quick.extras["mask"], adv["mask"], atol=1e-5)
    assert (quick.grad_calls <= full.grad_calls).all()
    assert (quick.grad_calls[clean_ok] == 1).all()  # frozen at the first evaluation
    if name != "fgsm":
        assert len(set(quick.grad_calls.tolist())) > 1  # samples retired at different steps
        assert min(objective.batch_sizes) < len(x)  # compacted sub-batches ran, each with its context rows
    if name in ("fgsm", "bim", "mifgsm", "tifgsm"):  # no random start: frozen at the clean image itself
        assert torch.equal(quick.x_adv[clean_ok], x[clean_ok])
        assert torch.allclose(quick.clean_logits, model(x)["mask"], atol=1e-5)  # the first step's masks


@pytest.mark.parametrize("name", ["cw", "deepfool"])
def test_logit_attacks_refuse_other_objectives(name, seg_batch):
    model, _, _ = seg_batch
    with pytest.raises(ConfigError, match="Classification objective"):
        create_attack(name, model, objective=MaskAgreement())


def test_objective_and_classification_options_conflict(tiny_model):
    with pytest.raises(ConfigError, match="objective"):
        create_attack("pgd", tiny_model, objective=Classification(), loss="margin")
    attack = create_attack("pgd", tiny_model, objective=Classification("margin", targeted=True, target=1))
    assert (attack.loss_name, attack.targeted, attack.target) == ("margin", True, 1)
    default = create_attack("pgd", tiny_model)
    assert isinstance(default.objective, Classification)
    assert (default.loss_name, default.targeted, default.target) == ("ce", False, 0)


def test_context_indexes_and_repeats_every_field_together():
    ctx = Context(goal=torch.tensor([0, 1, 2]), mask=torch.arange(3 * 4.0).view(3, 1, 2, 2))
    assert torch.equal(ctx["goal"], torch.tensor([0, 1, 2])) and "mask" in ctx and "x" not in ctx
    for rows in (torch.tensor([2, 0]), torch.tensor([True, False, True]), slice(1, 3)):
        sub = ctx[rows]
        assert torch.equal(sub["goal"], ctx["goal"][rows]) and torch.equal(sub["mask"], ctx["mask"][rows])
    rep = ctx[torch.tensor([2, 0])].repeat(3)  # copy-major, like torch.cat([x] * 3)
    assert rep["goal"].tolist() == [2, 0] * 3
    assert torch.equal(rep["mask"], torch.cat([ctx["mask"][[2, 0]]] * 3))
    more = ctx.update({"clean": torch.zeros(3, 3, 2, 2)})
    assert set(more.fields) == {"goal", "mask", "clean"} and set(ctx.fields) == {"goal", "mask"}
    with pytest.raises(ValueError, match="batch size"):
        Context(goal=torch.zeros(3), mask=torch.zeros(2, 1))


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_classification_goal_score_and_success(loss):
    logits = torch.tensor([[2.0, 0.5], [0.0, 3.0], [1.0, -1.0]])
    y = torch.tensor([0, 0, 1])
    fn = {"ce": cross_entropy, "margin": margin}[loss]
    away = Classification(loss)
    ctx = away.bind(torch.zeros(3, 3, 2, 2), y)
    assert torch.equal(ctx["goal"], y)
    assert torch.equal(away.success(logits, ctx), torch.tensor([False, True, True]))  # argmax left the label
    assert torch.equal(away.score(logits, ctx), fn(logits, y, False))
    toward = Classification(loss, targeted=True, target=0)
    ctx = toward.bind(torch.zeros(3, 3, 2, 2), y)
    assert torch.equal(ctx["goal"], torch.zeros(3, dtype=torch.long))
    assert torch.equal(toward.success(logits, ctx), torch.tensor([True, False, True]))  # argmax is "real"
    assert torch.equal(toward.score(logits, ctx), fn(logits, torch.zeros(3, dtype=torch.long), True))
    assert toward.report(logits) == {"logits": logits}
