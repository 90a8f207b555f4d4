"""AugMix views, the JSD consistency / AugMix loss, the batch-hard triplet loss, and the datasets' augmix option."""

from __future__ import annotations

import csv
import itertools

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advdf.data.augmix import AugMixViews
from advdf.data.datamodule import FFPPDataModule
from advdf.data.dataset import INDEX_COLUMNS, FrameDataset, read_index
from advdf.errors import ConfigError
from advdf.lit.losses import augmix_loss, batch_hard_triplet_loss, jsd_consistency


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)


@pytest.fixture
def prepared(tmp_path):
    """A minimal prepared directory: random 20 px crops and an index.csv, two real and two fake frames per split."""
    rng = np.random.default_rng(0)
    rows = []
    for split in ("train", "val", "test"):
        for label, manipulation in ((0, "original"), (1, "Deepfakes")):
            for frame in range(2):
                path = f"crops/{manipulation}/{split}/{frame}.png"
                (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / path), rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
                rows.append({"path": path, "mask_path": "", "video_id": f"{split}{label}", "manipulation": manipulation,
                             "label": label, "frame": frame, "split": split})
    with open(tmp_path / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_views_shape_range_and_randomness(image):
    torch.manual_seed(0)
    views = AugMixViews()(image)
    assert views.shape == (2, 3, 24, 24) and views.dtype == torch.float32
    assert views.min() >= 0 and views.max() <= 1
    clean = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    assert (views[0] - views[1]).abs().mean() > 1e-3
    assert (views[0] - clean).abs().mean() > 1e-3 and (views[1] - clean).abs().mean() > 1e-3


@pytest.mark.parametrize("kwargs", [{"severity": 0}, {"severity": 11}, {"mixture_width": 0}, {"chain_depth": 0},
                                    {"chain_depth": -2}, {"alpha": 0.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ConfigError, match="augmix"):
        AugMixViews(**kwargs)


def test_views_need_a_uint8_rgb_image(image):
    with pytest.raises(ConfigError, match="uint8"):
        AugMixViews()(image.astype(np.float32))


def test_jsd_zero_iff_agreement_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(5, 2, generator=g) for _ in range(3))
    assert jsd_consistency(a, a, a).abs().item() < 1e-6
    value = jsd_consistency(a, b, c)
    assert value > 1e-3
    for perm in itertools.permutations((a, b, c)):
        assert torch.allclose(jsd_consistency(*perm), value, atol=1e-6)
    with pytest.raises(ConfigError, match="one shape"):
        jsd_consistency(a, b, c[:3])


def test_augmix_loss_is_ce_when_views_agree():
    g = torch.Generator().manual_seed(0)
    clean, labels = torch.randn(4, 2, generator=g), torch.tensor([0, 1, 1, 0])
    loss, parts = augmix_loss(torch.cat([clean, clean, clean]), labels)
    assert torch.allclose(loss, F.cross_entropy(clean, labels), atol=1e-6)
    assert parts["jsd"].abs() < 1e-6
    other = torch.cat([clean, torch.randn(4, 2, generator=g), clean])
    loss, parts = augmix_loss(other, labels, weight=2.0)
    assert torch.allclose(loss, parts["ce"] + 2.0 * parts["jsd"]) and parts["jsd"] > 0
    with pytest.raises(ConfigError, match="3N"):
        augmix_loss(clean, labels)


def _brute_force_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    losses = []
    for i in range(len(emb)):
        pos = [torch.dist(emb[i], emb[j]) for j in range(len(emb)) if j != i and labels[j] == labels[i]]
        neg = [torch.dist(emb[i], emb[j]) for j in range(len(emb)) if labels[j] != labels[i]]
        if pos and neg:
            losses.append(torch.relu(max(pos) - min(neg) + margin))
    return torch.stack(losses).mean()


def test_triplet_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(9, 4, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 1])  # class 2 has no positive: excluded
    for margin in (0.0, 0.5, 3.0):
        expected = _brute_force_triplet(emb, labels, margin)
        assert torch.allclose(batch_hard_triplet_loss(emb, labels, margin), expected, atol=1e-5)
    assert batch_hard_triplet_loss(emb, labels, 3.0) > 0


def test_triplet_zero_when_separated_and_without_triplets():
    emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.0, 0.1]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    assert batch_hard_triplet_loss(emb, labels, margin=1.0).item() == 0.0
    assert batch_hard_triplet_loss(emb, labels, margin=6.0).item() > 0
    none = batch_hard_triplet_loss(emb, torch.tensor([0, 0, 0, 0]))
    assert none.item() == 0.0 and none.requires_grad
    none.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    with pytest.raises(ConfigError, match="margin"):
        batch_hard_triplet_loss(emb, labels, margin=-1.0)


def test_sgd_on_a_linear_embedding_lowers_the_triplet_loss():
    torch.manual_seed(0)
    x = torch.randn(12, 6)
    labels = torch.tensor([0, 1] * 6)
    x[labels == 1] += 0.5  # learnable but overlapping at the start
    embed = torch.nn.Linear(6, 3)
    opt = torch.optim.SGD(embed.parameters(), lr=0.05)
    start = batch_hard_triplet_loss(embed(x), labels).item()
    for _ in range(40):
        opt.zero_grad()
        loss = batch_hard_triplet_loss(embed(x), labels)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in embed.parameters())
        opt.step()
    assert start > 0 and batch_hard_triplet_loss(embed(x), labels).item() < 0.7 * start


def test_frame_dataset_views_come_from_the_same_image(prepared):
    rows = [r for r in read_index(prepared) if r["split"] == "train"]
    identity = FrameDataset(rows, prepared, 16, augmix=lambda im: torch.from_numpy(im).permute(2, 0, 1)[None]
                            .repeat(2, 1, 1, 1).float() / 255)
    item = identity[0]
    assert item["augmix"].shape == (2, 3, 16, 16)
    assert torch.equal(item["augmix"][0], item["image"])
    assert "augmix" not in FrameDataset(rows, prepared, 16)[0]


def test_datamodule_gives_views_to_train_only(prepared):
    torch.manual_seed(0)
    dm = FFPPDataModule(root=str(prepared), prepared_dir=str(prepared), input_size=16, batch_size=4,
                        augmix=AugMixViews())
    batch = next(iter(dm.train_dataloader()))
    assert batch["augmix"].shape == (4, 2, 3, 16, 16) and batch["image"].shape == (4, 3, 16, 16)
    assert 0 <= batch["augmix"].min() and batch["augmix"].max() <= 1
    for split in ("val", "test"):
        assert "augmix" not in dm.dataset(split)[0]
        assert "augmix" not in next(iter(dm.loader(split)))
    # Readers of the training split other than the trainer (attacks, denoiser pairs) get the frames as they are.
    plain = dm.dataset("train")
    assert "augmix" not in plain[0] and torch.equal(plain[0]["image"], plain[0]["image"])
