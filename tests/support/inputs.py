"""The network input of uint8 planes, computed as the training step computes it: the loader's
affine (twostream.data.transforms) applied by `twostream.engine.loops.model_input`, on the CPU."""
from __future__ import annotations

import numpy as np
import torch

from twostream.core.device import Device
from twostream.data.transforms import flow_affine, jitter_codes, rgb_affine
from twostream.engine.loops import model_input

CPU = Device(torch.device("cpu"), None, False)


def network_input(planes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """uint8 planes (C, H, W) and their (2, C) scale and shift -> the float32 input (C, H, W)."""
    return model_input(torch.from_numpy(np.ascontiguousarray(planes))[None], torch.from_numpy(affine)[None], CPU)[0].numpy()


def rgb_input(planes: np.ndarray, jitter: tuple[float, float, float] | None = None) -> np.ndarray:
    """RGB planes as the network sees them: colour-jittered by `jitter` if given, ImageNet-normalised."""
    return network_input(planes if jitter is None else jitter_codes(planes, jitter), rgb_affine())


def flow_input(planes: np.ndarray, bound: float, means: np.ndarray | None, flipped: bool) -> np.ndarray:
    """Flow-code planes (2L, H, W) as the network sees them: flow in units of the bound."""
    return network_input(planes, flow_affine(planes.shape[0], bound, means, flipped))
