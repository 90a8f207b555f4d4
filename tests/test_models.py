"""Detector registry and checkpoint I/O, parametrized over the registry (tiny input sizes, no downloads)."""

from __future__ import annotations

import pytest
import torch

from advdf.errors import CheckpointError, ConfigError
from advdf.models import create_detector, list_detectors, load_detector_weights, save_detector

SIZE = 64  # smallest size every registered detector accepts (Meso4 needs a multiple of 32)


@pytest.fixture(params=list_detectors())
def name(request) -> str:
    return request.param


@pytest.fixture
def detector(name):
    torch.manual_seed(0)
    return create_detector(name, input_size=SIZE).eval()


def test_registry_lists_foundation_detectors():
    assert {"resnet50", "mobilenetv2", "mesonet"} <= set(list_detectors())


def test_forward_gives_two_logits_and_input_gradient(detector):
    x = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    logits = detector(x)
    assert logits.shape == (2, 2)
    logits[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_normalization_is_inside(detector):
    x = torch.rand(1, 3, SIZE, SIZE)
    assert torch.allclose(detector.normalize(x), (x - detector.mean) / detector.std)
    feats = detector.forward_features(x)
    assert torch.allclose(detector.forward_head(feats), detector(x), atol=1e-5)


def test_safetensors_round_trip_identical_logits(name, detector, tmp_path):
    path = save_detector(detector, tmp_path / "w.safetensors")
    torch.manual_seed(1)  # different initial weights, so equality proves the load
    clone = create_detector(name, input_size=SIZE).eval()
    load_detector_weights(clone, path)
    x = torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(detector(x), clone(x))


def test_lightning_checkpoint_loads_with_weights_only(tmp_path):
    model = create_detector("tiny_cnn")
    ckpt = {"state_dict": {f"detector.{k}": v for k, v in model.state_dict().items()}, "epoch": 1}
    torch.save(ckpt, tmp_path / "last.ckpt")
    clone = create_detector("tiny_cnn")
    load_detector_weights(clone, tmp_path / "last.ckpt")
    for a, b in zip(model.state_dict().values(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_pickled_code_is_refused(tmp_path):
    torch.save({"state_dict": {"detector.x": torch.zeros(1)}, "evil": object()}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_detector_weights(create_detector("tiny_cnn"), tmp_path / "bad.ckpt")


def test_bad_checkpoints_give_clear_errors(tmp_path):
    model = create_detector("tiny_cnn")
    with pytest.raises(CheckpointError, match="not found"):
        load_detector_weights(model, tmp_path / "missing.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_detector_weights(model, tmp_path / "corrupt.safetensors")
    save_detector(create_detector("mesonet", input_size=64), tmp_path / "meso.safetensors")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_detector_weights(model, tmp_path / "meso.safetensors")


def test_unknown_detector():
    with pytest.raises(ConfigError, match="unknown detector 'vgg99'"):
        create_detector("vgg99")


def test_eval_mode_is_deterministic(detector):
    x = torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(detector(x), detector(x))


def test_mesonet_matches_meso4_size():
    # Meso4 at 256 px: 27,977 weights in the original model counts BN's running statistics (48 values,
    # buffers here); the trainable parameters come to 27,929.
    meso = create_detector("mesonet", input_size=256)
    assert sum(p.numel() for p in meso.parameters()) == 27_929
    with pytest.raises(ConfigError, match="divisible by 32"):
        create_detector("mesonet", input_size=100)

