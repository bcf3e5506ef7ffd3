"""TV-L1 as a network layer: a fixed number of tvl1-torch's iterations, differentiable, with its step
sizes and difference kernels learnable (TVNet, Fan et al. 2018; Representation Flow, Piergiovanni and
Ryoo 2019).

The iterations are solver.py's own functions, not a copy: `warp_constants` (the warping: I1 and its
gradients warped by the flow so far, the data term's constants) and `inner_iteration` (thresholding,
the flow from the dual variables' divergence, the projected dual update), given
 - theta, lambda and tau as learnable scalars (their logarithms: they stay positive; exp(log(x))
   rounds x by an ulp at most, so the equality below holds to float rounding);
 - learnable kernels for the image gradient, the flow's forward gradient and the divergence, each
   per axis: `scale * fixed(x) + identity * x`, where `fixed` is solver.py's difference
   (centred, forward, backward). For the two-tap forward and backward differences that spans every
   two-tap kernel; for the centred one, a two-dimensional family of the three taps. They start at
   scale 1 and identity 0, where they compute exactly solver.py's differences;
 - a norm whose gradient stays finite where the flow's gradient is 0 (the same values).
The pyramid is tvl1-torch's too (`nscales` levels `scale_step` apart: its sizes, its resizing, its
finer level's flow; one scale by default). What it leaves out, so that the layer batches and
backpropagates: the median filtering and the stopping rule (every pair runs `iterations`
iterations a warping). So at initialisation its output is tvl1-torch's flow with the same
`nscales`, `scale_step` and `warps`, `median_filtering=1`, `outer_iterations=1`,
`inner_iterations=iterations` and `epsilon=0` (tests/flowprep/flow/test_tvl1_layer.py).

It runs on any (N, C, H, W) pair of inputs, each channel on its own: grey frames (C = 1, grey
levels 0..255 as tvl1-torch takes them) or a backbone's feature maps (Representation Flow's
placement), and returns (N, 2C, H, W), each channel's x and y displacement in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flowprep.flow.tvl1.params import TVL1_PARAMS
from flowprep.flow.tvl1.solver import (
    Differences,
    TVL1Params,
    centered_gradient,
    divergence,
    finer_flow,
    forward_gradient,
    inner_iteration,
    pyramid_sizes,
    resize_linear,
    warp_constants,
)

_DEFAULTS = {p.name: p.default for p in TVL1_PARAMS}


@dataclass(frozen=True)
class StepSizes:
    """What `inner_iteration` reads from its params, as tensors (gamma: 0, no illumination term)."""
    tau: torch.Tensor
    lam: torch.Tensor
    theta: torch.Tensor
    gamma: float = 0.0


def _axis_pair(scale: torch.Tensor, identity: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor,
               x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return scale[0] * dx + identity[0] * x, scale[1] * dy + identity[1] * x


def safe_norm(ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """solver.vector_norm's values, with a gradient of 0 (not NaN) where the vector is 0."""
    squared = ux * ux + uy * uy
    nonzero = squared > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, squared, 1.0)), 0.0)


class LearnedKernels(nn.Module):
    """The three differences, learnable per axis (x, y) as `scale * fixed + identity * input`."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("image", "gradient", "divergence"):
            setattr(self, f"{name}_scale", nn.Parameter(torch.ones(2)))
            setattr(self, f"{name}_identity", nn.Parameter(torch.zeros(2)))

    def image_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _axis_pair(self.image_scale, self.image_identity, *centered_gradient(x), x)

    def flow_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _axis_pair(self.gradient_scale, self.gradient_identity, *forward_gradient(x), x)

    def flow_divergence(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        # divergence is linear: scaling its inputs scales each axis's backward difference
        scale, identity = self.divergence_scale, self.divergence_identity
        return divergence(scale[0] * v1, scale[1] * v2) + identity[0] * v1 + identity[1] * v2

    def differences(self) -> Differences:
        return Differences(self.flow_gradient, self.flow_divergence, safe_norm)


class TVL1Layer(nn.Module):
    """`iterations` TV-L1 iterations in each of `warps` warpings at each of `nscales` pyramid levels,
    learnable (see the module's docstring). forward(first, second): (N, C, H, W) each -> (N, 2C, H, W)
    flow from first to second, channels x0, y0, x1, y1, ... (channel c's x and y)."""

    def __init__(self, iterations: int = 10, warps: int = 1, tau: float = _DEFAULTS["tau"],
                 lam: float = _DEFAULTS["lambda"], theta: float = _DEFAULTS["theta"], nscales: int = 1,
                 scale_step: float = _DEFAULTS["scale_step"]) -> None:
        super().__init__()
        if iterations < 1 or warps < 1:
            raise ValueError(f"iterations and warps must be at least 1, got {iterations!r} and {warps!r}")
        # the pyramid's shape, checked as tvl1-torch checks it (nscales >= 1, 0 < scale_step < 1)
        self.pyramid = TVL1Params(nscales=nscales, scale_step=scale_step)
        self.iterations, self.warps = iterations, warps
        # learnt as logarithms: they stay positive, and a step changes them in proportion
        self.log_tau = nn.Parameter(torch.tensor(float(tau)).log())
        self.log_lam = nn.Parameter(torch.tensor(float(lam)).log())
        self.log_theta = nn.Parameter(torch.tensor(float(theta)).log())
        self.kernels = LearnedKernels()

    @classmethod
    def from_params(cls, params: dict) -> "TVL1Layer":
        """From `params.layer_params`' values (registry names)."""
        return cls(iterations=params["inner_iterations"], warps=params["warps"], tau=params["tau"],
                   lam=params["lambda"], theta=params["theta"], nscales=params["nscales"],
                   scale_step=params["scale_step"])

    def step_sizes(self) -> StepSizes:
        return StepSizes(self.log_tau.exp(), self.log_lam.exp(), self.log_theta.exp())

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if first.shape != second.shape or first.dim() != 4:
            raise ValueError(f"expected two (N, C, H, W) inputs of one shape, got {tuple(first.shape)} and "
                             f"{tuple(second.shape)}")
        n, c, h, w = first.shape
        m = n * c
        sizes = pyramid_sizes(h, w, self.pyramid)
        step = self.pyramid.scale_step
        # both images of every pair resized together, finest first, as tvl1-torch builds its pyramid
        pyramid = [torch.cat([first.reshape(m, h, w), second.reshape(m, h, w)])]
        for size in sizes[1:]:
            pyramid.append(resize_linear(pyramid[-1], size, (1 / step, 1 / step)))
        u = {k: first.new_zeros(m, *sizes[-1]) for k in ("u1", "u2")}
        params, ops = self.step_sizes(), self.kernels.differences()
        every = torch.ones(m, dtype=torch.bool, device=first.device)  # no pair stops early
        for level in range(len(sizes) - 1, -1, -1):
            i0, i1 = pyramid[level][:m], pyramid[level][m:]
            zeros = torch.zeros_like(i0)  # the dual variables start at zero at every level
            state = {**u, **{name: zeros for name in ("p11", "p12", "p21", "p22")}}
            images = torch.stack([i1, *self.kernels.image_gradient(i1)], dim=1)
            for _ in range(self.warps):
                warp_constants(state, images, i0)
                for _ in range(self.iterations):
                    inner_iteration(state, params, every, ops)
            u = {"u1": state["u1"], "u2": state["u2"]}
            if level:
                u = finer_flow(u, sizes[level - 1], step)
        return torch.stack([u["u1"], u["u2"]], dim=1).reshape(n, 2 * c, h, w)
