"""Transfer matrix (seed 004, Table 2): accuracies, ASR and ATR of every target on every source's cached set."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advdf.attacks.bim import BIM
from advdf.data.dataset import FrameDataset
from advdf.errors import AdversarialCheckError, ConfigError
from advdf.jobs.transfer import TransferSource, TransferTarget, transfer_matrix, write_matrix
from advdf.models import create_detector
from advdf.papers.liao2021.layout import kra_table2_cells, kra_table2_markdown
from advdf.papers.reproduce import reproduce_kra
from advdf.store.cache import AdversarialCache

EPS = 8 / 255
N = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def steep_tiny(seed: int, x: torch.Tensor) -> torch.nn.Module:
    """A tiny_cnn whose head is steep and centred on ``x``'s logit gaps, so small attacks flip it."""
    torch.manual_seed(seed)
    model = create_detector("tiny_cnn", input_size=32).eval()
    head = model.backbone.head[1]
    with torch.no_grad():
        head.weight.mul_(50)
        head.bias.zero_()
        logits = model(x)
        gap = (logits[:, 1] - logits[:, 0]).median()
        head.bias += torch.tensor([0.5, -0.5]) * (gap + 1e-3)
    return model


@pytest.fixture
def frames(tmp_path):
    """A prepared directory of N 32 px PNG frames, half real and half fake, and its index rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N):
        img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
        rows.append({"path": f"f{i}.png", "label": i % 2, "row": 100 + i, "manipulation": "x", "video_id": str(i)})
    return rows, tmp_path


def make_set(model, dataset: FrameDataset, directory, eps=EPS, shard=4) -> AdversarialCache:
    """Attack every frame with BIM and cache the set in shards of ``shard`` samples (the fields run_attack writes)."""
    x = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    y = dataset.labels
    x_adv = BIM(model, eps=eps, alpha=eps / 4, steps=8)(x, y)
    cache = AdversarialCache(directory, {"test": str(directory)}, num_shards=(N + shard - 1) // shard)
    cache.open()
    for i in range(cache.num_shards):
        sl = slice(i * shard, (i + 1) * shard)
        n = len(y[sl])
        cache.write_shard(i, {
            "x_adv": x_adv[sl], "position": torch.arange(N)[sl], "row": torch.tensor([r["row"] for r in dataset.rows])[sl],
            "label": y[sl].clone(), "video": torch.arange(N)[sl], "clean_pred": y[sl].clone(), "adv_pred": y[sl].clone(),
            "success": torch.zeros(n, dtype=torch.uint8), "linf": torch.zeros(n), "l2": torch.zeros(n),
            "l0": torch.zeros(n), "time_s": torch.zeros(n), "grad_calls": torch.zeros(n, dtype=torch.long),
            "queries": torch.zeros(n, dtype=torch.long)})
    cache.write_summary({})
    return cache


@pytest.fixture
def setup(frames, tmp_path):
    rows, root = frames
    ds = FrameDataset(rows, root, 32)
    x = torch.stack([ds[i]["image"] for i in range(N)])
    models = {"a": steep_tiny(0, x), "b": steep_tiny(1, x)}
    caches = {k: make_set(m, ds, tmp_path / f"set_{k}") for k, m in models.items()}
    return ds, x, models, caches


def direct(models, x, x_advs, y, source, target, size=None):
    """The matrix cell computed by hand: accuracies of ``target``, its ASR, and ATR against the source's ASR."""
    def acc(model, images):
        if size is not None:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (model(images).argmax(1) == y).float().mean().item()

    def asr(t):
        return 1 - acc(models[t], x_advs[source]) / acc(models[t], x)

    return acc(models[target], x), acc(models[target], x_advs[source]), asr(target) / asr(source)


def test_matrix_matches_a_direct_computation_and_self_transfer_is_one(setup):
    ds, x, models, caches = setup
    y = ds.labels
    x_advs = {k: torch.cat([s["x_adv"] for s in c.shards()]) for k, c in caches.items()}
    sources = [TransferSource(k, caches[k], ds, EPS, "linf") for k in models]
    targets = [TransferTarget(k, m, ds) for k, m in models.items()]
    forwards = {"b": 0}
    models["b"].register_forward_hook(lambda *a: forwards.__setitem__("b", forwards["b"] + 1))
    cells = transfer_matrix(sources, targets, batch_size=64)
    assert len(cells) == 4
    # every shard of each set in one batch (2 sources x 2 shards) + the clean set once (shared rows)
    assert forwards["b"] == 5
    for c in cells:
        acc_clean, acc, atr = direct(models, x, x_advs, y, c["source"], c["target"])
        assert c["n"] == N
        assert c["acc_clean"] == pytest.approx(acc_clean) and c["acc"] == pytest.approx(acc)
        assert c["asr"] == pytest.approx(1 - acc / acc_clean)
        assert c["atr"] == pytest.approx(atr)
        if c["source"] == c["target"]:
            assert c["atr"] == pytest.approx(1.0)
    assert all(c["asr"] > 0 for c in cells if c["source"] == c["target"])  # the sets do fool their sources


def test_a_target_of_another_input_size_sees_the_examples_resized(setup, frames):
    ds, x, models, caches = setup
    rows, root = frames
    small = FrameDataset(list(reversed(rows)), root, 16)  # another size, and rows in another order
    x_advs = {"a": torch.cat([s["x_adv"] for s in caches["a"].shards()])}
    cells = transfer_matrix([TransferSource("a", caches["a"], ds, EPS, "linf")],
                            [TransferTarget("a", models["a"], ds), TransferTarget("b", models["b"], small)])
    cell = next(c for c in cells if c["target"] == "b")
    x_small = torch.stack([small[i]["image"] for i in range(N)]).flip(0)  # back to the source's order
    y = ds.labels
    acc_clean = (models["b"](x_small).argmax(1) == y).float().mean().item()
    resized = F.interpolate(x_advs["a"], size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    acc = (models["b"](resized).argmax(1) == y).float().mean().item()
    assert cell["acc_clean"] == pytest.approx(acc_clean) and cell["acc"] == pytest.approx(acc)


def test_an_example_outside_its_budget_is_refused(setup, tmp_path):
    ds, x, models, caches = setup
    bad = make_set(models["a"], ds, tmp_path / "bad", eps=16 / 255)  # crafted at 16/255, checked against 8/255
    with pytest.raises(AdversarialCheckError, match="exceeds eps"):
        transfer_matrix([TransferSource("a", bad, ds, EPS, "linf")], [TransferTarget("a", models["a"], ds)])


def test_every_source_must_be_a_target(setup):
    ds, x, models, caches = setup
    with pytest.raises(ConfigError, match="must also be targets"):
        transfer_matrix([TransferSource("a", caches["a"], ds, EPS, "linf")], [TransferTarget("b", models["b"], ds)])


def test_matrix_files(setup, tmp_path):
    ds, x, models, caches = setup
    cells = transfer_matrix([TransferSource(k, caches[k], ds, EPS, "linf") for k in models],
                            [TransferTarget(k, m, ds) for k, m in models.items()])
    md, csv_path = write_matrix(cells, tmp_path / "out")
    text = md.read_text()
    assert "| source \\ target | a | b |" in text
    assert f"| a | {cells[0]['acc']:.3f} / 1.000 |" in text
    assert len(csv_path.read_text().splitlines()) == 1 + 4


def test_table2_layout_prints_paper_beside_ours_and_dashes():
    ours = {("resnet50", "resnet50"): {"acc": 0.0, "atr": 1.0}, ("resnet50", "mesonet"): {"acc": 0.3, "atr": 0.6},
            ("mesonet", "resnet50"): {"acc": 0.5, "atr": 0.4}}
    md = kra_table2_markdown(kra_table2_cells(ours, {"resnet50": 0.9, "mesonet": 0.8}))
    lines = md.splitlines()
    assert lines[0] == ("| Source \\ Target | xception Acc | xception ATR | resnet50 Acc | resnet50 ATR | "
                        "resnet101 Acc | resnet101 ATR | inception_v3 Acc | inception_v3 ATR | mesonet Acc | "
                        "mesonet ATR |")
    # Clean row: ours where computed, the paper's Table 1 clean accuracy where it has one
    assert lines[2] == "| clean | — / 0.990 |  | 0.900 / 0.990 |  | — / 0.990 |  | — / — |  | 0.800 / — |  |"
    # Examples crafted on ResNet-50 (the paper's Resnet-50 column): Xception 0.49/0.50, ResNet-101 0.46/0.53,
    # Inception-v3 0.56/0.43
    assert lines[4] == ("| resnet50 | — / 0.490 | — / 0.500 | 0.000 / 0.001 | 1.000 / 1.000 | — / 0.460 | "
                        "— / 0.530 | — / 0.560 | — / 0.430 | 0.300 / — | 0.600 / — |")
    assert lines[6] == "| mesonet | — / — | — / — | 0.500 / — | 0.400 / — |" + " — / — |" * 6
    assert len(lines) == 2 + 1 + 4  # header, rule, clean, 3 paper sources + MesoNet


def test_unregistered_detector_is_a_config_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(ConfigError, match="no_such_net"):
        reproduce_kra("smoke", ["+reproduce.detectors.no_such_net=[]"])
    assert not (tmp_path / "artifacts").exists()
