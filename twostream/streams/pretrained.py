"""Where an RGB backbone's pretrained weights come from: a local file (a state dict, .pt or
.safetensors, in the common wrappers), a URL (torch.hub's cache, its hash checked), or by name from
torchvision (`--weights`, its Weights enum) or timm, where their hubs are reachable. What is read
is checked (tensors only, finite) and handed on as a state dict (twostream.streams.backbone_state
puts it into a body).
"""
from __future__ import annotations

import pickle
import re

import torch
import torchvision

from runkit.files import open_regular
from twostream.core.backbones import TIMM_PREFIX, family_of
from twostream.core.errors import ModelError
from twostream.streams.families import get_family


def is_url(value: str) -> bool:
    return re.match(r"^(https?|file)://", value) is not None


def pretrained_state(backbone: str, pretrained: str | None, weights: str | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The RGB backbone's state dict from a local file, a URL or named weights (torchvision's or
    timm's), or None; and a description of where it came from."""
    if pretrained is not None:
        if is_url(pretrained):
            return _state_from_url(pretrained), pretrained
        return _state_from_file(pretrained), pretrained
    if weights is not None:
        if family_of(backbone) == "timm":
            return _state_from_timm(backbone, weights)
        return _state_from_torchvision(backbone, weights), f"torchvision {backbone} {weights}"
    return None, ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _state_dict_of(obj, origin: str) -> dict[str, torch.Tensor]:
    # common wrappers: {"state_dict": ...} (Lightning, mmcv), {"model": ...} (torchvision references)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{origin}: expected a state dict (parameter name -> tensor) of an RGB backbone")
    for name, tensor in obj.items():  # else the first step's loss is NaN, blamed on the learning rate
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(f"{origin}: tensor {name!r} holds {bad} value(s) that are not finite numbers (NaN or "
                             f"infinite): the weights file is damaged")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel


def _state_from_file(path: str) -> dict[str, torch.Tensor]:
    try:
        if path.endswith(".safetensors"):  # what timm's and Hugging Face's hubs hold
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            with open_regular(path) as fh:
                obj = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"pretrained weights file {path} not found") from None
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a readable state dict ({_one_line(exc)})") from None
    return _state_dict_of(obj, path)


def _state_from_url(url: str) -> dict[str, torch.Tensor]:
    """Downloaded once into torch.hub's cache ($TORCH_HOME/hub/checkpoints); a file named
    NAME-<sha256 prefix>.EXT (torchvision's convention) has its hash checked."""
    try:
        obj = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True,
                                                 weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        # URLError and refused connections are OSErrors; a bad hash is a RuntimeError
        raise ModelError(f"could not fetch {url} ({_one_line(exc)}); without access to it, download it elsewhere "
                         f"and pass --pretrained PATH (the local file)") from None
    return _state_dict_of(obj, url)


def torchvision_weights(backbone: str, weights: str):
    """torchvision's Weights entry for `weights`, in either spelling: IMAGENET1K_V1 (or DEFAULT)
    or the enum's full name, ResNet18_Weights.IMAGENET1K_V1 (how torchvision's references name them)."""
    get_family(backbone)
    available = torchvision.models.get_model_weights(backbone)
    enum_name, dot, member = weights.rpartition(".")
    choices = ", ".join(available.__members__)
    if dot and enum_name != available.__name__:
        raise ModelError(f"weights {weights!r} are not {backbone}'s; choices: {choices} "
                         f"(or {available.__name__}.NAME)")
    try:
        return available[member]
    except KeyError:
        raise ModelError(f"unknown torchvision weights {weights!r} for {backbone}; choices: {choices} "
                         f"(or {available.__name__}.NAME)") from None


def _state_from_torchvision(backbone: str, weights: str) -> dict[str, torch.Tensor]:
    entry = torchvision_weights(backbone, weights)
    try:
        return entry.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; RuntimeError: bad hash
        raise ModelError(f"could not fetch torchvision's {backbone} {weights} weights ({_one_line(exc)}); "
                         f"without access to the model hub, download {entry.url} elsewhere and pass "
                         f"--pretrained PATH") from None


def _state_from_timm(backbone: str, weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """timm's own pretrained loading (its Hugging Face hub): `weights` is DEFAULT (timm's default
    tag for the model) or a tag such as in1k (convnext_tiny.in1k)."""
    import timm

    name = backbone[len(TIMM_PREFIX):]
    full = name if weights == "DEFAULT" else f"{name.split('.')[0]}.{weights}"
    try:
        cfg = timm.models.get_pretrained_cfg(full)
    except Exception:  # noqa: BLE001 - timm raises several kinds for an unknown tag
        cfg = None
    if cfg is None:
        tags = [m.split(".", 1)[1] for m in timm.list_pretrained(f"{name.split('.')[0]}.*")]
        raise ModelError(f"timm has no pretrained weights {weights!r} for {name}; choices: DEFAULT"
                         + (f", {', '.join(tags)}" if tags else ""))
    source = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or "timm's model hub")
    try:
        net = timm.create_model(full, pretrained=True)
    except (OSError, RuntimeError, ValueError) as exc:  # offline: huggingface_hub's and requests' errors are these
        raise ModelError(f"could not fetch timm's {full} weights ({_one_line(exc)}); without access to the hub, "
                         f"download {source} (model.safetensors) elsewhere and pass --pretrained PATH") from None
    return net.state_dict(), f"timm {full}"
