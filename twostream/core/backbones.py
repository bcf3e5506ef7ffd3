"""The backbone registry: every name `--backbone` takes and its family, in one place, without
importing torch (options, configs and --help list and check names from here).

Three kinds of name:
- a torchvision image model (`IMAGE_BACKBONES`): a 2D stream on one frame or a 2L-channel flow stack;
- `timm:NAME`, any of timm's image models (`timm.list_models()`, 1,300+), a 2D stream too; the
  name itself is checked against timm's list when the model is built (that needs torch);
- a torchvision video model (`VIDEO_BACKBONES`): a 3D stream on a clip (`--clip T`) of RGB
  frames (3 x T x H x W) or of flow fields (2 x T x H x W).
The family says how a network of that name is built and cut into a feature body
(`twostream.streams.families.FAMILIES`, keyed by these family names). A torchvision model of a known
family (vgg19, wide_resnet50_2, ...) is one line away; the tests build every family in both streams.
"""
from __future__ import annotations

TIMM_PREFIX = "timm:"

# torchvision image models: name -> family
IMAGE_BACKBONES: dict[str, str] = {
    "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet", "resnet101": "resnet", "resnet152": "resnet",
    "vgg16": "vgg", "vgg16_bn": "vgg",
}
# torchvision video models (Kinetics-400 weights): name -> family
VIDEO_BACKBONES: dict[str, str] = {
    "r3d_18": "video_resnet", "mc3_18": "video_resnet", "r2plus1d_18": "video_resnet",
    "s3d": "s3d", "mvit_v2_s": "mvit", "swin3d_t": "swin3d",
    # ours: a 3-block 3D CNN of 0.1M parameters, no pretrained weights; what a 2-core CPU trains in
    # seconds (the tests, `make demo-3d`): the torchvision ones take minutes an epoch there
    "tiny3d": "tiny3d",
}
BACKBONES: dict[str, str] = {**IMAGE_BACKBONES, **VIDEO_BACKBONES}
# the families whose networks take clips (N, C, T, H, W)
VIDEO_FAMILIES = frozenset(VIDEO_BACKBONES.values())


def family_of(backbone: str) -> str:
    """The family of a backbone name; ValueError naming the accepted names."""
    if backbone.startswith(TIMM_PREFIX):
        if not backbone[len(TIMM_PREFIX):].strip():
            raise ValueError(f"backbone {backbone!r} names no timm model; give e.g. timm:convnext_tiny")
        return "timm"
    try:
        return BACKBONES[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; choices: {choices_text()}") from None


def is_video(backbone: str) -> bool:
    """True for a 3D network on clips."""
    return family_of(backbone) in VIDEO_FAMILIES


def choices_text() -> str:
    return (f"{', '.join(IMAGE_BACKBONES)}, timm:NAME (any timm image model) and, with --clip, "
            f"{', '.join(VIDEO_BACKBONES)}")
