"""Every registered backbone in both streams; pretrained weights from a file; cross-modality init."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from twostream.streams.models import BACKBONES, ModelError, build_model, cross_modality_weight, get_family, pretrained_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_and_stream_gives_finite_scores_and_features(backbone):
    torch.manual_seed(0)
    for channels in (3, 6):  # spatial; temporal with L=3
        model = build_model(backbone, channels, num_classes=5, dropout=0.5).eval()
        x = torch.randn(2, channels, 32, 32)
        with torch.no_grad():
            scores, features = model(x), model.features(x)
        assert scores.shape == (2, 5) and torch.isfinite(scores).all()
        assert features.shape == (2, model.feature_dim) and torch.isfinite(features).all()
        assert torch.allclose(model.classifier(features), scores, atol=1e-5)  # eval: dropout is identity
        first_conv = model.body.get_submodule(get_family(backbone).first_conv)
        assert first_conv.in_channels == channels
        if backbone.startswith("vgg"):
            assert model.feature_dim == 4096 and model.body.classifier[2].p == 0.5  # fc6's dropout is ours too


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ModelError, match="unknown backbone 'alexnet'; choices: resnet18, resnet34, resnet50, resnet101"):
        get_family("alexnet")


@pytest.fixture(scope="module")
def rgb_weights(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, path)
    return path, state


def test_spatial_stream_loads_the_rgb_backbone(rgb_weights):
    path, state = rgb_weights
    loaded, origin = pretrained_state("resnet18", str(path), None)
    model = build_model("resnet18", 3, 7, 0.5, loaded, origin)
    own = model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(own[f"body.{key}"], value), key
    assert model.classifier.weight.shape == (7, 512)


def test_temporal_stream_gets_cross_modality_init(rgb_weights):
    path, state = rgb_weights
    loaded, origin = pretrained_state("resnet18", str(path), None)
    model = build_model("resnet18", 20, 7, 0.9, loaded, origin)
    conv = model.body.conv1.weight
    assert conv.shape == (64, 20, 7, 7)
    mean_rgb = state["conv1.weight"].mean(dim=1)
    for c in range(20):
        assert torch.allclose(conv[:, c], mean_rgb)
    assert torch.equal(model.body.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(cross_modality_weight(torch.ones(2, 3, 1, 1) * torch.tensor([1.0, 2.0, 6.0])[None, :, None, None], 4),
                       torch.full((2, 4, 1, 1), 3.0))


def test_wrapped_and_dataparallel_state_dicts_load(rgb_weights, tmp_path):
    _, state = rgb_weights
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    loaded, _ = pretrained_state("resnet18", str(wrapped), None)
    assert set(loaded) == set(state)


def test_weights_of_another_backbone_are_refused(rgb_weights):
    path, _ = rgb_weights
    loaded, origin = pretrained_state("resnet50", str(path), None)
    with pytest.raises(ModelError, match=f"{path} does not fit resnet50"):
        build_model("resnet50", 3, 4, 0.5, loaded, origin)


def test_missing_and_unreadable_weight_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="pretrained weights file .*nope.pth not found"):
        pretrained_state("resnet18", str(tmp_path / "nope.pth"), None)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ModelError, match="junk.pth: not a readable state dict"):
        pretrained_state("resnet18", str(junk), None)


def test_unknown_torchvision_weights_list_the_choices():
    with pytest.raises(ModelError, match="unknown torchvision weights 'IMAGENET' for resnet18; choices: IMAGENET1K_V1"):
        pretrained_state("resnet18", None, "IMAGENET")


def test_unreachable_model_hub_names_the_pretrained_option(monkeypatch):
    # no machine here reaches the hub; fail the download the way urllib does offline, so the
    # test does not depend on (or use) the network
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError) as info:
        pretrained_state("resnet18", None, "IMAGENET1K_V1")
    message = str(info.value)
    assert "could not fetch torchvision's resnet18 IMAGENET1K_V1 weights" in message
    assert "--pretrained PATH" in message and "resnet18-f37072fd.pth" in message and "\n" not in message
