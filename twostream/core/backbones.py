"""The backbone registry: names only, so options and configs can list them without importing torch."""

# name (a torchvision.models constructor) -> family (FAMILIES in twostream.streams.models). A plain dict: a torchvision model of a known
# family (vgg19, wide_resnet50_2, ...) is one line away; the tests build every entry in both streams.
BACKBONES: dict[str, str] = {
    "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet", "resnet101": "resnet", "resnet152": "resnet",
    "vgg16": "vgg", "vgg16_bn": "vgg",
}
