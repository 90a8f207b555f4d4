"""Detector registry and checkpoint I/O, parametrized over the registry (tiny input sizes, no downloads)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from advdf.errors import CheckpointError, ConfigError
from advdf.models import create_detector, list_detectors, load_detector_weights, save_detector
from advdf.utils.entry import CONF_DIR

pytestmark = pytest.mark.usefixtures("one_thread")  # batches of 1-2 images: threads only add synchronization

SIZE = 64  # small inputs for the property tests (Meso4 needs a multiple of 32)
MIN_SIZE = {"inception_v3": 96}  # Inception-v3's stride-2 valid convolutions need at least 75 px
PAPER_DETECTORS = {"vgg16", "resnet50", "resnet101", "inception_v3", "efficientnet_b4", "efficientnet_b4_st",
                   "xception", "densenet121", "mobilenetv2", "mesonet", "mesoinception4", "gramnet"}


def size_of(name: str) -> int:
    return MIN_SIZE.get(name, SIZE)


@pytest.fixture(params=list_detectors())
def name(request) -> str:
    return request.param


@pytest.fixture
def detector(name):
    torch.manual_seed(0)
    return create_detector(name, input_size=size_of(name)).eval()


def test_registry_lists_the_papers_detectors():
    assert PAPER_DETECTORS <= set(list_detectors())
    assert all((CONF_DIR / "model" / f"{d}.yaml").is_file() for d in list_detectors())


@pytest.mark.parametrize("model", sorted(PAPER_DETECTORS))
def test_config_builds_detector_at_its_own_input_size(model):
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml")
    torch.manual_seed(0)
    detector = instantiate(cfg).eval()
    assert detector.input_size == cfg.input_size
    with torch.no_grad():
        logits = detector(torch.rand(2, 3, cfg.input_size, cfg.input_size))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_forward_gives_two_logits_and_input_gradient(name, detector):
    """(N, 2) logits from [0, 1] input, a gradient that reaches the input, and deterministic eval mode."""
    size = size_of(name)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    logits = detector(x)
    assert logits.shape == (2, 2)
    logits[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(detector(x), logits)


def test_normalization_is_inside(name, detector):
    x = torch.rand(1, 3, size_of(name), size_of(name))
    assert torch.allclose(detector.normalize(x), (x - detector.mean) / detector.std)
    feats = detector.forward_features(x)
    assert torch.allclose(detector.forward_head(feats), detector(x), atol=1e-5)


def test_checkpoint_round_trips_give_identical_logits(name, detector, tmp_path):
    """safetensors, and a Lightning checkpoint read with weights_only=True, both restore the exact logits."""
    size = size_of(name)
    x = torch.rand(2, 3, size, size)
    expected = detector(x)
    safetensors = save_detector(detector, tmp_path / "w.safetensors")
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()}, "epoch": 1}, ckpt)
    for path in (safetensors, ckpt):
        torch.manual_seed(1)  # different initial weights, so equality proves the load
        clone = create_detector(name, input_size=size).eval()
        load_detector_weights(clone, path)
        assert torch.equal(expected, clone(x))


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


def test_mesonet_matches_meso4_size():
    # Meso4 at 256 px: 27,977 weights in the original model counts BN's running statistics (48 values,
    # buffers here); the trainable parameters come to 27,929.
    meso = create_detector("mesonet", input_size=256)
    assert sum(p.numel() for p in meso.parameters()) == 27_929
    with pytest.raises(ConfigError, match="divisible by 32"):
        create_detector("mesonet", input_size=100)



def test_a_checkpoint_of_another_architecture_names_keys_and_shapes(tmp_path):
    from advdf.errors import CheckpointError
    from advdf.models import load_detector_weights, save_detector

    small, other = create_detector("tiny_cnn", input_size=32), create_detector("mesonet", input_size=32)
    path = save_detector(other, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_detector_weights(small, path)
    text = str(err.value)
    assert "\n" not in text and "missing keys" in text and "unexpected keys" in text and str(path) in text
    state = {k: v.clone() for k, v in small.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point() and v.ndim > 1)
    state[first] = state[first][:1]
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "shape.safetensors"))
    with pytest.raises(CheckpointError, match=rf"1 shape mismatches .*{first}"):
        load_detector_weights(create_detector("tiny_cnn", input_size=32), tmp_path / "shape.safetensors")


def test_non_finite_weights_are_refused_with_the_tensor_named(tmp_path):
    from safetensors.torch import save_file

    from advdf.errors import CheckpointError
    from advdf.models import load_detector_weights

    model = create_detector("tiny_cnn", input_size=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=rf"non-finite weights in 1 tensors \({first}\)"):
        load_detector_weights(model, tmp_path / "nan.safetensors")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # nothing was loaded
